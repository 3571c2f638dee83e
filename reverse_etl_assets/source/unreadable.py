"""Values the source could not read, carried to the mapping inside their batch.

An invalid date (`2026-02-31`, which `ALLOW_INVALID_DATES` lets a table hold) must reject its row,
not fail the run. The source reads such a value as NULL and names it in one more column of the
batch, so that it crosses the reading process's pipe with the rows; the mapping takes that column
off before it looks at the query's columns. The column is known by its field metadata, which no
column of a query carries.
"""

from __future__ import annotations

import pyarrow as pa

_MARK = b"reverse_etl.unreadable"
_TYPE = pa.struct([("column", pa.string()), ("reason", pa.string())])

Unreadable = dict[int, tuple[str, str]]  # row → (the query's column, why its value cannot be read)


def with_unreadable(batch: pa.RecordBatch, unreadable: Unreadable) -> pa.RecordBatch:
    """`batch` with a column naming its unreadable values (unchanged when there are none)."""
    if not unreadable:
        return batch
    named = [
        {"column": unreadable[row][0], "reason": unreadable[row][1]} if row in unreadable else None
        for row in range(batch.num_rows)
    ]
    marker = pa.field("unreadable values", _TYPE, metadata={_MARK: b"1"})
    return pa.RecordBatch.from_arrays(
        [*batch.columns, pa.array(named, _TYPE)], schema=batch.schema.append(marker)
    )


def take_unreadable(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, Unreadable]:
    """The query's columns alone, and the unreadable values the source named."""
    for index, arrow_field in enumerate(batch.schema):
        if (arrow_field.metadata or {}).get(_MARK):
            named = batch.column(index).to_pylist()
            unreadable = {row: (v["column"], v["reason"]) for row, v in enumerate(named) if v is not None}
            return batch.remove_column(index), unreadable
    return batch, {}
