"""Delivery to a real local Customer.io-compatible server: batch requests, auth, strict mode, limits."""

from __future__ import annotations

import base64
from contextlib import closing
from pathlib import Path

import pytest

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.sync_run import SyncRunFailed, SyncRunResult, run_sync
from reverse_etl_tests.conftest import (
    ScratchDatabase,
    customerio_destination,
    failure_message,
    materialize_sync,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo, Fault

QUERY = "SELECT id AS userId, email, bio FROM people WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})"


@pytest.fixture
def people(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), bio TEXT, "
        "updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    return mysql_db


def config_for(tmp_path: Path, db: ScratchDatabase, server: FakeCustomerIo, **destination: object) -> Path:
    return write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": db.config()},
            "destinations": {"cio": customerio_destination(server, **destination)},
            "syncs": [sync_entry("people", QUERY, ["cio"])],
        },
    )


def run_once(config_path: Path, tmp_path: Path) -> SyncRunResult:
    config = load_config(config_path)
    destination = config.project.destinations["cio"]
    with closing(open_destination("cio", destination, "people", tmp_path / "outbox")) as client:
        return run_sync(config, "people", "cio", 0, client)


def test_requests_stay_under_500_kb_and_carry_auth_and_strict_mode(tmp_path, people, customerio):
    bio = "x" * 1_000
    people.executemany(
        "INSERT INTO people (id, email, bio) VALUES (%s, %s, %s)",
        [(i, f"p{i}@example.com", bio) for i in range(2_000)],
    )
    result = run_once(config_for(tmp_path, people, customerio), tmp_path)

    assert result.stats.calls_sent == 2_000
    assert sorted(int(c["userId"]) for c in customerio.accepted) == list(range(2_000))
    assert len(customerio.requests) == result.stats.delivery.requests >= 5
    assert all(len(r.body) <= 500_000 for r in customerio.requests)
    assert result.stats.delivery.bytes_sent == sum(len(r.body) for r in customerio.requests)
    for request in customerio.requests:
        assert request.path == "/v1/batch"
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"test-api-key:").decode()
        assert request.headers["x-strict-mode"] == "1"
        assert request.headers["content-type"] == "application/json"


def test_a_smaller_request_limit_is_honoured(tmp_path, people, customerio):
    people.executemany(
        "INSERT INTO people (id, email, bio) VALUES (%s, %s, %s)",
        [(i, "a@b.c", "y" * 500) for i in range(100)],
    )
    run_once(config_for(tmp_path, people, customerio, max_request_bytes=10_000), tmp_path)
    assert len(customerio.accepted) == 100
    assert all(len(r.body) <= 10_000 for r in customerio.requests)
    assert len(customerio.requests) >= 6


def test_a_wrong_api_key_stops_the_run_and_says_to_check_the_key(
    tmp_path, people, customerio, instance, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    people.execute("INSERT INTO people (id, email) VALUES (1, 'a@example.com')")
    monkeypatch.setenv("REVERSE_ETL_TEST_CIO_API_KEY", "wrong-key")
    result = materialize_sync(config_for(tmp_path, people, customerio), "people", "cio", instance)
    assert not result.success
    message = failure_message(result)
    assert "answered 401" in message and "check the API key" in message
    assert "wrong-key" not in message
    assert customerio.accepted == []


def test_a_missing_api_key_variable_is_named(tmp_path, people, customerio, instance, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVERSE_ETL_TEST_CIO_API_KEY")
    result = materialize_sync(config_for(tmp_path, people, customerio), "people", "cio", instance)
    message = failure_message(result)
    assert "the environment variable REVERSE_ETL_TEST_CIO_API_KEY (api_key_env) is not set" in message
    # A variable exported after `reverse-etl dev` started reaches none of its runs: say so.
    assert "then restart what runs the syncs (`reverse-etl dev`" in message


def test_rows_that_cannot_become_calls_are_rejected_and_the_rest_delivered(tmp_path, people, customerio):
    people.executemany(
        "INSERT INTO people (id, email, bio) VALUES (%s, %s, %s)",
        [(1, "ok@example.com", "fine"), (2, "big@example.com", "z" * 40_000), (3, "ok3@example.com", None)],
    )
    result = run_once(config_for(tmp_path, people, customerio), tmp_path)
    assert sorted(c["userId"] for c in customerio.accepted) == ["1", "3"]
    assert result.stats.rows_rejected == 1
    [rejected] = result.rejected_sample
    assert rejected.row_number == 2 and "limit is 32,000 bytes per call" in rejected.reason
    assert result.next_last_sync_time is not None


def test_a_server_error_fails_the_run_with_its_text_and_no_cursor(tmp_path, people, customerio):
    people.execute("INSERT INTO people (id, email) VALUES (1, 'a@example.com')")
    # A 400 that does not say which calls it refuses (no meta.errors) cannot be split around.
    customerio.fail_next(Fault(status=400, body=b"<html>bad request from a proxy</html>"))
    with pytest.raises(SyncRunFailed, match=r"answered 400: <html>bad request from a proxy") as raised:
        run_once(config_for(tmp_path, people, customerio), tmp_path)
    assert raised.value.result.next_last_sync_time is None


def test_the_environments_proxy_settings_are_honoured(tmp_path, people, customerio, monkeypatch):
    """HTTP(S)_PROXY and NO_PROXY are read once per run (not on every request), and still obeyed."""
    people.execute("INSERT INTO people (id, email) VALUES (1, 'a@example.com')")
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    config_path = config_for(tmp_path, people, customerio, retry_budget_seconds=1)
    with pytest.raises(SyncRunFailed, match="connection failed"):
        run_once(config_path, tmp_path)
    assert customerio.accepted == []

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert run_once(config_path, tmp_path).stats.calls_sent == 1
    assert [call["userId"] for call in customerio.accepted] == ["1"]


def test_a_redirect_is_reported_not_followed(tmp_path, people, customerio):
    """An API that moved should be configured where it is: a 3xx fails the run, naming the answer,
    rather than the calls going wherever the answer points."""
    people.execute("INSERT INTO people (id, email) VALUES (1, 'a@example.com')")
    moved = Fault(status=307, body=b"moved", headers={"Location": "http://127.0.0.1:9/v1/batch"})
    customerio.fail_next(moved)
    with pytest.raises(SyncRunFailed, match="answered 307: moved") as raised:
        run_once(config_for(tmp_path, people, customerio, retry_budget_seconds=1), tmp_path)
    assert raised.value.result.next_last_sync_time is None
