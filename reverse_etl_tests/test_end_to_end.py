"""A MySQL sync materialized as a Dagster asset delivers every row exactly once across runs, with a
cursor per destination."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from reverse_etl_tests.conftest import (
    ScratchDatabase,
    customerio_destination,
    failure_message,
    materialize_sync,
    run_metadata,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo, Fault

QUERY = """
SELECT id AS userId, email_address AS email, fname, lname
FROM users WHERE last_updated >= FROM_UNIXTIME({{ last_sync_time }})
"""


@pytest.fixture
def users(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute(
        """CREATE TABLE users (
            id BIGINT PRIMARY KEY, email_address VARCHAR(200), fname VARCHAR(50), lname VARCHAR(50),
            last_updated TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"""
    )
    # Written an hour ago: a row changed in the very second a run starts is (rightly) sent again by
    # the next run, since `>=` compares whole seconds; these tests want an exact count.
    mysql_db.executemany(
        "INSERT INTO users (id, email_address, fname, lname, last_updated) "
        "VALUES (%s, %s, %s, %s, NOW(6) - INTERVAL 1 HOUR)",
        [(i, f"user{i}@example.com", f"First{i}", f"Last{i}") for i in range(1, 51)],
    )
    return mysql_db


def two_destination_config(
    tmp_path: Path, db: ScratchDatabase, primary: FakeCustomerIo, other: FakeCustomerIo
) -> Path:
    return write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": db.config()},
            "destinations": {
                "cio": customerio_destination(primary),
                "cio_eu": customerio_destination(other),
            },
            "syncs": [sync_entry("identify_users", QUERY, ["cio", "cio_eu"])],
        },
    )


def test_second_run_sends_only_rows_changed_after_the_first_run_started(
    tmp_path, users, customerio, instance, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    other = FakeCustomerIo(api_key=customerio.api_key).start()
    try:
        config = two_destination_config(tmp_path, users, customerio, other)

        first = run_metadata(materialize_sync(config, "identify_users", "cio", instance), "identify_users")
        assert first["rows_read"] == 50
        assert first["calls_sent"] == 50
        assert first["previous_last_sync_time"] == 0
        assert sorted(int(c["userId"]) for c in customerio.accepted) == list(range(1, 51))
        call = next(c for c in customerio.accepted if c["userId"] == "7")
        assert call["type"] == "identify"
        assert call["traits"] == {"email": "user7@example.com", "fname": "First7", "lname": "Last7"}
        # What was sent, by how much time: the bodies the server received, and the rate over the run.
        assert all(request.status == 200 for request in customerio.requests)
        assert first["bytes_sent"] == sum(len(request.body) for request in customerio.requests) > 0
        assert first["duration_seconds"] > 0
        assert first["rows_per_second"] == pytest.approx(50 / first["duration_seconds"], rel=0.01)

        # The cursor is the server's time when the run started: rows changed since then come next.
        time.sleep(1.1)
        users.execute("UPDATE users SET fname = 'Changed' WHERE id IN (3, 4)")
        users.execute("INSERT INTO users (id, email_address) VALUES (51, 'new@example.com')")

        second = run_metadata(materialize_sync(config, "identify_users", "cio", instance), "identify_users")
        assert second["previous_last_sync_time"] == first["last_sync_time"]
        assert second["rows_read"] == 3
        later = customerio.accepted[50:]
        assert sorted(c["userId"] for c in later) == ["3", "4", "51"]
        assert {c["traits"].get("fname") for c in later if c["userId"] in ("3", "4")} == {"Changed"}

        # Every row exactly once per change: 50 + 3 calls, no duplicates of unchanged rows.
        assert len(customerio.accepted) == 53

        # The other destination has its own cursor, still at 0: its first run sends everything.
        assert other.accepted == []
        eu = run_metadata(materialize_sync(config, "identify_users", "cio_eu", instance), "identify_users")
        assert eu["previous_last_sync_time"] == 0
        assert eu["rows_read"] == 51
        assert len(other.accepted) == 51
        assert len(customerio.accepted) == 53
        # The same unchanged row gets an id of its own per destination.
        [to_other] = [c for c in other.accepted if c["userId"] == "7"]
        assert to_other["traits"] == call["traits"] and to_other["messageId"] != call["messageId"]
    finally:
        other.stop()


def test_the_cursor_comes_from_the_database_clock_not_the_worker(
    tmp_path, users, customerio, instance, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    config = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": users.config()},
            "destinations": {"cio": customerio_destination(customerio)},
            "syncs": [sync_entry("identify_users", QUERY, ["cio"])],
        },
    )
    before = users.server_time()
    # A worker whose clock is a day off must not shift the cursor.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 86_400)
    result = materialize_sync(config, "identify_users", "cio", instance)
    monkeypatch.setattr(time, "time", real_time)
    metadata = run_metadata(result, "identify_users")
    assert before <= metadata["last_sync_time"] <= users.server_time()


def test_a_failed_delivery_fails_the_run_with_the_server_text_and_keeps_the_cursor(
    tmp_path, users, customerio, instance, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    config = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": users.config()},
            # A server that keeps answering 503: retried for a second, then the run fails.
            "destinations": {"cio": customerio_destination(customerio, retry_budget_seconds=1)},
            "syncs": [sync_entry("identify_users", QUERY, ["cio"])],
        },
    )
    ok = run_metadata(materialize_sync(config, "identify_users", "cio", instance), "identify_users")
    users.execute("UPDATE users SET fname = 'Again' WHERE id = 1")
    time.sleep(1.1)
    users.execute("UPDATE users SET fname = 'Again' WHERE id = 2")

    customerio.hook = lambda request: Fault(status=503, body=b'{"meta":{"errors":["maintenance window"]}}')
    failed = materialize_sync(config, "identify_users", "cio", instance)
    assert not failed.success
    assert "503" in failure_message(failed) and "maintenance window" in failure_message(failed)

    customerio.hook = None
    retried = run_metadata(materialize_sync(config, "identify_users", "cio", instance), "identify_users")
    # The failed run did not move the cursor: the retry sees the same window.
    assert retried["previous_last_sync_time"] == ok["last_sync_time"]
    assert {c["userId"] for c in customerio.accepted[50:]} >= {"2"}


def test_a_near_miss_of_a_reserved_name_is_reported_by_the_run(
    tmp_path, users, customerio, instance, monkeypatch
):
    """`userid` is not `userId`: the column becomes a trait, and the run says so where users look."""
    monkeypatch.chdir(tmp_path)
    query = "SELECT id AS userid, email_address AS email FROM users WHERE id <= 3 ORDER BY id"
    config = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": users.config()},
            "destinations": {"cio": customerio_destination(customerio)},
            "syncs": [sync_entry("identify_users", query, ["cio"])],
        },
    )
    result = materialize_sync(config, "identify_users", "cio", instance)
    metadata = run_metadata(result, "identify_users")
    warning = "column 'userid' becomes traits.userid, not the top-level field 'userId'"
    assert warning in metadata["warnings"]
    logged = [
        entry.user_message for entry in instance.all_logs(result.run_id) if entry.level == logging.WARNING
    ]
    assert any(warning in message for message in logged), logged
    # Customer.io still takes the calls (by email), with the id as a trait: hence the warning.
    assert [c["traits"]["userid"] for c in customerio.accepted] == [1, 2, 3]
