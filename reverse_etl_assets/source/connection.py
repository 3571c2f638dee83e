"""Open a read-only session on a sync's database and stream the query's rows as Arrow batches."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from reverse_etl_assets.config.models import Database, MySQLDatabase, SQLiteDatabase
from reverse_etl_assets.source.arrow_batches import rows_to_record_batch
from reverse_etl_assets.source.connectorx_reader import ConnectorXSource, stream_connectorx_batches
from reverse_etl_assets.source.drivers import database_password, mysql_engine
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.source.json_columns import mark_json_columns
from reverse_etl_assets.source.tls import REQUIRES_TLS, tls_error_hints
from reverse_etl_assets.source.type_mapping import ColumnInfo, describe_columns
from reverse_etl_assets.sql.lexer import derived_table, has_top_level_limit, statement_body

_DUPLICATE_COLUMN = 1060  # ER_DUP_FIELDNAME
# While delivery backs off, we stop reading and the server waits to write: let it wait an hour
# rather than drop the connection after its 60-second default.
_NET_WRITE_TIMEOUT_SECONDS = 3600


@dataclass
class SourceSession:
    """One read-only transaction on one database."""

    database_name: str
    engine: sa.Engine
    connection: sa.Connection
    time_zone: str
    server_time_sql: str
    setup: list[str] = field(default_factory=list)  # the session's settings, as SQL
    connectorx: ConnectorXSource | None = None  # driver connectorx: it reads the rows, set up as we are
    abandoned: bool = False

    def server_time(self) -> int:
        """The database server's clock as Unix time: the next `last_sync_time` comes from here."""
        with _errors(self.database_name, "reading the server clock"):
            return int(self.connection.exec_driver_sql(self.server_time_sql).scalar_one())

    def stream_batches(self, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """Run `sql` through a server-side cursor and yield RecordBatches of at most `batch_rows`.

        Memory holds one batch at a time, whatever the size of the result.
        """
        if self.connectorx is not None:
            yield from self._stream_connectorx(self.connectorx, sql, batch_rows)
            return
        with _errors(self.database_name, "running the query"):
            # no_parameters: the SQL goes to the driver as written, so `LIKE 'a%'` needs no escaping.
            options = {"stream_results": True, "no_parameters": True}
            result = self.connection.execution_options(**options).exec_driver_sql(sql)
            exhausted = False
            try:
                columns = mark_json_columns(self.engine, describe_columns(result.cursor))
                _check_unique_names([c.name for c in columns])
                for rows in result.partitions(batch_rows):
                    yield rows_to_record_batch(rows, columns, self.time_zone)
                exhausted = True
            finally:
                if exhausted:
                    result.close()
                else:
                    self.abandon(result.cursor)

    def _stream_connectorx(
        self, source: ConnectorXSource, sql: str, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        with _errors(self.database_name, "describing the query's columns"):
            columns = self._describe(sql)
        _check_unique_names([c.name for c in columns])
        try:
            yield from stream_connectorx_batches(source, sql, columns, self.setup, self.time_zone, batch_rows)
        except SourceError as error:
            raise SourceError(f"database {self.database_name!r}: {error}") from None

    def _describe(self, sql: str) -> list[ColumnInfo]:
        """The query's columns, without reading a row.

        With sql_select_limit at 0 the server describes the query itself, where each column can be
        traced to its table (MariaDB's JSON columns are found that way). A query that ends in its
        own LIMIT would still return rows: it is described as a derived table, which hides where
        its columns come from (as with mysqlclient, declare JSON columns in column_types).
        """
        if has_top_level_limit(sql):
            described = self._execute(f"SELECT * FROM {derived_table(sql, 'described')} LIMIT 0")
            columns = describe_columns(described.cursor)
        else:
            self._execute("SET SESSION sql_select_limit = 0")
            try:
                described = self._execute(sql)
            finally:
                self._execute("SET SESSION sql_select_limit = DEFAULT")
            columns = mark_json_columns(self.engine, describe_columns(described.cursor))
        described.close()
        return columns

    def count_rows(self, sql: str) -> int:
        """How many rows `sql` returns, counted by the server."""
        with _errors(self.database_name, "counting the query's rows"):
            return int(self._around(sql, "counted_rows", "SELECT COUNT(*) FROM {table}"))

    def returns_rows(self, sql: str) -> bool:
        with _errors(self.database_name, "probing the query"):
            return self._around(sql, "probed_rows", "SELECT 1 FROM {table} LIMIT 1") is not None

    def _around(self, sql: str, alias: str, outer: str) -> object:
        """`outer` run around `sql`, which it names `{table}`. A derived table's columns must have
        names that differ without regard to case, which a query's need not (`userId` beside a trait
        `UserId`): then the query gets a column list of its own, as a common table expression."""
        try:
            return self._scalar(outer.format(table=derived_table(sql, alias)))
        except sa.exc.DBAPIError as error:
            if getattr(error.orig, "args", (None,))[0] != _DUPLICATE_COLUMN:
                raise
        names = ", ".join(f"column_{i}" for i in range(len(self._column_names(sql))))
        body = statement_body(sql)
        return self._scalar(f"WITH {alias} ({names}) AS (\n{body}\n) {outer.format(table=alias)}")

    def _column_names(self, sql: str) -> list[str]:
        """The names of the query's columns, without reading its rows (the server stops at 0)."""
        self._execute("SET SESSION sql_select_limit = 0")
        try:
            described = self._execute(sql)
        finally:
            self._execute("SET SESSION sql_select_limit = DEFAULT")
        names = list(described.keys())
        described.close()
        return names

    def grants(self) -> list[str]:
        """The connected user's grants (`SHOW GRANTS`); none for SQLite."""
        if self.engine.dialect.name == "sqlite":
            return []
        with _errors(self.database_name, "reading the user's grants"):
            return [str(row[0]) for row in self.connection.exec_driver_sql("SHOW GRANTS")]

    def abandon(self, cursor: object = None) -> None:
        """Drop the connection without reading the rest of a result that may hold millions of rows
        (stopping early on an error, or a preview); the server ends the query when the socket closes."""
        unread = getattr(cursor, "_result", None)
        if unread is not None:
            unread.unbuffered_active = False  # else PyMySQL reads every remaining row to clear the line
        self.abandoned = True
        self.connection.invalidate()

    def _scalar(self, sql: str) -> object:
        return self._execute(sql).scalar()

    def _execute(self, sql: str) -> sa.CursorResult:
        return self.connection.execution_options(no_parameters=True).exec_driver_sql(sql)


@contextmanager
def open_read_only_session(name: str, database: Database) -> Iterator[SourceSession]:
    """Connect, set the session up (time zone, read-only transaction) and close afterwards."""
    with _errors(name, "preparing the connection"):
        if isinstance(database, SQLiteDatabase):
            engine = _sqlite_engine(database.path, name)
            server_time_sql = "SELECT CAST(strftime('%s', 'now') AS INTEGER)"
        else:
            engine = mysql_engine(name, database)
            server_time_sql = "SELECT UNIX_TIMESTAMP()"
    try:
        with tls_error_hints(database), _errors(name, "connecting"):
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        with connection:
            with _errors(name, "starting a read-only transaction"):
                setup = _begin_read_only(connection, database)
            session = SourceSession(name, engine, connection, database.time_zone, server_time_sql, setup)
            if isinstance(database, MySQLDatabase) and database.driver == "connectorx":
                session.connectorx = ConnectorXSource(database, database_password(name, database))
            yield session
            if not session.abandoned:
                with _errors(name, "ending the read-only transaction"):
                    connection.exec_driver_sql("COMMIT")
    finally:
        engine.dispose()


def _begin_read_only(connection: sa.Connection, database: Database) -> list[str]:
    """Set the session up and start a read-only transaction; return the session's settings, as
    SQL, for a second connection (ConnectorX's) to read the same way."""
    if isinstance(database, MySQLDatabase):
        setup = [
            "SET NAMES utf8mb4",
            f"SET time_zone = '{database.time_zone}'",  # checked: an offset or a zone name
            f"SET SESSION net_write_timeout = {_NET_WRITE_TIMEOUT_SECONDS}",
        ]
        if database.statement_timeout_seconds is not None:
            setup.append(_statement_timeout(connection, database.statement_timeout_seconds))
        for statement in setup:
            connection.exec_driver_sql(statement)
        if database.ssl.mode in REQUIRES_TLS:
            # Some client libraries let REQUIRED fall back to plain text: check, do not trust.
            cipher = connection.exec_driver_sql("SHOW SESSION STATUS LIKE 'Ssl_cipher'").one()[1]
            if not cipher:
                raise SourceError(
                    f"ssl.mode is {database.ssl.mode} but the connection is not encrypted: "
                    "the server does not offer TLS"
                )
        # Any write in this transaction fails, whatever the user's grants.
        connection.exec_driver_sql("START TRANSACTION READ ONLY")
        # ConnectorX's statements each run in a transaction of their own: read-only too.
        return [*setup, "SET SESSION TRANSACTION READ ONLY"]
    connection.exec_driver_sql("PRAGMA query_only = ON")
    connection.exec_driver_sql("BEGIN")
    return []


def _statement_timeout(connection: sa.Connection, seconds: float) -> str:
    version = str(connection.exec_driver_sql("SELECT VERSION()").scalar_one())
    if "mariadb" in version.lower():
        return f"SET SESSION max_statement_time = {seconds:f}"
    return f"SET SESSION max_execution_time = {round(seconds * 1000)}"  # MySQL 5.7.8+: milliseconds


def _sqlite_engine(path: Path, name: str) -> sa.Engine:
    if not path.exists():
        raise SourceError(f"database {name!r}: the SQLite file {path} does not exist")

    def connect() -> sqlite3.Connection:
        # check_same_thread off: the query is read by a thread of its own (prefetch.py), one at a time.
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        # The demo's queries read like MySQL ones: FROM_UNIXTIME gives 'YYYY-MM-DD HH:MM:SS' (UTC).
        connection.create_function("FROM_UNIXTIME", 1, _from_unixtime, deterministic=True)
        return connection

    return sa.create_engine("sqlite+pysqlite://", creator=connect, poolclass=NullPool)


def _from_unixtime(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _check_unique_names(names: list[str]) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SourceError(
            f"the query returns more than one column named {', '.join(map(repr, repeated))}; "
            "give each column its own alias"
        )


@contextmanager
def _errors(name: str, doing: str) -> Iterator[None]:
    """Re-raise driver errors as SourceError naming the database and what we were doing."""
    try:
        yield
    except SourceError:
        raise
    except sa.exc.DBAPIError as error:
        raise SourceError(f"database {name!r}: {doing} failed: {_driver_message(error)}") from None
    except (sa.exc.SQLAlchemyError, OSError) as error:
        raise SourceError(f"database {name!r}: {doing} failed: {error}") from None


def _driver_message(error: sa.exc.DBAPIError) -> str:
    """The server's own words: `(1064, "You have an error ... at line 3")` → `1064: You have ...`."""
    args = getattr(error.orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int):
        return f"({args[0]}) {args[1]}{_HINTS.get(args[0], '')}"
    return str(error.orig) or type(error.orig).__name__


_HINTS = {
    1969: " (statement_timeout_seconds: raise it, or make the query faster)",  # MariaDB
    3024: " (statement_timeout_seconds: raise it, or make the query faster)",  # MySQL
    2013: " (the server went away mid-query: restarted, the connection was killed, or nothing came "
    "for read_timeout_seconds)",
}
