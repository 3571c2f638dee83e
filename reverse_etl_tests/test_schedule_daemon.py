"""`dagster dev` with an every-minute schedule turned on: the daemon launches a real run against
MariaDB and the local destination; that run is slow, so the next tick is skipped (naming it) and
the one after catches up, with no row sent twice."""

from __future__ import annotations

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

        # 1. A tick launches a run: it reads the 10 rows and sits in its slow request.
        deadline = time.monotonic() + 150
        while not customerio.requests and time.monotonic() < deadline:
            time.sleep(0.5)
        assert customerio.requests, server.output()
        [first_tick] = ticks(home)
        assert first_tick.status == TickStatus.SUCCESS
        [first_run] = first_tick.run_ids
        time.sleep(1.1)
        mysql_db.execute("INSERT INTO people VALUES (11, 'during@x.io', NOW()), (12, 'during2@x.io', NOW())")

        # 2. The next tick comes while it is still running: skipped, naming the run.
        while len(ticks(home)) < 2 and time.monotonic() < deadline + 60:
            time.sleep(1)
        second_tick = ticks(home)[1]
        assert second_tick.status == TickStatus.SKIPPED, second_tick
        assert (
            f"run {first_run}" in second_tick.skip_reason and "still in progress" in second_tick.skip_reason
        )
        assert run_status(home, first_run) == dg.DagsterRunStatus.STARTED

        # 3. The tick after launches a run that catches up from the stored cursor.
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            later = ticks(home)[2:]
            if later and later[0].run_ids and run_status(home, later[0].run_ids[0]) in FINISHED:
                break
            time.sleep(1)
        third_tick = ticks(home)[2]
        assert third_tick.status == TickStatus.SUCCESS, third_tick
        assert run_status(home, first_run) == dg.DagsterRunStatus.SUCCESS
        assert run_status(home, third_tick.run_ids[0]) == dg.DagsterRunStatus.SUCCESS, server.output()
    finally:
        server.stop()

    delivered = Counter(call["userId"] for call in customerio.accepted)
    assert delivered == Counter(str(i) for i in range(1, 13))  # every row, none twice
