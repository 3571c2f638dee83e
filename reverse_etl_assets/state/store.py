"""The state store: one SQL database (SQLite, PostgreSQL or MySQL) through SQLAlchemy.

Which database is the caller's choice (the Dagster layer derives it from the instance's own
storage); everything here works the same on all three, with the store's clock as the one clock of
every worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from reverse_etl_assets.state.tables import METADATA

_created: set[str] = set()  # URLs whose tables this process has created
_created_lock = threading.Lock()


class StateStore:
    def __init__(self, url: str | sa.URL) -> None:
        self.url = sa.make_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            self.engine = sa.create_engine(self.url, connect_args={"timeout": 60}, poolclass=sa.pool.NullPool)
            _sqlite_write_transactions(self.engine)
        else:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True, pool_size=8, max_overflow=8)
        _create_tables(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as connection:
            yield connection

    def now(self, connection: sa.Connection) -> float:
        """Unix time on the store's clock: the same for every worker, whatever their own say."""
        if self.dialect == "postgresql":
            return float(
                connection.execute(sa.text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")).scalar_one()
            )
        if self.dialect in ("mysql", "mariadb"):
            return float(connection.execute(sa.text("SELECT UNIX_TIMESTAMP(NOW(6))")).scalar_one())
        return time.time()  # SQLite: one machine, one clock

    def upsert(self, table: sa.Table, keys: Sequence[str], rows: list[dict[str, Any]]) -> sa.Executable:
        """An INSERT that replaces the non-key columns of rows whose keys exist."""
        values = [c.name for c in table.columns if c.name not in keys]
        if self.dialect in ("mysql", "mariadb"):
            insert = mysql.insert(table).values(rows)
            return insert.on_duplicate_key_update({name: insert.inserted[name] for name in values})
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        insert = dialect_insert(table).values(rows)
        return insert.on_conflict_do_update(
            index_elements=list(keys), set_={name: insert.excluded[name] for name in values}
        )

    def insert_missing(self, table: sa.Table, rows: list[dict[str, Any]]) -> sa.Executable:
        """An INSERT that leaves rows whose keys exist as they are."""
        if self.dialect in ("mysql", "mariadb"):
            return mysql.insert(table).values(rows).prefix_with("IGNORE")
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        return dialect_insert(table).values(rows).on_conflict_do_nothing()

    def describe(self) -> str:
        """Where the store is, without its password."""
        return self.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()


def _create_tables(engine: sa.Engine) -> None:
    key = engine.url.render_as_string(hide_password=False)
    with _created_lock:
        if key in _created:
            return
        try:
            METADATA.create_all(engine)
        except sa.exc.DatabaseError:
            # Two workers creating the tables at once: one of them wins; the tables are there.
            METADATA.create_all(engine)
        _created.add(key)


def _sqlite_write_transactions(engine: sa.Engine) -> None:
    """Every SQLite transaction takes the write lock when it begins (`BEGIN IMMEDIATE`): a
    read-then-write transaction (the rate limit's) would otherwise fail with "database is locked"
    when another process wrote in between, instead of waiting its turn."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own BEGIN off: ours below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for writers
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
