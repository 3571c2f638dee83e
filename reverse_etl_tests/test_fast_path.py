"""The fast drivers (`mysqlclient`, `connectorx`) read the same rows into the same Arrow batches as
PyMySQL, so their payloads are identical, byte for byte: mysqlclient for every edge-case type,
connectorx for every type it can carry (the others are refused before a row is read)."""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pytest

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.config.models import MySQLDatabase
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.logical_types import LogicalType, logical_type
from reverse_etl_assets.source.backpressure_relay import BackpressureRelay
from reverse_etl_assets.source.connection import open_read_only_session
from reverse_etl_assets.source.connectorx_reader import ConnectorXSource
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.source.reader_process import InProcessQuery, start_query
from reverse_etl_assets.sync_run import SyncRunFailed, run_sync
from reverse_etl_tests.conftest import (
    ScratchDatabase,
    admin_connection,
    customerio_destination,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import Fault
from reverse_etl_tests.test_mapping_types import TABLE, everything  # noqa: F401 (the fixture)

TABLE_COLUMNS = [
    "id",
    "tiny",
    "tiny_flag",
    "small",
    "medium",
    "plain",
    "big",
    "ubig",
    "dec65",
    "money",
    "f",
    "d",
    "day",
    "moment",
    "stamp",
    "clock",
    "yr",
    "ch",
    "vc",
    "tx",
    "empty",
    "bn",
    "vb",
    "bl",
    "js",
    "en",
    "st",
    "bits",
    "bit_flag",
    "nothing",
]
assert all(f" {column} " in TABLE for column in TABLE_COLUMNS)

QUERY = "SELECT id AS userId, e.* FROM everything e ORDER BY id"
# ConnectorX would change these values (a DECIMAL's 30 places, a FLOAT's digits, a TIME beyond a
# day): it is refused them (test_connectorx_refuses_what_it_would_change); every other column.
CONNECTORX_REFUSED = ("dec65", "f", "clock")
CONNECTORX_QUERY = (
    "SELECT id AS userId, "
    + ", ".join(c for c in TABLE_COLUMNS if c not in CONNECTORX_REFUSED)
    + " FROM everything e ORDER BY id"
)
QUERIES = {"mysqlclient": QUERY, "connectorx": CONNECTORX_QUERY}
# MariaDB sends JSON columns as LONGTEXT; PyMySQL can trace them to their table, the fast drivers
# cannot, so the sync declares it (as the docs tell their users on MariaDB to do).
COLUMN_TYPES = {"js": "json"}


def payloads(tmp_path: Path, db: ScratchDatabase, driver: str, time_zone: str, query: str) -> list[bytes]:
    out = tmp_path / f"{driver}-{len(query)}"
    config = load_config(
        write_config(
            tmp_path / f"{driver}.yaml",
            {
                "databases": {"app_db": db.config(driver=driver, time_zone=time_zone)},
                "destinations": {"dry_run": {"kind": "outbox", "path": str(out)}},
                "syncs": [sync_entry("everything", query, ["dry_run"], column_types=COLUMN_TYPES)],
            },
        )
    )
    with closing(
        open_destination("dry_run", config.project.destinations["dry_run"], "everything", out.parent)
    ) as sender:
        result = run_sync(config, "everything", "dry_run", 0, sender)
    assert result.stats.rows_rejected == 0, result.rejected_sample
    return (out / "everything.jsonl").read_bytes().splitlines()


@pytest.mark.parametrize("driver", ["mysqlclient", "connectorx"])
@pytest.mark.parametrize("time_zone", ["+00:00", "-05:30"])
def test_the_fast_drivers_send_identical_payloads(tmp_path, everything, driver, time_zone):  # noqa: F811
    default = payloads(tmp_path, everything, "pymysql", time_zone, QUERIES[driver])
    fast = payloads(tmp_path, everything, driver, time_zone, QUERIES[driver])
    assert len(default) == 2
    assert b'"moment":"2026-02-28T' in default[0] and b'"ubig":18446744073709551615' in default[0]
    assert fast == default


@pytest.mark.parametrize("driver", ["mysqlclient", "connectorx"])
def test_the_fast_drivers_build_the_same_arrow_batches(everything, driver):  # noqa: F811
    def batches(reader: str) -> pa.Table:
        config = MySQLDatabase.model_validate(everything.config(driver=reader))
        with open_read_only_session("app_db", config) as session:
            return pa.Table.from_batches(list(session.stream_batches(QUERIES[driver], 10)))

    default, fast = batches("pymysql"), batches(driver)
    assert fast.column_names == default.column_names
    for name in default.column_names:
        if name == "js":  # PyMySQL traced it to a JSON column; the fast drivers leave it to column_types
            assert default.column(name).to_pylist() == fast.column(name).to_pylist()
            continue
        assert fast.schema.field(name).type == default.schema.field(name).type, name
        assert fast.column(name).to_pylist() == default.column(name).to_pylist(), name


def test_connectorx_refuses_what_it_would_change(everything):  # noqa: F811
    config = MySQLDatabase.model_validate(everything.config(driver="connectorx"))
    with open_read_only_session("app_db", config) as session:
        with pytest.raises(SourceError) as refused:
            next(session.stream_batches(QUERY, 10))
    message = str(refused.value)
    assert message.startswith("database 'app_db': driver connectorx cannot read every column")
    for column in CONNECTORX_REFUSED:
        assert f"{column!r} is" in message, column
    assert "'money'" not in message and "CAST it AS CHAR" in message and "driver pymysql" in message


@pytest.mark.parametrize("ends_in_limit", [False, True])
def test_connectorx_traces_mariadb_json_columns_unless_the_query_ends_in_limit(everything, ends_in_limit):  # noqa: F811
    """The columns are described by the query itself (sql_select_limit = 0), which says where each
    comes from; a query with its own LIMIT is described as a derived table, which does not."""
    config = MySQLDatabase.model_validate(everything.config(driver="connectorx"))
    query = "SELECT id AS userId, js FROM everything" + (" LIMIT 5" if ends_in_limit else "")
    with open_read_only_session("app_db", config) as session:
        batches = list(session.stream_batches(query, 10))
        # The session's own limit is back to its default: nothing else it runs is cut short.
        assert session.returns_rows("SELECT id FROM everything")
    is_json = logical_type(batches[0].schema.field("js")) == LogicalType.JSON
    assert is_json is not ends_in_limit
    assert sum(batch.num_rows for batch in batches) == 2


def test_connectorx_reads_the_decimals_it_can_exactly_and_refuses_the_others(mysql_db):
    mysql_db.execute(
        "CREATE TABLE decimals (id INT, wide_fraction DECIMAL(28,10), cents DECIMAL(20,2), "
        "whole DECIMAL(18,0), too_long DECIMAL(19,0), too_wide DECIMAL(28,2))"
    )
    mysql_db.execute(
        "INSERT INTO decimals VALUES (1, 999999999999999999.9999999999, -999999999999999999.99, "
        "999999999999999999, 9999999999999999999, 99999999999999999999999999.99), (2, 0, 0.01, 0, 0, 0)"
    )
    readable = "SELECT id AS userId, wide_fraction, cents, whole FROM decimals ORDER BY id"

    def batches(driver: str, query: str) -> pa.Table:
        config = MySQLDatabase.model_validate(mysql_db.config(driver=driver))
        with open_read_only_session("app_db", config) as session:
            return pa.Table.from_batches(list(session.stream_batches(query, 10)))

    fast, default = batches("connectorx", readable), batches("pymysql", readable)
    assert fast.schema == default.schema and fast.to_pylist() == default.to_pylist()
    assert str(fast.column("wide_fraction")[0]) == "999999999999999999.9999999999"
    with pytest.raises(SourceError) as refused:
        batches("connectorx", "SELECT * FROM decimals")
    message = str(refused.value)
    assert "'too_long' is DECIMAL(19,0)" in message and "'too_wide' is DECIMAL(28,2)" in message
    assert "'cents'" not in message and "'whole'" not in message


@pytest.mark.parametrize("day", ["0000-00-00", "2026-02-31"])
def test_connectorx_names_a_zero_or_invalid_date(mysql_db, day):
    mysql_db.execute("CREATE TABLE zeroes (id INT, day DATE)")
    with admin_connection(mysql_db.name) as connection, connection.cursor() as cursor:
        # Servers refuse zero and invalid dates by default.
        cursor.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
        cursor.execute("INSERT INTO zeroes VALUES (1, '2026-01-01'), (2, %s)", (day,))
    config = MySQLDatabase.model_validate(mysql_db.config(driver="connectorx"))
    with open_read_only_session("app_db", config) as session:
        with pytest.raises(SourceError, match=rf"{day}.*zero date.*invalid one.*NULLIF"):
            list(session.stream_batches("SELECT id AS userId, day FROM zeroes", 10))


def test_connectorx_reads_in_a_read_only_session_in_the_databases_time_zone(mysql_db):
    config = MySQLDatabase.model_validate(mysql_db.config(driver="connectorx", time_zone="-05:30"))
    with open_read_only_session("app_db", config) as session:
        (batch,) = session.stream_batches(
            "SELECT @@session.time_zone AS tz, @@session.tx_read_only AS ro, "
            "@@session.net_write_timeout AS net_write_timeout",
            10,
        )
    assert batch.to_pylist() == [{"tz": "-05:30", "ro": 1, "net_write_timeout": 3600}]


def test_connectorx_asks_for_tls_to_be_off():
    with pytest.raises(ValueError, match="driver connectorx cannot use TLS"):
        MySQLDatabase(host="db", database="app", user="u", driver="connectorx")
    MySQLDatabase(host="db", database="app", user="u", driver="connectorx", ssl={"mode": "disabled"})


def test_required_tls_is_checked_not_trusted(everything):  # noqa: F811
    """This server offers no TLS: `required` must fail clearly, whichever driver."""
    for driver in ("pymysql", "mysqlclient"):
        config = MySQLDatabase.model_validate(everything.config(driver=driver, ssl={"mode": "required"}))
        with pytest.raises(SourceError, match=r"(not encrypted|SSL is required|TLS/SSL)"):
            with open_read_only_session("app_db", config):
                pass


def test_connectorx_reads_no_further_than_the_batches_taken(mysql_db):
    """ConnectorX's own stream reads ahead without bound; through the relay, paused while the caller
    holds a batch, the rows stay on the server however slowly they are taken."""
    import connectorx

    mysql_db.execute("CREATE TABLE wide (id INT PRIMARY KEY, filler VARCHAR(255))")
    mysql_db.execute(
        "INSERT INTO wide SELECT seq, REPEAT('x', 250) FROM seq_1_to_200000"  # about 52 MB to send
    )
    config = MySQLDatabase.model_validate(mysql_db.config(driver="connectorx"))
    relay = BackpressureRelay(config.host, config.port, connect_timeout=5)
    try:
        url = ConnectorXSource(config).url("127.0.0.1", relay.port)
        batches = iter(
            connectorx.read_sql(url, "SELECT * FROM wide", return_type="arrow_stream", batch_size=1000)
        )
        first = next(batches)
        relay.pause()
        time.sleep(0.5)
        paused_at = relay.bytes_from_server
        time.sleep(1.0)
        assert relay.bytes_from_server == paused_at  # nothing more while paused
        assert paused_at < 16_000_000  # the socket buffers' worth, not the 52 MB result
        relay.resume()
        assert first.num_rows + sum(batch.num_rows for batch in batches) == 200_000
        assert relay.bytes_from_server > 50_000_000
    finally:
        relay.close()


def test_connectorx_is_read_in_this_process_and_stops_with_the_run(tmp_path, mysql_db, customerio):
    """ConnectorX needs no reading process (it reads without Python's lock). A run that fails
    midway must still end its query promptly and leave the cursor where it was."""
    mysql_db.execute("CREATE TABLE wide (id INT PRIMARY KEY, filler VARCHAR(255))")
    mysql_db.execute("INSERT INTO wide SELECT seq, REPEAT('x', 250) FROM seq_1_to_100000")
    database = mysql_db.config(driver="connectorx")
    query = start_query("app_db", MySQLDatabase.model_validate(database), "SELECT id FROM wide", 1_000)
    assert isinstance(query, InProcessQuery)
    assert sum(batch.num_rows for batch in query.batches()) == 100_000
    assert query.first_server_time() > 0

    config = load_config(
        write_config(
            tmp_path / "reverse_etl.yaml",
            {
                "databases": {"app_db": database},
                "destinations": {"cio": customerio_destination(customerio)},
                "syncs": [
                    sync_entry("wide", "SELECT id AS userId, filler FROM wide", ["cio"], batch_rows=1_000)
                ],
            },
        )
    )
    customerio.fail_next(Fault(status=401, body=b'{"meta":{"errors":["bad key"]}}'))
    began = time.monotonic()
    with closing(open_destination("cio", config.project.destinations["cio"], "wide", tmp_path)) as sender:
        with pytest.raises(SyncRunFailed, match="answered 401") as failed:
            run_sync(config, "wide", "cio", 0, sender)
    assert time.monotonic() - began < 30
    assert failed.value.result.next_last_sync_time is None
    assert failed.value.result.stats.rows_read < 100_000  # it stopped reading, not read everything
