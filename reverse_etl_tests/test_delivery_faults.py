"""Delivery that loses nothing, against a real local server that injects faults: in every case no
row is lost, the cursor is right, and the run's outcome and metadata say what happened."""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from reverse_etl_tests.conftest import (
    ScratchDatabase,
    customerio_destination,
    failure_message,
    materialize_sync,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo, Fault, RecordedRequest

QUERY = (
    "SELECT id AS userId, email, plan FROM people "
    "WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}}) ORDER BY id"
)
ROWS = 500


@pytest.fixture
def people(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), plan VARCHAR(20), "
        "updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    mysql_db.executemany(
        "INSERT INTO people (id, email, plan, updated_at) VALUES (%s, %s, %s, NOW() - INTERVAL 1 HOUR)",
        [(i, f"person{i}@example.com", "pro") for i in range(1, ROWS + 1)],
    )
    return mysql_db


def project(tmp_path: Path, db: ScratchDatabase, server: FakeCustomerIo | str, **destination: Any) -> Path:
    """A sync of ROWS rows in requests of about 25 calls each (max_request_bytes 4 KB)."""
    settings = {"max_request_bytes": 4_000, "retry_budget_seconds": 20, "timeout_seconds": 5, **destination}
    if isinstance(server, str):
        cio = {
            "kind": "customerio",
            "base_url": server,
            "api_key_env": "REVERSE_ETL_TEST_CIO_API_KEY",
            **settings,
        }
    else:
        cio = customerio_destination(server, **settings)
    return write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": db.config()},
            "destinations": {"cio": cio},
            "syncs": [sync_entry("people", QUERY, ["cio"])],
        },
    )


def materialize(config: Path, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return materialize_sync(config, "people", "cio", instance)


def metadata_of(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    assert result.success, failure_message(result)
    [materialization] = result.asset_materializations_for_node("people")
    return {key: value.value for key, value in materialization.metadata.items()}


def failure_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = result.get_step_failure_events()
    return {key: value.value for key, value in event.step_failure_data.user_failure_data.metadata.items()}


def delivered_ids(server: FakeCustomerIo) -> Counter[str]:
    return Counter(call["userId"] for call in server.accepted)


def assert_every_row_delivered_once(server: FakeCustomerIo) -> None:
    assert delivered_ids(server) == Counter(str(i) for i in range(1, ROWS + 1))


def cursor(instance: dg.DagsterInstance) -> int | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("people"), asset_partitions=["cio"]), limit=1
    ).records
    return records[0].asset_materialization.metadata["last_sync_time"].value if records else None


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_429_with_retry_after_is_honoured(tmp_path, people, customerio, instance):
    customerio.fail_next(Fault(429, b'{"meta":{"errors":["slow down"]}}', headers={"Retry-After": "1"}))
    started = time.monotonic()
    metadata = metadata_of(materialize(project(tmp_path, people, customerio), instance))
    assert time.monotonic() - started >= 1.0
    assert_every_row_delivered_once(customerio)
    assert metadata["retried_requests"] == 1
    assert metadata["backoff_seconds"] >= 1.0
    assert metadata["calls_sent"] == ROWS and metadata["rows_rejected"] == 0
    # The retry came at least a second after the 429, and every request sent after the 429 arrived
    # waited too (requests already on their way are not called back).
    refused = customerio.requests[0]
    assert refused.status == 429
    [retry] = [r for r in customerio.requests[1:] if r.body == refused.body]
    assert retry.received_at - refused.received_at >= 0.99
    later = [r.received_at - refused.received_at for r in customerio.requests[1:]]
    assert all(gap < 0.1 or gap >= 0.99 for gap in later)


def test_429_without_retry_after_backs_off_exponentially(tmp_path, people, customerio, instance):
    customerio.fail_next(*[Fault(429, b"{}") for _ in range(3)])
    metadata = metadata_of(materialize(project(tmp_path, people, customerio, max_in_flight=1), instance))
    assert_every_row_delivered_once(customerio)
    assert metadata["retried_requests"] == 3
    times = [r.received_at for r in customerio.requests[:4]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0 and gaps[2] >= 2.0  # 0.5 s, 1 s, 2 s (+ jitter)


def test_a_storm_of_500s_on_30_percent_of_requests(tmp_path, people, customerio, instance):
    chance = random.Random(7)
    customerio.hook = lambda request: Fault(503, b"upstream unavailable") if chance.random() < 0.3 else None
    metadata = metadata_of(materialize(project(tmp_path, people, customerio), instance))
    assert_every_row_delivered_once(customerio)  # refused requests were not accepted: no duplicates
    failed = sum(1 for r in customerio.requests if r.status == 503)
    assert failed >= 3
    assert metadata["retried_requests"] == failed
    assert metadata["requests"] == len(customerio.requests) - failed
    assert cursor(instance) == metadata["last_sync_time"]


def test_timeouts_are_retried_and_duplicates_carry_the_same_message_id(
    tmp_path, people, customerio, instance
):
    # The server processes the first two requests but answers too late: the client retries them.
    customerio.fail_next(Fault(delay_seconds=1.5, process=True), Fault(delay_seconds=1.5, process=True))
    metadata = metadata_of(materialize(project(tmp_path, people, customerio, timeout_seconds=0.5), instance))
    assert metadata["retried_requests"] >= 2
    deadline = time.monotonic() + 10
    while customerio.in_flight and time.monotonic() < deadline:  # the late answers land after the run
        time.sleep(0.05)
    counts = delivered_ids(customerio)
    assert set(counts) == {str(i) for i in range(1, ROWS + 1)}  # nothing lost
    duplicated = {user for user, n in counts.items() if n > 1}
    assert duplicated  # the late answers were retried, so some calls arrived twice...
    by_user: dict[str, set[str]] = {}
    for call in customerio.accepted:
        by_user.setdefault(call["userId"], set()).add(call["messageId"])
    assert all(len(ids) == 1 for ids in by_user.values())  # ...with the same message id


def test_connection_resets_are_retried(tmp_path, people, customerio, instance):
    customerio.fail_next(
        Fault(drop_connection=True), Fault(drop_connection=True), Fault(drop_connection=True)
    )
    metadata = metadata_of(materialize(project(tmp_path, people, customerio), instance))
    assert_every_row_delivered_once(customerio)
    assert metadata["retried_requests"] == 3


def test_a_400_naming_two_bad_calls_in_a_batch_of_500(tmp_path, people, customerio, instance):
    """The destination refuses two calls our validation cannot know about; they are isolated by
    splitting and reported with the destination's reason; the other 498 are delivered."""
    people.execute("UPDATE people SET email = 'blocked@example.com' WHERE id IN (123, 456)")

    def refuse_blocked(request: RecordedRequest) -> Fault | None:
        calls = request.calls()
        bad = [
            i for i, call in enumerate(calls) if call.get("traits", {}).get("email") == "blocked@example.com"
        ]
        if not bad:
            return None
        errors = [f"batch[{i}]: traits.email is on the suppression list" for i in bad]
        return Fault(400, json.dumps({"meta": {"errors": errors}}).encode())

    customerio.hook = refuse_blocked
    config = project(tmp_path, people, customerio, max_request_bytes=500_000)
    result = materialize(config, instance)
    metadata = metadata_of(result)
    assert len(customerio.requests[0].calls()) == ROWS  # one request of 500 calls
    assert delivered_ids(customerio) == Counter(str(i) for i in range(1, ROWS + 1) if i not in (123, 456))
    assert metadata["calls_sent"] == 498 and metadata["rows_rejected"] == 2
    assert metadata["split_requests"] >= 2
    assert len(customerio.requests) <= 40  # splitting is logarithmic, not one request per call
    sample = {r.data["row_number"]: r.data["reason"] for r in metadata["rejected_rows_sample"].records}
    assert set(sample) == {123, 456}
    assert "traits.email is on the suppression list" in sample[123]
    # Refused rows are rejected rows: the run succeeds, the cursor moves, the check warns.
    assert cursor(instance) == metadata["last_sync_time"]
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "rejected_rows"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN


@pytest.mark.parametrize("status", [401, 403])
def test_a_401_or_403_stops_the_run_at_once(tmp_path, people, customerio, instance, monkeypatch, status):
    if status == 401:
        monkeypatch.setenv("REVERSE_ETL_TEST_CIO_API_KEY", "revoked-key")  # the fake's own auth check
    else:  # a key the server knows, without the right to write to this workspace
        customerio.hook = lambda request: Fault(403, b'{"meta":{"errors":["Forbidden"]}}')
    key = os.environ["REVERSE_ETL_TEST_CIO_API_KEY"]
    result = materialize(project(tmp_path, people, customerio, max_in_flight=4), instance)
    assert not result.success
    message = failure_message(result)
    assert f"answered {status}" in message and "check the API key" in message and key not in message
    # 20 requests' worth of calls, but sending stopped at the first refusal: only those in flight.
    assert len(customerio.requests) <= 4
    assert customerio.accepted == []
    assert cursor(instance) is None
    assert failure_metadata(result)["calls_sent"] == 0


def test_the_server_down_for_a_whole_run(tmp_path, people, instance, customerio):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe closes
    config = project(tmp_path, people, f"http://127.0.0.1:{port}/v1", retry_budget_seconds=2)
    started = time.monotonic()
    result = materialize(config, instance)
    # It gave up once the 2 s budget was spent (plus the run's own time), not after the default 300 s.
    assert time.monotonic() - started < 2 + 20
    assert not result.success
    message = failure_message(result)
    assert (
        "still failing after" in message
        and "retry_budget_seconds" in message
        and "connection failed" in message
    )
    assert cursor(instance) is None
    metadata = failure_metadata(result)
    assert metadata["calls_sent"] == 0 and metadata["rows_read"] == ROWS

    # When the server is back, the next run sends the same window, so every row arrives.
    recovered = metadata_of(materialize(project(tmp_path, people, customerio), instance))
    assert recovered["previous_last_sync_time"] == 0
    assert_every_row_delivered_once(customerio)
