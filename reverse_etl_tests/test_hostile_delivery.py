"""Delivery under hostile conditions: a destination that asks for day-long pauses, trickles its
answers, refuses everything, or a run stopped by a signal. In each case the run ends within seconds
or at its deadline, says why, never moves the cursor past what was not delivered, and leaves the
delivery ledger complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reverse_etl_assets.delivery.rate_limit import RateLimiter, Stopped
from reverse_etl_assets.state.ledger import DeliveryLedger
from reverse_etl_assets.state.rate_window import StoreWindow
from reverse_etl_assets.state.store import StateStore
from reverse_etl_tests.conftest import (
    API_KEY_ENV,
    ScratchDatabase,
    cli_environment,
    customerio_destination,
    failure_message,
    materialize_sync,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo, Fault, RecordedRequest

QUERY = (
    "SELECT id AS userId, email FROM people WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}}) ORDER BY id"
)
ROWS = 300


@pytest.fixture
def people(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), "
        "updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    mysql_db.executemany(
        "INSERT INTO people (id, email, updated_at) VALUES (%s, %s, NOW() - INTERVAL 1 HOUR)",
        [(i, f"person{i}@example.com") for i in range(1, ROWS + 1)],
    )
    return mysql_db


def project(tmp_path: Path, db: ScratchDatabase, server: FakeCustomerIo, **settings: Any) -> Path:
    """Requests of about 25 calls each; sync options (`sync_*`) go to the sync."""
    sync = {key.removeprefix("sync_"): value for key, value in settings.items() if key.startswith("sync_")}
    destination = {key: value for key, value in settings.items() if not key.startswith("sync_")}
    destination = {
        "max_request_bytes": 4_000,
        "timeout_seconds": 5,
        "retry_budget_seconds": 30,
        **destination,
    }
    return write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": db.config()},
            "destinations": {"cio": customerio_destination(server, **destination)},
            "syncs": [sync_entry("people", QUERY, ["cio"], **sync)],
        },
    )


def timed_run(config: Path, instance: Any) -> tuple[Any, float]:
    began = time.monotonic()
    result = materialize_sync(config, "people", "cio", instance)
    return result, time.monotonic() - began


def committed_cursor(instance: Any) -> int | None:
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("people"), asset_partitions=["cio"]), limit=1
    ).records
    return records[0].asset_materialization.metadata["last_sync_time"].value if records else None


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


# -- Retry-After -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "settings", "because"),
    [
        ("86400", {"retry_budget_seconds": 600}, "max_retry_after_seconds (120 s)"),
        ("Wed, 21 Oct 2099 07:28:00 GMT", {"retry_budget_seconds": 600}, "max_retry_after_seconds (120 s)"),
        ("25", {"retry_budget_seconds": 10}, "what is left of retry_budget_seconds"),
    ],
)
def test_a_pause_longer_than_the_run_may_wait_stops_it_at_once(
    tmp_path, people, customerio, instance, header, settings, because
):
    customerio.fail_next(Fault(status=429, headers={"Retry-After": header}, body=b"slow down"))
    config = project(tmp_path, people, customerio, **settings)
    failed, seconds = timed_run(config, instance)
    assert not failed.success and seconds < 15
    message = failure_message(failed)
    assert f"answered 429 with Retry-After: {header}" in message and because in message, message
    assert committed_cursor(instance) is None

    # The pause was not stored: the next run sends at once, and everything.
    healthy, seconds = timed_run(config, instance)
    assert healthy.success and seconds < 15, failure_message(healthy)
    assert {call["userId"] for call in customerio.accepted} == {str(i) for i in range(1, ROWS + 1)}


def test_a_pause_ends_with_the_run_that_was_told_it(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")

    def limiter() -> RateLimiter:  # a run's, in a store every run shares
        return RateLimiter(10, 1.0, StoreWindow(store, "cio", 10, 1.0))

    told, other = limiter(), limiter()
    told.pause(60)
    stop = __import__("threading").Event()
    stop.set()
    with pytest.raises(Stopped):  # the other run waits for the pause (until it is stopped)
        other.acquire(stop)
    told.close()  # the run that was told it ends: so does its pause
    began = time.monotonic()
    assert other.acquire(stop) == 0.0 and time.monotonic() - began < 0.5
    later = limiter()  # a run that starts afterwards is not held either
    assert later.acquire(stop) == 0.0
    other.close()
    later.close()


def test_a_pause_within_the_limits_is_honoured_and_shared(tmp_path, people, customerio, instance):
    customerio.fail_next(Fault(status=429, headers={"Retry-After": "2"}))
    result, seconds = timed_run(project(tmp_path, people, customerio), instance)
    assert result.success, failure_message(result)
    assert seconds >= 2
    assert {call["userId"] for call in customerio.accepted} == {str(i) for i in range(1, ROWS + 1)}


# -- a deadline for every attempt --------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["headers", "body"])
def test_a_destination_that_trickles_its_answer_meets_the_deadline(
    tmp_path, people, customerio, instance, fault
):
    # One byte a second: a timeout per read would never fire. The first attempt is cut off at the
    # deadline and retried; the run completes.
    body = b'{"ok": true, "padding": "' + b"x" * 50 + b'"}'
    customerio.fail_next(Fault(status=200, body=body, trickle_seconds=1.0 if fault == "headers" else 0.0))
    if fault == "body":  # headers at once, then the body a byte a second
        customerio.faults.clear()

        def hook(request: RecordedRequest) -> Fault | None:
            customerio.hook = None
            return Fault(status=200, body=body, trickle_seconds=1.0)

        customerio.hook = hook
    result, seconds = timed_run(project(tmp_path, people, customerio, timeout_seconds=3), instance)
    assert result.success, failure_message(result)
    assert seconds < 20
    assert {call["userId"] for call in customerio.accepted} == {str(i) for i in range(1, ROWS + 1)}
    [materialization] = result.asset_materializations_for_node("people")
    assert materialization.metadata["retried_requests"].value >= 1


def test_a_destination_that_never_finishes_fails_the_run_within_the_budget(
    tmp_path, people, customerio, instance
):
    customerio.hook = lambda request: Fault(status=200, trickle_seconds=1.0)
    config = project(tmp_path, people, customerio, timeout_seconds=2, retry_budget_seconds=6)
    failed, seconds = timed_run(config, instance)
    assert not failed.success and seconds < 25
    assert "no complete answer within 2 s" in failure_message(failed)
    assert committed_cursor(instance) is None


# -- refusals that are not about the calls -----------------------------------------------------------


def test_the_same_refusal_for_every_call_fails_the_run(tmp_path, people, customerio, instance):
    customerio.hook = lambda request: Fault(
        status=400, body=json.dumps({"meta": {"errors": ["batch[0]: workspace is disabled"]}}).encode()
    )
    failed, _ = timed_run(project(tmp_path, people, customerio), instance)
    assert not failed.success
    message = failure_message(failed)
    assert "refused every one of the" in message and "workspace is disabled" in message
    assert "rejected_limit: {share: 1}" in message
    assert committed_cursor(instance) is None

    # A sync that accepts any share of rejections rejects these calls too, and moves on.
    accepted, _ = timed_run(project(tmp_path, people, customerio, sync_rejected_limit={"share": 1}), instance)
    assert accepted.success, failure_message(accepted)
    [materialization] = accepted.asset_materializations_for_node("people")
    assert materialization.metadata["rows_rejected"].value == ROWS


def test_a_413_fails_the_run_with_the_servers_text(tmp_path, people, customerio, instance):
    customerio.hook = lambda request: Fault(
        status=413, body=b"<html>413 Request Entity Too Large (proxy)</html>"
    )
    failed, _ = timed_run(project(tmp_path, people, customerio), instance)
    message = failure_message(failed)
    assert not failed.success and "answered 413" in message and "Request Entity Too Large (proxy)" in message
    assert "lower it" in message and committed_cursor(instance) is None


def test_calls_refused_for_their_own_reasons_are_rejected_rows(tmp_path, people, customerio, instance):
    """Different reasons for different calls: about the calls, so the run goes on."""

    def refuse_some(request: RecordedRequest) -> Fault | None:
        calls = request.calls()
        bad = [i for i, call in enumerate(calls) if int(call["userId"]) % 50 == 0]
        if not bad:
            return None
        errors = [f"batch[{i}]: email {calls[i]['traits']['email']} is on a blocklist" for i in bad]
        return Fault(status=400, body=json.dumps({"meta": {"errors": errors}}).encode())

    customerio.hook = refuse_some
    result, _ = timed_run(project(tmp_path, people, customerio), instance)
    assert result.success, failure_message(result)
    [materialization] = result.asset_materializations_for_node("people")
    assert materialization.metadata["rows_rejected"].value == ROWS // 50
    assert committed_cursor(instance) is not None


@pytest.mark.parametrize(("share", "fails"), [(None, True), (1, False)])
def test_a_run_that_rejects_most_rows_fails_unless_accepted(
    tmp_path, people, customerio, instance, share, fails
):
    people.execute("UPDATE people SET email = NULL WHERE id % 3 <> 0")  # two rows in three
    query = QUERY.replace("id AS userId", "IF(email IS NULL, NULL, id) AS userId")
    config = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {"cio": customerio_destination(customerio)},
            "syncs": [
                sync_entry(
                    "people", query, ["cio"], **({"rejected_limit": {"share": share}} if share else {})
                )
            ],
        },
    )
    result, _ = timed_run(config, instance)
    assert result.success is not fails
    if fails:
        message = failure_message(result)
        assert "200 of 300 rows (67%) were rejected or refused" in message
        assert "rejected_limit.share (50%)" in message and "rejected_limit: {share: 1}" in message
        assert committed_cursor(instance) is None
    else:
        assert committed_cursor(instance) is not None
    assert len(customerio.accepted) == 100


def test_few_rows_rejected_do_not_trip_the_limit(tmp_path, mysql_db, customerio, instance):
    mysql_db.execute("CREATE TABLE people (id INT, email VARCHAR(10), updated_at DATETIME DEFAULT NOW())")
    mysql_db.executemany("INSERT INTO people (id) VALUES (%s)", [(i,) for i in range(10)])
    query = QUERY.replace("id AS userId", "NULL AS userId")  # all ten rejected, but only ten
    config = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": mysql_db.config()},
            "destinations": {"cio": customerio_destination(customerio)},
            "syncs": [sync_entry("people", query, ["cio"])],
        },
    )
    result, _ = timed_run(config, instance)
    assert result.success, failure_message(result)


# -- signals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("stall", ["slow", "throttled"])
def test_a_signal_stops_a_run_within_seconds_and_loses_nothing(
    tmp_path, people, customerio, signal_name, stall
):
    accepted_requests = 3

    def stall_after_a_few(request: RecordedRequest) -> Fault | None:
        if len([r for r in customerio.requests if r.status == 200]) < accepted_requests:
            return None
        if stall == "slow":
            return Fault(delay_seconds=120, process=True)  # an answer that takes two minutes
        return Fault(status=429, headers={"Retry-After": "20"})  # pauses, again and again

    customerio.hook = stall_after_a_few
    config = project(tmp_path, people, customerio, timeout_seconds=300, retry_budget_seconds=600,
                     sync_lookback_seconds=60)  # fmt: skip
    home = tmp_path / ".dagster"
    process = subprocess.Popen(
        [sys.executable, "-m", "reverse_etl_assets.cli", "run", "people", "--config", str(config)],
        cwd=tmp_path,
        env=cli_environment({"DAGSTER_HOME": str(home), API_KEY_ENV: customerio.api_key}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(customerio.requests) <= accepted_requests and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    sent = time.monotonic()
    process.send_signal(getattr(signal, signal_name))
    try:
        output, _ = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{signal_name} did not stop the run within 15 s:\n{process.communicate()[0]}")
    assert time.monotonic() - sent < 10, output
    assert process.returncode != 0 and "FAILED people → cio" in output, output

    # The cursor did not move; the ledger holds every call the destination acknowledged.
    shown = subprocess.run(
        [sys.executable, "-m", "reverse_etl_assets.cli", "cursor", "show", "people", "--config", str(config)],
        cwd=tmp_path,
        env=cli_environment({"DAGSTER_HOME": str(home)}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "cio" in shown.stdout and "never" in shown.stdout, shown.stdout + shown.stderr
    acknowledged = {f"person:{call['userId']}" for call in customerio.accepted}
    assert len(acknowledged) >= accepted_requests * 20
    ledger = DeliveryLedger(StateStore(f"sqlite:///{home / 'reverse_etl' / 'state.sqlite'}"))
    delivered = ledger.load("people", "cio")
    assert len(delivered) == len(acknowledged) and all(delivered.get(key) for key in acknowledged)
    assert os.path.isdir(home)
