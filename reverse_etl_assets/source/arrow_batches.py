"""Rows from the driver → Arrow RecordBatches, one column at a time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.source.type_mapping import ColumnInfo, arrow_field, declared_arrow_type


def rows_to_record_batch(
    rows: Sequence[Sequence[Any]], columns: Sequence[ColumnInfo], time_zone: str
) -> pa.RecordBatch:
    """Build one RecordBatch from row tuples, with the types `declared_arrow_type` asks for."""
    values_by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    arrays, fields = [], []
    for column, values in zip(columns, values_by_column, strict=True):
        array = _column_array(values, declared_arrow_type(column, time_zone), column)
        arrays.append(array)
        fields.append(arrow_field(column, array.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _column_array(values: Sequence[Any], declared: pa.DataType | None, column: ColumnInfo) -> pa.Array:
    if declared is None:
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
            raise SourceError(
                f"column {column.name!r} mixes values Arrow cannot put in one column ({error}); "
                "CAST it to one type in the query"
            ) from None
    if pa.types.is_timestamp(declared):
        return _timestamp_array(values, declared)
    if pa.types.is_date(declared):
        # Zero dates ('0000-00-00') are not dates: the driver hands them over as text. They are NULL.
        values = [v if isinstance(v, dt.date) else None for v in values]
    return pa.array(values, type=declared)


def _timestamp_array(values: Sequence[Any], declared: pa.TimestampType) -> pa.Array:
    """DATETIME/TIMESTAMP values are wall-clock times in the session time zone: attach that zone."""
    cleaned = [v if isinstance(v, dt.datetime) else None for v in values]
    naive = pa.array(cleaned, type=pa.timestamp(declared.unit))
    # A wall-clock time skipped by a daylight-saving change moves forward, as MySQL does.
    return pc.assume_timezone(naive, declared.tz, ambiguous="earliest", nonexistent="latest")
