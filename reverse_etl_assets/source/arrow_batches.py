"""Rows from the driver → Arrow RecordBatches, one column at a time.

The MySQL drivers are asked for the server's raw text (no Python Decimal, datetime or int built
per value, which is most of a pure-Python driver's time); Arrow's kernels then parse each column
into the type `declared_arrow_type` asks for. Both drivers (PyMySQL, mysqlclient) hand over the
same text, so both give the same batches. SQLite (the demo) hands over Python values: inferred.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.source.type_mapping import ColumnInfo, arrow_field, declared_arrow_type
from reverse_etl_assets.source.unreadable import Unreadable, with_unreadable

# A date with a zero year, month or day ('0000-00-00', '2026-00-00') is not a date: NULL.
_ZERO_DATE = r"^(0000-|\d{4}-00-|\d{4}-\d{2}-00)"
_TIME = r"^(?P<sign>-?)(?P<hours>\d+):(?P<minutes>\d{2}):(?P<seconds>\d{2})\.?(?P<fraction>\d{0,6})$"


def rows_to_record_batch(
    rows: Sequence[Sequence[Any]], columns: Sequence[ColumnInfo], time_zone: str
) -> pa.RecordBatch:
    """Build one RecordBatch from row tuples, with the types `declared_arrow_type` asks for. Values
    that cannot be read (an invalid date) are NULL there, and named beside it (unreadable.py)."""
    arrays, fields = [], []
    unreadable: Unreadable = {}
    for column, values in zip(columns, _transpose(rows, columns), strict=True):
        array, problems = _column_array(values, declared_arrow_type(column, time_zone), column)
        for row, reason in problems.items():
            unreadable.setdefault(row, (column.name, reason))
        arrays.append(array)
        fields.append(arrow_field(column, array.type))
    return with_unreadable(pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), unreadable)


def _transpose(rows: Sequence[Sequence[Any]], columns: Sequence[ColumnInfo]) -> list[Any]:
    """Row tuples → one sequence (or Arrow array) per column.

    For the MySQL drivers' text and bytes, Arrow reads the tuples straight into a struct array
    (about twice as fast as transposing in Python); other values are transposed with zip.
    """
    if not rows:
        return [() for _ in columns]
    first = rows[0]
    if all(column.type_code is not None for column in columns):
        kinds = []
        for index in range(len(columns)):
            sample = next((row[index] for row in rows if row[index] is not None), None)
            kinds.append(pa.binary() if isinstance(sample, bytes) else pa.string())
        if all(isinstance(value, (str, bytes)) or value is None for value in first):
            try:
                struct = pa.array(rows, type=pa.struct([(str(i), kind) for i, kind in enumerate(kinds)]))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                pass  # a column mixes str and bytes: transpose in Python
            else:
                return struct.flatten()
    return list(zip(*rows, strict=True))


def _column_array(
    values: Sequence[Any], declared: pa.DataType | None, column: ColumnInfo
) -> tuple[pa.Array, dict[int, str]]:
    """The column's array, and the rows whose value cannot be read (left NULL in the array)."""
    if column.type_code is None:  # SQLite: Python values, inferred
        try:
            return pa.array(values), {}
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
            raise SourceError(
                f"column {column.name!r} mixes values Arrow cannot put in one column ({error}); "
                "CAST it to one type in the query"
            ) from None
    raw = raw_array(values, column)
    if declared is None or pa.types.is_null(raw.type):
        return (raw if declared is None else pa.nulls(len(raw), declared)), {}
    text = raw.cast(pa.string()) if pa.types.is_binary(raw.type) else raw
    try:
        if pa.types.is_timestamp(declared) or pa.types.is_date(declared):
            return _temporal(text, declared)
        if pa.types.is_duration(declared):
            return _times(text), {}
        return pc.cast(text, declared), {}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise SourceError(f"column {column.name!r}: cannot read its values as {declared} ({error})") from None


def _temporal(text: pa.Array, declared: pa.DataType) -> tuple[pa.Array, dict[int, str]]:
    """DATE, DATETIME and TIMESTAMP text. A zero date is NULL; an invalid one (`2026-02-31`) is
    NULL and named, value by value, in the rare batch that holds one."""
    valid = pc.if_else(pc.match_substring_regex(text, _ZERO_DATE), pa.scalar(None, pa.string()), text)
    read = _timestamps if pa.types.is_timestamp(declared) else _dates
    try:
        return read(valid, declared), {}
    except pa.ArrowInvalid:
        pass
    problems: dict[int, str] = {}
    values = valid.to_pylist()
    for row, value in enumerate(values):
        if value is not None:
            try:
                read(pa.array([value], pa.string()), declared)
            except pa.ArrowInvalid:
                problems[row] = f"{value!r} is not a real date or time (invalid dates cannot be sent)"
                values[row] = None
    return read(pa.array(values, pa.string()), declared), problems


def raw_array(values: Sequence[Any] | pa.Array, column: ColumnInfo) -> pa.Array:
    """The driver's values as one Arrow array: text (str) or bytes, as the driver gave them.

    PyMySQL gives str for text and numbers; mysqlclient gives bytes for numbers and dates; both
    give bytes for binary strings. Text columns are binary when their charset says so (PyMySQL)
    or when the values are bytes (mysqlclient does not say).
    """
    if not isinstance(values, pa.Array):
        sample = next((value for value in values if value is not None), None)
        if sample is None:
            return pa.nulls(len(values), pa.binary() if column.binary else pa.string())
        values = pa.array(values, pa.string() if isinstance(sample, str) else pa.binary())
    if values.null_count == len(values):
        return pa.nulls(len(values), pa.binary() if column.binary else pa.string())
    if pa.types.is_binary(values.type) and column.is_text_type and column.binary is False:
        return values.cast(pa.string())
    return values


def _timestamps(text: pa.Array, declared: pa.TimestampType) -> pa.Array:
    """DATETIME/TIMESTAMP values are wall-clock times in the session time zone: attach that zone."""
    naive = pc.cast(text, pa.timestamp(declared.unit))
    # A wall-clock time skipped by a daylight-saving change moves forward, as MySQL does.
    return pc.assume_timezone(naive, declared.tz, ambiguous="earliest", nonexistent="latest")


def _dates(text: pa.Array, declared: pa.DataType) -> pa.Array:
    return pc.cast(pc.cast(text, pa.timestamp("s")), declared)


def _times(text: pa.Array) -> pa.Array:
    """TIME text (`-838:59:59.000000` to `838:59:59`) → a duration in microseconds."""
    parts = pc.extract_regex(text, _TIME)

    def number(name: str) -> pa.Array:
        return pc.cast(pc.struct_field(parts, name), pa.int64())

    fraction = pc.utf8_rpad(pc.fill_null(pc.struct_field(parts, "fraction"), ""), 6, "0")
    micros = pc.add(
        pc.multiply(pc.add(pc.add(pc.multiply(number("hours"), 3600), pc.multiply(number("minutes"), 60)),
                           number("seconds")), 1_000_000),
        pc.cast(fraction, pa.int64()),
    )  # fmt: skip
    signed = pc.if_else(pc.equal(pc.struct_field(parts, "sign"), "-"), pc.negate(micros), micros)
    return pc.cast(signed, pa.duration("us"))
