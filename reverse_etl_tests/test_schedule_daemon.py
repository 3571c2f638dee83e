"""`dagster dev` with an every-minute schedule turned on: the daemon launches a real run against
MariaDB and the local destination; that run is slow, so the next tick is skipped (naming it) and
the one after catches up, with no row sent twice."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.scheduler.instigation import InstigatorType, TickStatus

from reverse_etl_tests.conftest import customerio_destination, sync_entry, write_config
from reverse_etl_tests.dagster_dev import DagsterDev
from reverse_etl_tests.fake_customerio import Fault

QUERY = "SELECT id AS userId, email FROM people WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})"
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def ticks(home) -> list:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        found = []
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE):
            if state.instigator_name == "people__cio_schedule":
                found += instance.get_ticks(state.instigator_origin_id, state.selector_id)
        done = [t for t in found if t.status in (TickStatus.SUCCESS, TickStatus.SKIPPED, TickStatus.FAILURE)]
        return sorted(done, key=lambda t: t.timestamp)


def runs(home) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        return list(instance.get_runs())


def run_status(home, run_id: str) -> dg.DagsterRunStatus:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        return instance.get_run_by_id(run_id).status


@pytest.mark.timeout(480)
def test_the_daemon_skips_a_tick_while_the_run_is_slow_and_catches_up(tmp_path, mysql_db, customerio):
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), updated_at DATETIME NOT NULL)"
    )
    mysql_db.executemany(
        "INSERT INTO people VALUES (%s, %s, NOW() - INTERVAL 1 HOUR)",
        [(i, f"p{i}@x.io") for i in range(1, 11)],
    )
    config = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": mysql_db.config()},
            "destinations": {"cio": customerio_destination(customerio, timeout_seconds=180)},
            "syncs": [sync_entry("people", QUERY, ["cio"], frequency="1m")],
        },
    )
    # The first run's request takes 75 s, longer than the minute between ticks.
    customerio.fail_next(Fault(delay_seconds=75, process=True))
    home = tmp_path / ".dagster"
    server = DagsterDev(tmp_path, env={"REVERSE_ETL_CONFIG": str(config)})
    try:
        server.wait_until_ready()

        # 1. A run starts at once (the start-now sensor, or the first tick if it comes first): it
        # reads the 10 rows and sits in its slow request.
        deadline = time.monotonic() + 150
        while not customerio.requests and time.monotonic() < deadline:
            time.sleep(0.5)
        assert customerio.requests, server.output()
        [first_run] = [run.run_id for run in runs(home) if run.status == dg.DagsterRunStatus.STARTED]
        time.sleep(1.1)
        mysql_db.execute("INSERT INTO people VALUES (11, 'during@x.io', NOW()), (12, 'during2@x.io', NOW())")

        # 2. A tick that comes while it is still running is skipped, naming the run.
        def skipped_for_first() -> list:
            return [
                t
                for t in ticks(home)
                if t.status == TickStatus.SKIPPED and f"run {first_run}" in t.skip_reason
            ]

        while not skipped_for_first() and time.monotonic() < deadline + 60:
            time.sleep(1)
        [skipped, *_] = skipped_for_first()
        assert "still in progress" in skipped.skip_reason
        assert run_status(home, first_run) == dg.DagsterRunStatus.STARTED

        # 3. A later tick launches a run that catches up from the stored cursor.
        def catching_up() -> list:
            return [t for t in ticks(home) if t.timestamp > skipped.timestamp and t.run_ids]

        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            later = catching_up()
            if later and run_status(home, later[0].run_ids[0]) in FINISHED:
                break
            time.sleep(1)
        [third_tick, *_] = catching_up()
        assert third_tick.status == TickStatus.SUCCESS, third_tick
        assert run_status(home, first_run) == dg.DagsterRunStatus.SUCCESS
        assert run_status(home, third_tick.run_ids[0]) == dg.DagsterRunStatus.SUCCESS, server.output()
    finally:
        server.stop()

    delivered = Counter(call["userId"] for call in customerio.accepted)
    assert delivered == Counter(str(i) for i in range(1, 13))  # every row, none twice


@pytest.mark.timeout(300)
def test_a_daily_sync_that_never_ran_starts_at_once_then_follows_its_schedule(tmp_path, mysql_db):
    """Started a few seconds after the daemon, not at the next midnight; a destination whose
    start_at has not come waits; a second start of the server starts nothing again."""
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), updated_at DATETIME NOT NULL)"
    )
    mysql_db.executemany(
        "INSERT INTO people VALUES (%s, %s, NOW() - INTERVAL 1 HOUR)",
        [(i, f"p{i}@x.io") for i in range(1, 4)],
    )
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    config = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": mysql_db.config()},
            "destinations": {"now": {"kind": "outbox"}, "soon": {"kind": "outbox"}},
            "syncs": [
                sync_entry("daily", QUERY, ["now"], frequency="1d"),
                sync_entry("later", QUERY, ["soon"], frequency="1d", start_at=tomorrow),
                sync_entry("after_dbt", QUERY, ["now"], frequency=None, after_assets=["dbt/users"]),
            ],
        },
    )
    home = tmp_path / ".dagster"
    server = DagsterDev(tmp_path, env={"REVERSE_ETL_CONFIG": str(config)})
    try:
        server.wait_until_ready()
        ready = time.monotonic()
        deadline = ready + 120
        while time.monotonic() < deadline:
            finished = [run for run in runs(home) if run.status in FINISHED]
            if finished:
                break
            time.sleep(0.5)
        [run] = runs(home)
        assert run.status == dg.DagsterRunStatus.SUCCESS, server.output()
        print(f"the daily sync's first run finished {time.monotonic() - ready:.1f} s after the UI answered")
        assert run.tags["dagster/sensor_name"] == "reverse_etl_start_now"
        assert run.tags["dagster/partition"] == "now" and run.job_name == "daily_job"
        lines = (tmp_path / "outbox" / "now" / "daily.jsonl").read_text().splitlines()
        assert len(lines) == 3
        time.sleep(25)  # two more evaluations of the sensor: nothing more, `later` waits for start_at
        assert len(runs(home)) == 1

        # A sync that runs after an upstream asset: declarative automation, run by the daemon.
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["dbt", "users"]))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            after = [run for run in runs(home) if run.asset_selection == {dg.AssetKey("after_dbt")}]
            if after and after[0].status in FINISHED:
                break
            time.sleep(1)
        [after_run] = after
        assert after_run.status == dg.DagsterRunStatus.SUCCESS, server.output()
        assert len((tmp_path / "outbox" / "now" / "after_dbt.jsonl").read_text().splitlines()) == 3
    finally:
        server.stop()

    # The server again, on the same instance: the destination has run, so nothing starts.
    server = DagsterDev(tmp_path, env={"REVERSE_ETL_CONFIG": str(config)})
    try:
        server.wait_until_ready()
        time.sleep(25)
        assert len(runs(home)) == 2, server.output()
    finally:
        server.stop()
