"""CI: the README's quick start in the environment `pip install -e .` made on a machine without the
MySQL client headers: `reverse-etl dev` serves the UI, the demo loads, and the start-now sensor runs
the demo's first sync into the outbox."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reverse_etl_tests.dagster_dev import DagsterDev


def main() -> None:
    import dagster

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:
        server = DagsterDev(Path(folder))
        try:
            server.wait_until_ready()
            outbox = Path(folder) / "outbox" / "outbox" / "demo_identify_users.jsonl"
            deadline = time.monotonic() + 180
            while not _calls(outbox) and time.monotonic() < deadline:
                time.sleep(1)
            calls = _calls(outbox)
            if not calls:
                raise SystemExit(f"the demo's first run wrote nothing to {outbox}:\n{server.output()}")
            print(
                f"quick start: the UI answered, dagster {dagster.__version__}, demo run wrote {calls} calls"
            )
        finally:
            server.stop()


def _calls(outbox: Path) -> int:
    return len(outbox.read_text().splitlines()) if outbox.exists() else 0


if __name__ == "__main__":
    main()
