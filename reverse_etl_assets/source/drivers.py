"""The MySQL drivers: PyMySQL (pure Python, the default) and mysqlclient (C); connectorx_reader.py
has the third, ConnectorX.

Both are asked for the server's raw text rather than Python objects (arrow_batches.py parses the
text a column at a time), and both get the same time-outs and TLS settings.
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from reverse_etl_assets.config.models import MySQLDatabase
from reverse_etl_assets.redaction import UNSET_HINT, secret_from_env
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.source.tls import mysqlclient_tls_args, pymysql_tls_args


def database_password(name: str, database: MySQLDatabase) -> str | None:
    if not database.password_env:
        return None
    password = secret_from_env(database.password_env)
    if password is None:
        raise SourceError(
            f"database {name!r}: the environment variable {database.password_env} (password_env) is not "
            f"set; {UNSET_HINT}"
        )
    return password


def mysql_engine(name: str, database: MySQLDatabase) -> sa.Engine:
    """The session's engine. For `driver: connectorx` it is PyMySQL's: it sets the session up, reads
    the clock and describes the query; ConnectorX reads the rows on a connection of its own."""
    password = database_password(name, database)
    dialect = "mysql+mysqldb" if database.driver == "mysqlclient" else "mysql+pymysql"
    url = URL.create(
        dialect,
        username=database.user,
        password=password,
        host=database.host,
        port=database.port,
        database=database.database,
        query={"charset": "utf8mb4"},
    )
    if database.driver == "mysqlclient":
        return sa.create_engine(url, poolclass=NullPool, connect_args=_mysqlclient_args(name, database))
    return _pymysql_engine(url, database)


def _pymysql_engine(url: URL, database: MySQLDatabase) -> sa.Engine:
    import pymysql.converters

    connect_args = {
        "connect_timeout": database.connect_timeout_seconds,
        # PyMySQL waits for the server's greeting with the read timeout, not the connect timeout:
        # until connected, both are the connect timeout (a server that accepts and never greets).
        "read_timeout": database.connect_timeout_seconds,
        "conv": _encoders_only(pymysql.converters.conversions),
        **pymysql_tls_args(database.ssl),
    }
    engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)

    @sa.event.listens_for(engine, "connect")
    def _connected(dbapi_connection: object, _record: object) -> None:
        dbapi_connection._read_timeout = database.read_timeout_seconds  # type: ignore[attr-defined]

    return engine


def _mysqlclient_args(name: str, database: MySQLDatabase) -> dict[str, Any]:
    try:
        import MySQLdb.converters
    except ImportError:
        raise SourceError(
            f"database {name!r}: driver mysqlclient needs the mysqlclient package: "
            "pip install 'reverse-etl[fast]' (it compiles against libmariadb-dev or libmysqlclient-dev)"
        ) from None
    return {
        # mysqlclient wants whole seconds.
        "connect_timeout": math.ceil(database.connect_timeout_seconds),
        "read_timeout": math.ceil(database.read_timeout_seconds),
        "conv": _encoders_only(MySQLdb.converters.conversions),
        **mysqlclient_tls_args(database.ssl),
    }


def _encoders_only(conversions: dict[Any, Any]) -> dict[Any, Any]:
    """The driver's encoders (Python → SQL) without its decoders (keyed by MySQL type codes): rows
    then arrive as the server's text, for Arrow to parse."""
    return {key: value for key, value in conversions.items() if not isinstance(key, int)}
