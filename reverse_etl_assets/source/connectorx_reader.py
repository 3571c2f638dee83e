"""`driver: connectorx`: ConnectorX (Rust) reads the query's rows straight into Arrow.

No Python runs per row or per value: the fastest way we have to read MySQL. ConnectorX picks its
own Arrow types, so each column is then cast to the type `declared_arrow_type` gives the other
drivers, from the columns the server describes on our read-only session (`SourceSession._describe`).
Types ConnectorX cannot carry without changing a value are refused before the query runs, naming
the column and the fix; the rest give the same batches, and payloads, as PyMySQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
from pymysql.constants import FIELD_TYPE

from reverse_etl_assets.config.models import MySQLDatabase
from reverse_etl_assets.source.arrow_batches import raw_array
from reverse_etl_assets.source.backpressure_relay import BackpressureRelay
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.source.type_mapping import ColumnInfo, arrow_field, declared_arrow_type

# ConnectorX rescales every DECIMAL to 10 places in rust_decimal, which holds 28 digits: 18 are left
# before the point (it fails on more, mid-run).
_MAX_INTEGER_DIGITS, _MAX_DECIMAL_SCALE = 18, 10
_DATE_HINT = (
    "driver connectorx stops at a zero date ('0000-00-00') or an invalid one ('2026-02-31'): use "
    "NULLIF(column, '0000-00-00') in the query for zero dates; drivers pymysql and mysqlclient read "
    "zero dates as NULL and reject the rows of invalid ones, and the run goes on"
)


def unreadable_columns(columns: list[ColumnInfo]) -> list[str]:
    """What ConnectorX would change or fail on, one line per column, with the fix."""
    problems = []
    for column in columns:
        code = column.type_code
        if code in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
            # The length counts the digits, the point and the sign.
            digits = column.length - (1 if column.scale else 0) - (0 if column.unsigned else 1)
            if digits - column.scale > _MAX_INTEGER_DIGITS or column.scale > _MAX_DECIMAL_SCALE:
                problems.append(
                    f"{column.name!r} is DECIMAL({digits},{column.scale}) (at most {_MAX_INTEGER_DIGITS} "
                    f"digits before the point and {_MAX_DECIMAL_SCALE} after): CAST it AS CHAR"
                )
        elif code == FIELD_TYPE.FLOAT:
            problems.append(f"{column.name!r} is FLOAT, which would gain digits (0.1 → 0.100000001): "
                            "CAST it AS DOUBLE")  # fmt: skip
        elif code == FIELD_TYPE.TIME:
            problems.append(f"{column.name!r} is TIME (ConnectorX reads only 00:00 to 23:59): "
                            "CAST it AS CHAR")  # fmt: skip
        elif code == FIELD_TYPE.NULL:
            problems.append(f"{column.name!r} is a bare NULL (ConnectorX has no type for it): "
                            f"write CAST(NULL AS CHAR) AS `{column.name}`, or leave it out")  # fmt: skip
        elif code == FIELD_TYPE.GEOMETRY:
            problems.append(f"{column.name!r} is a GEOMETRY: select ST_AsText({column.name}) instead")
    return problems


@dataclass(frozen=True)
class ConnectorXSource:
    """Where ConnectorX connects, and as whom."""

    database: MySQLDatabase
    password: str | None = field(default=None, repr=False)

    def url(self, host: str, port: int) -> str:
        database = self.database
        credentials = quote(database.user, safe="")
        if self.password:
            credentials += ":" + quote(self.password, safe="")
        timeout_ms = round(database.connect_timeout_seconds * 1000)
        return (
            f"mysql://{credentials}@{host}:{port}/{quote(database.database, safe='')}"
            # prefer_socket off: on localhost the client would switch to the server's Unix socket.
            f"?ssl-mode=disabled&prefer_socket=false&tcp_connect_timeout_ms={timeout_ms}"
        )


def stream_connectorx_batches(
    source: ConnectorXSource,
    sql: str,
    columns: list[ColumnInfo],
    session_setup: list[str],
    time_zone: str,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """Run `sql` on a connection of ConnectorX's own, set up like ours (`session_setup`), through a
    relay that stops reading from the server while a batch is out with the caller."""
    # Its connection pool logs "Could not connect" each time a stream ends early (the relay is gone
    # by then): expected, and alarming in a run's log. Unless the user asks for Rust's logs.
    os.environ.setdefault("RUST_LOG", "r2d2=off")
    try:
        import connectorx
    except ImportError:
        raise SourceError(
            "driver connectorx needs the connectorx package: pip install 'reverse-etl[fast]'"
        ) from None

    problems = unreadable_columns(columns)
    if problems:
        raise SourceError("driver connectorx cannot read every column: " + "; ".join(problems)
                          + " (or use driver pymysql or mysqlclient, which read every type)")  # fmt: skip
    types = [declared_arrow_type(column, time_zone) for column in columns]
    schema = pa.schema([arrow_field(c, t or pa.null()) for c, t in zip(columns, types, strict=True)])
    database = source.database
    relay = BackpressureRelay(database.host, database.port, database.connect_timeout_seconds)
    try:
        reader = connectorx.read_sql(
            source.url("127.0.0.1", relay.port),
            sql,
            return_type="arrow_stream",
            batch_size=batch_rows,
            pre_execution_query=session_setup,
        )
        for batch in reader:
            if batch.num_rows:  # ConnectorX ends with an empty batch
                relay.pause()  # while the caller has the batch, leave the next rows in the server
                yield _conform(batch, columns, types, schema)
                relay.resume()
    except SourceError:
        raise
    except BaseException as error:  # ConnectorX raises RuntimeError, and PanicException on bad values
        if type(error).__name__ != "PanicException" and not isinstance(error, RuntimeError):
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "Date(" in message:  # a zero or invalid date, which chrono cannot hold
            message += f" ({_DATE_HINT})"
        raise SourceError(f"driver connectorx: {message}") from None
    finally:
        relay.close()  # also ends ConnectorX's reading when the caller stops early


def _conform(
    batch: pa.RecordBatch, columns: list[ColumnInfo], types: list[pa.DataType | None], schema: pa.Schema
) -> pa.RecordBatch:
    """ConnectorX's types → ours: the same Arrow types, and so the same payloads, as PyMySQL's."""
    arrays = []
    fields = []
    for index, (column, declared) in enumerate(zip(columns, types, strict=True)):
        array = batch.column(index)
        if pa.types.is_large_binary(array.type):
            array = array.cast(pa.binary())
        elif pa.types.is_large_string(array.type):
            array = array.cast(pa.string())
        if declared is None:
            array = raw_array(array, column)  # text or bytes, as the other drivers give them
        elif pa.types.is_timestamp(declared) and array.type.tz is None:
            # Wall-clock times in the session's zone, as for the other drivers.
            naive = array.cast(pa.timestamp(declared.unit))
            array = pc.assume_timezone(naive, declared.tz, ambiguous="earliest", nonexistent="latest")
        elif array.type != declared:
            array = array.cast(declared)
        arrays.append(array)
        fields.append(arrow_field(column, array.type) if declared is None else schema.field(index))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
