"""A running `reverse-etl dev` picks up edits of the configuration file: a new sync shows up within
seconds, a broken file shows as the code location's load error, a fixed one loads again; and a
SIGINT to `reverse-etl dev` alone stops the `dagster dev` it started (nothing is left running)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reverse_etl_tests.conftest import sync_entry, write_config
from reverse_etl_tests.dagster_dev import PROJECT, DagsterDev

DEMO_DATABASE = PROJECT / "reverse_etl_assets" / "demo" / "demo.sqlite"
RELOAD_SECONDS = 15  # the promise: an edit shows within seconds (a reload rebuilds the code server)
SETTLE_TIMEOUT = 120  # how long a test waits for anything else (two busy cores)
USERS = "SELECT id AS userId, email FROM users WHERE last_updated >= FROM_UNIXTIME({{last_sync_time}})"


def config(tmp_path: Path, *names: str) -> dict[str, Any]:
    return {
        "databases": {"app_db": {"kind": "sqlite", "path": str(tmp_path / "app.sqlite")}},
        "destinations": {"dry_run": {"kind": "outbox", "path": str(tmp_path / "outbox")}},
        "syncs": [sync_entry(name, USERS, ["dry_run"]) for name in names],
    }


def save(path: Path, data: dict[str, Any] | str) -> None:
    """As an editor saves: a new file renamed over the old one."""
    draft = path.with_name(f".{path.name}.swp")
    if isinstance(data, str):
        draft.write_text(data, encoding="utf-8")
    else:
        write_config(draft, data)
    os.replace(draft, path)


def wait_for(what: str, check: Callable[[], bool], server: DagsterDev, timeout: float) -> float:
    """Seconds until `check()` held (the server's log in the failure)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout} s\n{server.output()}")


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc: no dependency)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., DagsterDev]]:
    """Start `reverse-etl dev` in tmp_path/server; stop it, and anything it left, afterwards."""
    servers: list[tuple[DagsterDev, set[int]]] = []

    def started(env: dict[str, str] | None = None) -> DagsterDev:
        folder = tmp_path / "server"
        folder.mkdir()
        server = DagsterDev(folder, env)
        server.wait_until_ready(timeout=300)
        servers.append((server, descendants(server.process.pid)))
        return server

    yield started
    for server, below in servers:
        server.stop()
        for pid in below | descendants(server.process.pid):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def only_location(server: DagsterDev) -> dict[str, Any]:
    [location] = server.locations()
    return location


def test_edits_of_the_config_file_reload_the_code_location(start, tmp_path):
    shutil.copyfile(DEMO_DATABASE, tmp_path / "app.sqlite")
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "reverse_etl.yaml"
    write_config(path, config(tmp_path, "people"))
    server = start({"REVERSE_ETL_CONFIG": str(path)})
    assert "people" in server.asset_names() and "more_people" not in server.asset_names()

    # A second sync: its asset appears without a restart.
    save(path, config(tmp_path, "people", "more_people"))
    seconds = wait_for(
        "the new sync's asset", lambda: "more_people" in server.asset_names(), server, SETTLE_TIMEOUT
    )
    print(f"the new sync appeared {seconds:.1f} s after the edit")
    assert seconds < RELOAD_SECONDS, f"{seconds:.1f} s"
    wait_for(
        "the line saying so", lambda: "reverse_etl.yaml changed: reloaded" in server.output(), server, 10
    )

    # An unknown field: the location shows the loader's error, naming the file, line and field.
    broken = config(tmp_path, "people", "more_people")
    broken["syncs"][1]["querry"] = USERS
    save(path, broken)

    def load_error() -> str | None:
        location = only_location(server)
        return location["error"] if location["loadStatus"] == "LOADED" else None

    wait_for("the load error", lambda: bool(load_error()), server, SETTLE_TIMEOUT)
    error = load_error()
    assert "reverse_etl.yaml" in error and "sync 'more_people'" in error and "querry" in error, error
    wait_for("the line saying so", lambda: "has errors" in server.output(), server, 10)

    # Fixed (back to one sync): it loads again, and the removed sync's asset is gone.
    save(path, config(tmp_path, "people"))
    wait_for("the fixed file to load", lambda: load_error() is None, server, SETTLE_TIMEOUT)
    wait_for("the asset to go", lambda: "more_people" not in server.asset_names(), server, SETTLE_TIMEOUT)
    assert "people" in server.asset_names()

    # Invalid YAML, then deleted, then written again.
    save(path, "syncs: [\n")
    wait_for("the YAML error", lambda: "not valid YAML" in (load_error() or ""), server, SETTLE_TIMEOUT)
    path.unlink()
    wait_for(
        "the missing file", lambda: "cannot read the file" in (load_error() or ""), server, SETTLE_TIMEOUT
    )
    write_config(path, config(tmp_path, "people", "more_people"))
    wait_for("the file to load", lambda: load_error() is None, server, SETTLE_TIMEOUT)
    assert {"people", "more_people"} <= server.asset_names()


def test_sigint_to_reverse_etl_dev_alone_stops_dagster_dev(start, tmp_path):
    # No file at start: the demo. A ./reverse_etl.yaml created later is the file from then on.
    server = start()
    assert "demo_identify_users" in server.asset_names()
    shutil.copyfile(DEMO_DATABASE, tmp_path / "app.sqlite")
    save(server.cwd / "reverse_etl.yaml", config(tmp_path, "people"))
    wait_for(
        "the new file's sync",
        lambda: "people" in server.asset_names() and "demo_identify_users" not in server.asset_names(),
        server,
        SETTLE_TIMEOUT,
    )

    wait_for("the line saying so", lambda: "reverse_etl.yaml: reloaded" in server.output(), server, 10)

    below = descendants(server.process.pid)
    assert below, "reverse-etl dev runs dagster dev as a child"
    os.kill(server.process.pid, signal.SIGINT)  # the process only, not its group: it must forward
    assert server.process.wait(timeout=SETTLE_TIMEOUT) == 0, server.output()
    assert not server.answers()
    wait_for("every child to exit", lambda: not any(alive(pid) for pid in below), server, 30)
    assert "Dagster services shut down" in server.output()
