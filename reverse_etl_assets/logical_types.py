"""What the source tells the mapping about a column beyond its Arrow type: a logical type of its
own vocabulary, never a database's type name, carried in the Arrow field's metadata. The mapping
reads only this and the Arrow type, so another database only has to say the same words."""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

LOGICAL_TYPE = b"reverse_etl.logical_type"


class LogicalType(StrEnum):
    FLAG = "flag"  # a small integer that means true/false (MySQL TINYINT(1), BOOLEAN)
    BIT_FLAG = "bit_flag"  # a single bit: true/false, or 0/1 as a number (BIT(1))
    BITS = "bits"  # bytes that are an unsigned number (BIT(n))
    SET = "set"  # comma-separated names, a list of strings (MySQL SET)
    JSON = "json"  # a JSON document carried as text


def field_metadata(logical_type: LogicalType | None) -> dict[bytes, bytes] | None:
    return {LOGICAL_TYPE: logical_type.value.encode()} if logical_type is not None else None


def logical_type(arrow_field: pa.Field) -> LogicalType | None:
    value = (arrow_field.metadata or {}).get(LOGICAL_TYPE)
    return LogicalType(value.decode()) if value else None
