"""The source stage against a real MariaDB: read-only sessions, streaming, time zones, clear errors."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from reverse_etl_assets.config.models import MySQLDatabase
from reverse_etl_assets.source.connection import open_read_only_session
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.sql.placeholders import render_query, unknown_placeholders, uses_last_sync_time
from reverse_etl_tests.conftest import ScratchDatabase


def database(db: ScratchDatabase, **overrides: object) -> MySQLDatabase:
    return MySQLDatabase.model_validate(db.config(**overrides))


def test_render_query_accepts_spaces_inside_the_braces():
    query = "WHERE a >= FROM_UNIXTIME({{last_sync_time}}) OR b >= {{  last_sync_time }};"
    assert uses_last_sync_time(query)
    assert render_query(query, 1_700_000_000) == ("WHERE a >= FROM_UNIXTIME(1700000000) OR b >= 1700000000")
    assert unknown_placeholders("{{ last_sync_tme }} {{last_sync_time}}") == ["{{ last_sync_tme }}"]
    with pytest.raises(TypeError):
        render_query(query, "0; DROP TABLE users")  # type: ignore[arg-type]


def test_rows_stream_in_batches_of_bounded_size(mysql_db):
    mysql_db.execute("CREATE TABLE numbers (n INT PRIMARY KEY, label VARCHAR(20))")
    mysql_db.executemany("INSERT INTO numbers VALUES (%s, %s)", [(i, f"n{i}") for i in range(2_500)])
    with open_read_only_session("app_db", database(mysql_db)) as session:
        batches = list(session.stream_batches("SELECT n, label FROM numbers ORDER BY n", 1_000))
    assert [b.num_rows for b in batches] == [1_000, 1_000, 500]
    assert pa.Table.from_batches(batches).column("n").to_pylist() == list(range(2_500))


def test_the_stream_is_lazy_and_uses_a_server_side_cursor(mysql_db):
    """The first batch arrives before the rest of the result is read: nothing holds all rows."""
    mysql_db.execute("CREATE TABLE numbers (n INT PRIMARY KEY)")
    mysql_db.executemany("INSERT INTO numbers VALUES (%s)", [(i,) for i in range(5_000)])
    with open_read_only_session("app_db", database(mysql_db)) as session:
        stream = session.stream_batches("SELECT n FROM numbers ORDER BY n", 100)
        first = next(stream)
        cursor = session.connection.connection.driver_connection._result
        # An unbuffered (server-side) result: PyMySQL has read only what we asked for so far.
        assert cursor.unbuffered_active
        assert first.num_rows == 100
        stream.close()


def test_percent_signs_reach_the_database_as_written(mysql_db):
    mysql_db.execute("CREATE TABLE t (s VARCHAR(20))")
    mysql_db.executemany("INSERT INTO t VALUES (%s)", [("50%off",), ("full price",)])
    with open_read_only_session("app_db", database(mysql_db)) as session:
        [batch] = session.stream_batches(
            "SELECT s, DATE_FORMAT('2026-01-02', '%Y') AS y FROM t WHERE s LIKE '%\\%%'", 10
        )
    assert batch.to_pylist() == [{"s": "50%off", "y": "2026"}]


def test_the_session_is_read_only(mysql_db):
    mysql_db.execute("CREATE TABLE t (n INT)")
    with open_read_only_session("app_db", database(mysql_db)) as session:
        with pytest.raises(SourceError, match=r"READ ONLY transaction"):
            list(session.stream_batches("INSERT INTO t VALUES (1)", 10))
    assert mysql_db.query("SELECT COUNT(*) FROM t") == [(0,)]


def test_datetime_values_carry_the_session_time_zone(mysql_db):
    mysql_db.execute("CREATE TABLE t (d DATETIME(3), ts TIMESTAMP NULL)")
    # Written at UTC: the TIMESTAMP is stored as an instant, the DATETIME as wall-clock text.
    mysql_db.execute("SET time_zone = '+00:00'")
    mysql_db.execute("INSERT INTO t VALUES ('2026-07-01 12:00:00.250', '2026-07-01 12:00:00')")
    with open_read_only_session("app_db", database(mysql_db, time_zone="+02:00")) as session:
        [batch] = session.stream_batches(
            "SELECT d, ts, FROM_UNIXTIME(0) AS epoch, UNIX_TIMESTAMP(ts) AS unix FROM t", 10
        )
    row = batch.to_pylist()[0]
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert row["d"] == dt.datetime(2026, 7, 1, 12, 0, 0, 250_000, tzinfo=plus_two)
    assert row["ts"] == dt.datetime(2026, 7, 1, 14, 0, tzinfo=plus_two)  # the same instant as 12:00Z
    assert row["ts"].timestamp() == row["unix"]
    assert row["epoch"] == dt.datetime(1970, 1, 1, 2, 0, tzinfo=plus_two)


def test_server_time_is_the_database_clock(mysql_db):
    with open_read_only_session("app_db", database(mysql_db)) as session:
        assert abs(session.server_time() - mysql_db.server_time()) <= 1


@pytest.mark.parametrize(
    ("overrides", "query", "expected"),
    [
        ({"user": "nobody_here"}, "SELECT 1", r"database 'app_db': connecting failed: \(\d+\) Access denied"),
        (
            {"database": "no_such_db_xyz"},
            "SELECT 1",
            r"connecting failed: \(1049\) Unknown database 'no_such_db_xyz'",
        ),
        ({"port": 1}, "SELECT 1", r"connecting failed: \(2003\) Can't connect to MySQL server"),
        ({}, "SELECT 1\nFROM dual\nWHERE", r"running the query failed: \(1064\) .* at line 3"),
        (
            {},
            "SELECT nope FROM missing_table",
            r"running the query failed: \(1146\) Table '.*missing_table' doesn't exist",
        ),
        ({"time_zone": "Mars/Olympus"}, "SELECT 1", r"\(1298\) Unknown or incorrect time zone"),
    ],
)
def test_errors_name_the_database_and_carry_the_server_message(mysql_db, overrides, query, expected):
    with pytest.raises(SourceError, match=expected):
        config = database(mysql_db, **{k: v for k, v in overrides.items() if k != "time_zone"})
        if "time_zone" in overrides:
            config = config.model_copy(update={"time_zone": overrides["time_zone"]})
        with open_read_only_session("app_db", config) as session:
            list(session.stream_batches(query, 10))


def test_a_missing_password_variable_is_named(mysql_db, monkeypatch):
    monkeypatch.delenv("APP_DB_PASSWORD", raising=False)
    with pytest.raises(
        SourceError,
        match=r"environment variable APP_DB_PASSWORD \(password_env\) is not set; export it, then restart",
    ):
        with open_read_only_session("app_db", database(mysql_db, password_env="APP_DB_PASSWORD")):
            pass


def test_columns_with_the_same_name_are_refused(mysql_db):
    with open_read_only_session("app_db", database(mysql_db)) as session:
        with pytest.raises(SourceError, match=r"more than one column named 'id'"):
            list(session.stream_batches("SELECT 1 AS id, 2 AS id", 10))
