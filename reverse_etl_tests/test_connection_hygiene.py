"""Timeouts and the errors a user meets when the database misbehaves: each is clear, and none moves
the cursor."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from reverse_etl_assets.config.models import MySQLDatabase
from reverse_etl_assets.defs.state_store import state_store
from reverse_etl_assets.source.connection import open_read_only_session
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.state.ledger import DeliveryLedger
from reverse_etl_tests.conftest import (
    ScratchDatabase,
    admin_connection,
    customerio_destination,
    failure_message,
    materialize_sync,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo, RecordedRequest


def database(db: ScratchDatabase, **overrides: object) -> MySQLDatabase:
    return MySQLDatabase.model_validate(db.config(**overrides))


def test_a_server_that_never_answers_times_out_on_connect(mysql_db):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the TCP connection, never sends the MySQL greeting
    try:
        started = time.monotonic()
        config = database(mysql_db, port=silent.getsockname()[1], connect_timeout_seconds=1)
        with pytest.raises(
            SourceError, match=r"database 'app_db': connecting failed: \(2013\) Lost connection"
        ):
            with open_read_only_session("app_db", config):
                pass
        assert time.monotonic() - started < 5
    finally:
        silent.close()


def test_a_query_that_sends_nothing_for_too_long_hits_the_read_timeout(mysql_db):
    with pytest.raises(SourceError, match=r"running the query failed: \(2013\) .*read_timeout_seconds"):
        with open_read_only_session("app_db", database(mysql_db, read_timeout_seconds=1)) as session:
            list(session.stream_batches("SELECT SLEEP(4) AS userId", 10))


def test_the_statement_time_limit(mysql_db):
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"\((1969|3024)\) .*statement_timeout_seconds"):
        config = database(mysql_db, statement_timeout_seconds=1)
        with open_read_only_session("app_db", config) as session:
            list(session.stream_batches("SELECT SLEEP(3) AS userId", 10))
    assert time.monotonic() - started < 10


def test_a_wrong_password_is_named_without_the_password(mysql_db, monkeypatch):
    user = f"pw_{mysql_db.name[-8:]}"
    mysql_db.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'the-right-one'")
    try:
        monkeypatch.setenv("APP_DB_PASSWORD", "a-wrong-guess-42")
        with pytest.raises(SourceError) as raised:
            config = database(mysql_db, user=user, password_env="APP_DB_PASSWORD")
            with open_read_only_session("app_db", config):
                pass
        message = str(raised.value)
        assert "connecting failed: (1045) Access denied for user" in message
        assert "a-wrong-guess-42" not in message and "the-right-one" not in message
    finally:
        mysql_db.execute(f"DROP USER '{user}'@'%'")


def test_a_connection_lost_mid_stream_fails_the_run_and_keeps_the_cursor(
    tmp_path: Path, mysql_db, customerio: FakeCustomerIo, instance: dg.DagsterInstance, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    mysql_db.execute("CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), bio TEXT)")
    # 50 MB: far more than socket buffers hold, so the stream is still going when the kill comes.
    mysql_db.execute(
        "INSERT INTO people SELECT seq, CONCAT('p', seq, '@x.io'), REPEAT('b', 500) FROM seq_1_to_100000"
    )
    config = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": mysql_db.config()},
            "destinations": {"cio": customerio_destination(customerio, max_request_bytes=20_000)},
            "syncs": [
                sync_entry(
                    "people",
                    "SELECT id AS userId, email, bio FROM people WHERE id > {{last_sync_time}}",
                    ["cio"],
                    batch_rows=500,
                    lookback_seconds=60,  # so its ledger records what was delivered
                )
            ],
        },
    )
    killed = threading.Event()

    def kill_the_sync_connection(_request: RecordedRequest) -> None:
        if killed.is_set():
            return None
        killed.set()
        with admin_connection() as admin, admin.cursor() as cursor:
            cursor.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()",
                (mysql_db.name,),
            )
            for (connection_id,) in cursor.fetchall():
                cursor.execute(f"KILL {connection_id}")
        return None

    customerio.hook = kill_the_sync_connection
    result = materialize_sync(config, "people", "cio", instance)
    assert not result.success
    message = failure_message(result)
    assert "database 'app_db': running the query failed: (2013) Lost connection" in message
    assert 0 < len(customerio.accepted) < 100_000
    assert not instance.fetch_materializations(
        dg.AssetKey("people"), limit=1
    ).records  # the cursor did not move
    # Every call the destination took is in the ledger, those still landing when the run stopped too:
    # a lookback run would not send them again.
    ledger = DeliveryLedger(state_store(instance))
    assert len(ledger.load("people", "cio")) == len(customerio.accepted)
