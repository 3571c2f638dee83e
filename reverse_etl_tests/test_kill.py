"""A worker killed with SIGKILL in the middle of a large sync, then the sync run again: every row
arrives at least once, every duplicate carries its first delivery's message id, and the cursor is
right afterwards."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from reverse_etl_tests.conftest import cli_environment, customerio_destination, sync_entry, write_config

ROWS = 20_000
QUERY = "SELECT id AS userId, email, plan FROM people WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})"


def reverse_etl_run(cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "reverse_etl_assets.cli", "run", "people"],
        cwd=cwd,
        # Its heartbeat stops with it: taken for dead 3 s later (45 s by default).
        env=cli_environment({"DAGSTER_HOME": str(cwd / ".dagster"), "REVERSE_ETL_DEAD_AFTER_SECONDS": "3"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_sigkill_mid_sync_then_rerun(tmp_path, mysql_db, customerio):
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), plan VARCHAR(20), "
        "updated_at DATETIME NOT NULL)"
    )
    mysql_db.execute(
        "INSERT INTO people SELECT seq, CONCAT('p', seq, '@example.com'), 'pro', NOW() - INTERVAL 1 HOUR "
        f"FROM seq_1_to_{ROWS}"
    )
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": mysql_db.config()},
            "destinations": {
                "cio": customerio_destination(customerio, max_request_bytes=5_000, max_in_flight=2)
            },
            "syncs": [sync_entry("people", QUERY, ["cio"])],
        },
    )
    customerio.latency_seconds = 0.05
    worker = reverse_etl_run(tmp_path)
    deadline = time.monotonic() + 120
    while len(customerio.accepted) < 3_000 and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.05)
    assert worker.poll() is None, worker.communicate()[0]
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    delivered_before_kill = len(customerio.accepted)
    assert 3_000 <= delivered_before_kill < ROWS

    customerio.latency_seconds = 0
    rerun = reverse_etl_run(tmp_path)
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output
    # The killed run committed nothing: the rerun started from 0 and read every row again.
    assert f"{ROWS} rows read" in output and "last_sync_time 0 → " in output

    first_id: dict[str, str] = {}
    for call in customerio.accepted:
        assert first_id.setdefault(call["userId"], call["messageId"]) == call["messageId"]
    assert set(first_id) == {str(i) for i in range(1, ROWS + 1)}  # every row at least once
    # The rerun sent everything again (nothing was committed); requests the server was still
    # handling when the worker died were accepted too, so there are at least as many duplicates.
    assert len(customerio.accepted) >= ROWS + delivered_before_kill

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / ".dagster"))) as instance:
        [record] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("people"), asset_partitions=["cio"]), limit=5
        ).records
        metadata = record.asset_materialization.metadata
        assert metadata["previous_last_sync_time"].value == 0
        assert metadata["calls_sent"].value == ROWS
        assert metadata["last_sync_time"].value > 0
        # The killed run is not left "in progress" holding the sync's pool slot: it was failed.
        runs = instance.get_runs(dg.RunsFilter(tags={"reverse_etl/launched_by": "cli"}))
        assert sorted(run.status.value for run in runs) == ["FAILURE", "SUCCESS"]
