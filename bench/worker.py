"""Runs one measurement in this (child) process: `python bench/worker.py STAGE ARGS_JSON REPORT_PATH`.

The stage's result, plus this process's own peak RSS (VmHWM), is written as JSON to REPORT_PATH.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from measure import write_report


def _stage(name: str) -> Callable[..., dict[str, Any]]:
    # Import only what the stage needs: the peers' interpreter does not have our package.
    if name.startswith("ours_"):
        import ours

        stages = {
            "ours_extract": ours.extract,
            "ours_map": ours.map_calls,
            "ours_end_to_end": ours.end_to_end,
            # (5f), --fast-path: define `end_to_end_fast` in ours.py, with end_to_end's signature.
            "ours_end_to_end_fast": getattr(ours, "end_to_end_fast", None),
        }
        if stages.get(name) is None:
            raise SystemExit(f"ours.py has no function for {name}")
        return stages[name]
    import peers

    return {
        "pymysql": peers.pymysql_stream,
        "customerio": peers.customerio_identify,
        "dlt": peers.dlt_extract,
        "server_capacity": peers.server_capacity,
    }[name]


def main() -> None:
    name, args, report_path = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    write_report(report_path, _stage(name)(**args))


if __name__ == "__main__":
    main()
