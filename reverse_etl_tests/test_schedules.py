"""Schedules that never overlap, start when asked and catch up; the frequency check; alerts. All
against a real Dagster instance configured with the project's dagster.yaml."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.test_utils import create_run_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.defs.alerts import WEBHOOK_ENV
from reverse_etl_assets.defs.build import build_definitions
from reverse_etl_assets.defs.frequency_check import FrequencyFindings
from reverse_etl_tests.conftest import (
    ScratchDatabase,
    customerio_destination,
    materialize_sync,
    run_metadata,
    started_run,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo, Fault
from reverse_etl_tests.webhook import Webhook

PROJECT = Path(__file__).resolve().parent.parent
QUERY = "SELECT id AS userId, email FROM people WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})"
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


@pytest.fixture
def project_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A persistent instance with the project's committed dagster.yaml (pools, run monitoring)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / ".dagster" / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield instance


@pytest.fixture
def people(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), "
        "updated_at DATETIME NOT NULL DEFAULT NOW())"
    )
    mysql_db.executemany(
        "INSERT INTO people (id, email, updated_at) VALUES (%s, %s, NOW() - INTERVAL 1 HOUR)",
        [(i, f"p{i}@example.com") for i in range(1, 11)],
    )
    return mysql_db


@pytest.fixture
def config_path(tmp_path: Path, people: ScratchDatabase, customerio: FakeCustomerIo, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {"cio": customerio_destination(customerio), "backup": {"kind": "outbox"}},
            "syncs": [
                sync_entry("people", QUERY, ["cio", "backup"], frequency="1m"),
                sync_entry("later", QUERY, ["cio"], start_at=(NOW + dt.timedelta(days=1)).isoformat()),
                sync_entry("paused", QUERY, ["cio"], enabled=False),
                sync_entry(
                    "rejecting",
                    "SELECT IF(id % 3 = 0, NULL, id) AS userId, email AS contact FROM people "
                    "WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})",
                    ["backup"],
                ),
            ],
        },
    )


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, name: str) -> Any:
    schedule = defs.resolve_schedule_def(name)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=NOW)
    return schedule.evaluate_tick(context)


def _origin(job_name: str) -> RemoteJobOrigin:
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name="reverse_etl_assets.definitions")
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_name)


def assert_runs(data: Any, destination: str) -> None:
    assert data.skip_message is None, data.skip_message
    [request] = data.run_requests
    assert request.partition_key == destination


def test_a_tick_is_skipped_while_any_run_of_the_sync_and_destination_is_in_progress(
    config_path, project_instance
):
    defs = build_definitions(load_config(config_path))
    name = "people__cio_schedule"
    assert_runs(tick(defs, project_instance, name), "cio")

    cases = [
        # (how it was launched, job, status, extra tags)
        ("the schedule", "people_job", dg.DagsterRunStatus.QUEUED, {}),
        ("the Materialize button", "__ASSET_JOB", dg.DagsterRunStatus.STARTED, {}),
        ("a backfill", "__ASSET_JOB", dg.DagsterRunStatus.STARTING, {"dagster/backfill": "abcdefgh"}),
        ("reverse-etl run", "people_job", dg.DagsterRunStatus.STARTED, {"reverse_etl/launched_by": "cli"}),
    ]
    for how, job, status, tags in cases:
        run = create_run_for_test(
            project_instance,
            job_name=job,
            status=status,
            tags={"dagster/partition": "cio", **tags},
            asset_selection={dg.AssetKey("people")},
            remote_job_origin=_origin(job),  # a queued run must say where its code lives
        )
        skipped = tick(defs, project_instance, name)
        assert skipped.run_requests == [], how
        assert f"run {run.run_id}" in skipped.skip_message and "still in progress" in skipped.skip_message, (
            how
        )
        # The other destination has its own schedule and is not held up.
        assert_runs(tick(defs, project_instance, "people__backup_schedule"), "backup")
        project_instance.report_run_failed(run)  # over: the next tick runs again
        assert_runs(tick(defs, project_instance, name), "cio")


def test_a_tick_still_launches_its_run_when_the_state_store_is_away(
    config_path, project_instance, monkeypatch
):
    """The tick's outcome is recorded for the sync_frequency check: bookkeeping, not a condition."""
    monkeypatch.setenv("REVERSE_ETL_STATE_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere")
    defs = build_definitions(load_config(config_path))
    assert_runs(tick(defs, project_instance, "people__cio_schedule"), "cio")


def test_a_run_whose_worker_died_does_not_hold_the_schedule(config_path, project_instance):
    defs = build_definitions(load_config(config_path))
    run = started_run(project_instance, silent_for=60)  # its worker stopped beating a minute ago
    assert_runs(tick(defs, project_instance, "people__cio_schedule"), "cio")
    failed = project_instance.get_run_by_id(run.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    # A live worker (it beat a moment ago) still counts as in progress, whatever host or PID it has.
    alive = started_run(project_instance, silent_for=1)
    assert f"run {alive.run_id}" in tick(defs, project_instance, "people__cio_schedule").skip_message
    project_instance.report_run_failed(alive)
    # A run that never beat (waiting for its slot) is left to run monitoring.
    waiting = started_run(project_instance, silent_for=None)
    assert f"run {waiting.run_id}" in tick(defs, project_instance, "people__cio_schedule").skip_message


def test_a_real_run_in_progress_skips_the_tick_and_the_next_run_catches_up(
    config_path, project_instance, customerio, people
):
    defs = build_definitions(load_config(config_path))
    first = run_metadata(materialize_sync(config_path, "people", "cio", project_instance), "people")
    assert first["calls_sent"] == 10

    time.sleep(1.1)
    people.execute("INSERT INTO people (id, email) VALUES (11, 'new@example.com')")
    # (A row changed in the very second a run starts is sent again by the next run: wait a second.)
    time.sleep(1.1)
    customerio.fail_next(Fault(delay_seconds=4, process=True))  # the next run is slow
    done: list[dg.ExecuteInProcessResult] = []
    slow = threading.Thread(
        target=lambda: done.append(materialize_sync(config_path, "people", "cio", project_instance))
    )
    slow.start()
    deadline = time.monotonic() + 30
    while len(customerio.requests) < 2 and time.monotonic() < deadline:  # the slow request arrived
        time.sleep(0.05)
    skipped = tick(defs, project_instance, "people__cio_schedule")
    [running] = project_instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    assert f"run {running.run_id} (people_job, STARTED) is still in progress" in skipped.skip_message
    slow.join()
    assert done[0].success

    # Meanwhile more rows changed; the skipped tick lost nothing: the next run reads from the cursor.
    time.sleep(1.1)
    people.execute("INSERT INTO people (id, email) VALUES (12, 'newer@example.com')")
    assert_runs(tick(defs, project_instance, "people__cio_schedule"), "cio")
    caught_up = run_metadata(materialize_sync(config_path, "people", "cio", project_instance), "people")
    assert caught_up["previous_last_sync_time"] == run_metadata(done[0], "people")["last_sync_time"]
    ids = [call["userId"] for call in customerio.accepted]
    assert sorted(ids, key=int) == [str(i) for i in range(1, 13)]  # every row once, none twice


def test_start_at_and_enabled(config_path, project_instance):
    defs = build_definitions(load_config(config_path))
    before = tick(defs, project_instance, "later__cio_schedule")
    assert before.run_requests == [] and "does not start before" in before.skip_message
    schedule = defs.resolve_schedule_def("later__cio_schedule")
    after = schedule.evaluate_tick(
        dg.build_schedule_context(
            instance=project_instance, scheduled_execution_time=NOW + dt.timedelta(days=2)
        )
    )
    assert_runs(after, "cio")

    assert (
        defs.resolve_schedule_def("people__cio_schedule").default_status == dg.DefaultScheduleStatus.RUNNING
    )
    paused = defs.resolve_schedule_def("paused__cio_schedule")
    assert paused.default_status == dg.DefaultScheduleStatus.STOPPED
    # A disabled sync can still be run by hand.
    assert materialize_sync(config_path, "paused", "cio", project_instance).success


def test_the_pool_keeps_two_launches_of_one_sync_from_overlapping(config_path, project_instance, customerio):
    """Two destinations of the same sync launched together: the pool (limit 1, from dagster.yaml)
    makes the second wait for the first. Two processes, as two launches are (two threads of one
    process can deadlock inside Dagster's logging set-up)."""
    # Long enough for the second process to start and ask for the slot while the first holds it.
    customerio.fail_next(Fault(delay_seconds=15, process=True))
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(project_instance.root_directory),
        "REVERSE_ETL_CONFIG": str(config_path),
    }

    def launch(destination: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "reverse_etl_assets.cli", "run", "people", "--destination", destination],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    first = launch("cio")
    deadline = time.monotonic() + 60
    while not customerio.requests and time.monotonic() < deadline:  # the first holds the slot
        time.sleep(0.1)
    second = launch("backup")
    outputs = [process.communicate(timeout=180)[0] for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    run_ids = {
        run.tags["dagster/partition"]: run.run_id
        for run in project_instance.get_runs(dg.RunsFilter(job_name="people_job"))
    }
    results = {destination: SimpleNamespace(run_id=run_id) for destination, run_id in run_ids.items()}
    steps = {
        destination: {
            entry.dagster_event.event_type_value: entry.timestamp
            for entry in project_instance.all_logs(result.run_id)
            if entry.dagster_event and entry.dagster_event.event_type_value in ("STEP_START", "STEP_SUCCESS")
        }
        for destination, result in results.items()
    }
    assert steps["backup"]["STEP_START"] >= steps["cio"]["STEP_SUCCESS"]
    blocked = [
        e
        for e in project_instance.all_logs(results["backup"].run_id)
        if "blocked by limit for pool" in e.message
    ]
    assert blocked


def test_the_frequency_check_warns_when_runs_outlast_the_interval(config_path, project_instance):
    # Earlier runs of this destination took 90 s each; the schedule fires every minute.
    for _ in range(3):
        project_instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="people",
                partition="cio",
                metadata={"duration_seconds": 90.0, "rows_read": 10, "last_sync_time": 0},
            )
        )
    result = materialize_sync(config_path, "people", "cio", project_instance)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "sync_frequency"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert (
        "recent runs take 90 s" in check.description
        and "longer than the 60 s between ticks" in check.description
    )
    assert "a frequency of 5m would fit (now: 1m)" in check.description

    backup = materialize_sync(config_path, "people", "backup", project_instance)
    [fine] = [e for e in backup.get_asset_check_evaluations() if e.check_name == "sync_frequency"]
    assert fine.passed


def test_ticks_skipped_while_a_run_was_in_progress_make_the_frequency_check_warn(
    config_path, project_instance
):
    """The schedule records each tick's outcome in the state store; the check reads the last 20."""
    defs = build_definitions(load_config(config_path))
    schedule = defs.resolve_schedule_def("people__cio_schedule")
    for minute in range(10):
        busy = started_run(project_instance, silent_for=1) if minute % 5 < 3 else None
        at = NOW - dt.timedelta(minutes=10 - minute)
        data = schedule.evaluate_tick(
            dg.build_schedule_context(instance=project_instance, scheduled_execution_time=at)
        )
        assert (data.skip_message is not None) == (busy is not None)
        if busy is not None:
            project_instance.report_run_failed(busy)
    # The daemon evaluating a tick again (a retry) does not count it twice.
    tick(defs, project_instance, "people__cio_schedule")
    tick(defs, project_instance, "people__cio_schedule")
    result = materialize_sync(config_path, "people", "cio", project_instance)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "sync_frequency"]
    assert not check.passed, check.description
    assert "6 of the last 11 ticks were skipped because a run was still in progress" in check.description
    assert check.metadata["recent_ticks"].value == 11
    # Ticks of the other destination are its own.
    backup = materialize_sync(config_path, "people", "backup", project_instance)
    [fine] = [e for e in backup.get_asset_check_evaluations() if e.check_name == "sync_frequency"]
    assert fine.passed and fine.metadata["recent_ticks"].value == 0


@pytest.mark.parametrize(
    ("cron", "timezone", "seconds"),
    [
        ("*/15 * * * *", "UTC", 900),
        ("0 0 * * *", "UTC", 86_400),
        # Berlin's clocks go forward on 2026-03-29: that day is 23 hours long.
        ("0 0 * * *", "Europe/Berlin", 82_800),
        ("30 6 * * 1-5", "UTC", 86_400),
    ],
)
def test_the_interval_between_ticks_is_counted_in_the_schedules_time_zone(cron, timezone, seconds):
    from zoneinfo import ZoneInfo

    from reverse_etl_assets.defs.frequency_check import interval_seconds

    start = dt.datetime(2026, 3, 26, 12, tzinfo=ZoneInfo(timezone))
    assert interval_seconds(cron, timezone, now=start) == seconds


def _start_now(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None) -> Any:
    sensor = defs.resolve_sensor_def("reverse_etl_start_now")
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))


def test_a_destination_that_never_ran_starts_at_once_and_only_once(config_path, project_instance):
    defs = build_definitions(load_config(config_path))
    first = _start_now(defs, project_instance)
    requested = {(r.job_name, r.partition_key) for r in first.run_requests}
    # Enabled and past start_at: every destination of `people` and `rejecting`; not `later`
    # (start_at tomorrow) nor `paused` (enabled: false).
    assert requested == {("people_job", "cio"), ("people_job", "backup"), ("rejecting_job", "backup")}
    assert all(r.run_key and r.run_key.endswith(":first") for r in first.run_requests)
    # Remembered in the sensor's cursor: asked again, nothing more.
    again = _start_now(defs, project_instance, cursor=first.cursor)
    assert again.run_requests == [] and "later:cio (start_at" in again.skip_message
    # With a fresh cursor, what already ran (a run in any state, a materialization) is not started.
    run = started_run(project_instance, silent_for=1, destination="cio")
    project_instance.report_run_failed(run)
    materialize_sync(config_path, "rejecting", "backup", project_instance)
    fresh = _start_now(defs, project_instance)
    assert {(r.job_name, r.partition_key) for r in fresh.run_requests} == {("people_job", "backup")}


def test_frequency_findings():
    busy = FrequencyFindings(interval_seconds=60, ticks=10, skipped_busy=6, durations=[50, 70, 80])
    assert busy.problems() == [
        "6 of the last 10 ticks were skipped because a run was still in progress",
        "recent runs take 70 s (median of 3), longer than the 60 s between ticks",
    ]
    assert busy.suggestion() == "2m"
    assert FrequencyFindings(60, ticks=10, skipped_busy=5, durations=[10, 10, 10]).problems() == []
    assert FrequencyFindings(3600, 3, 2, [4000, 4000, 5000]).suggestion() == "2h"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


def _run_event(instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType) -> dg.DagsterEvent:
    [record] = instance.get_records_for_run(run_id, of_type=event_type).records
    return record.event_log_entry.dagster_event


def test_the_failure_alert_posts_to_the_webhook(config_path, project_instance, webhook, monkeypatch):
    monkeypatch.setenv("REVERSE_ETL_TEST_CIO_API_KEY", "wrong-key")
    failed = materialize_sync(config_path, "people", "cio", project_instance)
    assert not failed.success
    # The checks of a failed run were planned and never evaluated: the UI says "execution failed",
    # not that the data has a problem.
    for check in ("rejected_rows", "sync_frequency", "query_guards"):
        key = dg.AssetCheckKey(dg.AssetKey("people"), check)
        [record] = project_instance.event_log_storage.get_asset_check_execution_history(key, limit=5)
        assert record.run_id == failed.run_id and record.status.value == "PLANNED", record
    defs = build_definitions(load_config(config_path))
    sensor = defs.resolve_sensor_def("reverse_etl_failure_alerts")
    run = project_instance.get_run_by_id(failed.run_id)
    event = _run_event(project_instance, failed.run_id, dg.DagsterEventType.RUN_FAILURE)

    # Without a URL, nothing is posted.
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    context = dg.build_run_status_sensor_context("reverse_etl_failure_alerts", event, project_instance, run)
    skipped = sensor(context.for_run_failure())
    assert isinstance(skipped, dg.SkipReason) and WEBHOOK_ENV in skipped.skip_message
    assert webhook.posts == []

    monkeypatch.setenv(WEBHOOK_ENV, webhook.url)
    monkeypatch.setenv("REVERSE_ETL_DAGSTER_URL", "http://dagster.internal:3000/")
    sensor(context.for_run_failure())
    [post] = webhook.posts
    assert post["sync"] == "people" and post["destination"] == "cio" and post["run_id"] == failed.run_id
    assert post["run_url"] == f"http://dagster.internal:3000/runs/{failed.run_id}"
    assert post["text"].startswith("reverse-etl: FAILED: sync people → cio")
    assert "answered 401" in post["text"] and "rows read 10, calls sent 0, rejected 0" in post["text"]
    assert "wrong-key" not in json.dumps(post)
    assert post["blocks"][0]["type"] == "section"  # Slack's Block Kit shape


def test_the_rejected_rows_alert(config_path, project_instance, webhook, monkeypatch):
    monkeypatch.setenv(WEBHOOK_ENV, webhook.url)
    defs = build_definitions(load_config(config_path))
    sensor = defs.resolve_sensor_def("reverse_etl_rejected_rows_alerts")

    def evaluate(sync: str) -> Any:
        result = materialize_sync(config_path, sync, "backup", project_instance)
        run = project_instance.get_run_by_id(result.run_id)
        event = _run_event(project_instance, result.run_id, dg.DagsterEventType.RUN_SUCCESS)
        return sensor(
            dg.build_run_status_sensor_context(
                "reverse_etl_rejected_rows_alerts", event, project_instance, run
            )
        )

    assert isinstance(evaluate("people"), dg.SkipReason)  # nothing rejected: no alert
    assert webhook.posts == []
    evaluate("rejecting")  # 3 of 10 rows have no userId: 30% > 5%
    [post] = webhook.posts
    assert post["text"].startswith("reverse-etl: REJECTED ROWS: sync rejecting → backup")
    assert "3 of 10 rows rejected (30.0%), above max_rejected_share 5%" in post["text"]


def test_a_sync_runs_after_its_upstream_assets_update(
    tmp_path, people, customerio, project_instance, monkeypatch
):
    """Declarative automation: each destination runs once an upstream asset has been materialized;
    a destination with a run in progress is asked once it is free, and the change is not lost."""
    monkeypatch.chdir(tmp_path)
    config_file = write_config(
        tmp_path / "upstream.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {"cio": customerio_destination(customerio), "backup": {"kind": "outbox"}},
            "syncs": [
                sync_entry("people", QUERY, ["cio", "backup"], frequency=None, after_assets=["dbt/users"])
            ],
        },
    )
    defs = build_definitions(load_config(config_file))
    assert defs.schedules == [] or not [s for s in defs.schedules if s.name.startswith("people")]
    # The dbt model shows upstream of the sync in the asset graph.
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey(["dbt", "users"]) in graph.get(dg.AssetKey("people")).parent_keys
    assert "after dbt/users update" in str(graph.get(dg.AssetKey("people")).automation_condition.get_label())

    def evaluate(cursor: Any) -> tuple[set[str], Any]:
        result = dg.evaluate_automation_conditions(defs=defs, instance=project_instance, cursor=cursor)
        return set(result.get_requested_partitions(dg.AssetKey("people"))), result.cursor

    nothing, cursor = evaluate(None)
    assert nothing == set()

    project_instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["dbt", "users"]))
    # One destination is busy: only the other runs now, and the change is kept for the busy one.
    busy = create_run_for_test(
        project_instance,
        job_name="people_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": "cio"},
        asset_selection={dg.AssetKey("people")},
    )
    project_instance.handle_new_event(_planned(busy, "cio"))
    requested, cursor = evaluate(cursor)
    assert requested == {"backup"}
    project_instance.report_run_failed(busy)
    requested, cursor = evaluate(cursor)
    assert requested == {"cio"}
    again, cursor = evaluate(cursor)
    assert again == set()  # handled: no new upstream change
    project_instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["dbt", "users"]))
    assert evaluate(cursor)[0] == {"cio", "backup"}


def _planned(run: dg.DagsterRun, partition: str) -> Any:
    """The event a run writes when it plans to materialize a partition (what `in_progress` reads)."""
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent, DagsterEventType
    from dagster._core.events.log import EventLogEntry

    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
        job_name=run.job_name,
        event_specific_data=AssetMaterializationPlannedData(dg.AssetKey("people"), partition=partition),
    )
    return EventLogEntry(
        error_info=None,
        level="debug",
        user_message="",
        run_id=run.run_id,
        timestamp=time.time(),
        dagster_event=event,
    )
