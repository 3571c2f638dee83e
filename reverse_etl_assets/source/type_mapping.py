"""Database column types → Arrow types.

The driver's column descriptions say what each result column is. Where the type says more than the
Python values do (a DECIMAL's scale, a DATETIME's zone, a JSON column that arrives as text), we
declare the Arrow type; elsewhere Arrow infers it from the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pymysql.constants import FIELD_TYPE, FLAG

from reverse_etl_assets.logical_types import LogicalType, field_metadata

BINARY_CHARSET = 63

_INTEGER_TYPES = {FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG, FIELD_TYPE.YEAR}
_TEMPORAL_TYPES = {FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP}
TEXT_TYPES = {
    FIELD_TYPE.VARCHAR,
    FIELD_TYPE.VAR_STRING,
    FIELD_TYPE.STRING,
    FIELD_TYPE.TINY_BLOB,
    FIELD_TYPE.MEDIUM_BLOB,
    FIELD_TYPE.LONG_BLOB,
    FIELD_TYPE.BLOB,
}


@dataclass(frozen=True)
class ColumnInfo:
    """What the driver tells us about one result column."""

    name: str
    type_code: int | None = None
    length: int = 0
    scale: int = 0
    flags: int = 0
    charset: int = 0
    # Where the column comes from, when it is a plain column of a table (not an expression).
    schema: str = ""
    table: str = ""
    column: str = ""
    json: bool = False  # MySQL says so in the type; MariaDB's JSON is LONGTEXT (see json_columns.py)
    charset_known: bool = True  # mysqlclient does not tell a column's charset

    @property
    def is_text_type(self) -> bool:
        return self.type_code in TEXT_TYPES

    @property
    def binary(self) -> bool | None:
        """A binary string (VARBINARY, BLOB)? None when the driver does not say."""
        if not self.charset_known:
            return None
        return self.is_text_type and self.charset == BINARY_CHARSET

    @property
    def unsigned(self) -> bool:
        return bool(self.flags & FLAG.UNSIGNED)

    @property
    def logical_type(self) -> LogicalType | None:
        """What the mapping needs to know that the Arrow type does not say."""
        code = self.type_code
        if code in (FIELD_TYPE.TINY, FIELD_TYPE.BIT) and self.length == 1:
            return LogicalType.FLAG if code == FIELD_TYPE.TINY else LogicalType.BIT_FLAG
        if code == FIELD_TYPE.BIT:
            return LogicalType.BITS
        if self.flags & FLAG.SET:
            return LogicalType.SET
        if self.json:
            return LogicalType.JSON
        return None


def describe_columns(cursor: Any) -> list[ColumnInfo]:
    """Column information from a DB-API cursor: PyMySQL's field packets carry flags, charset and
    origin; mysqlclient has flags beside its description; SQLite has names only."""
    fields = getattr(getattr(cursor, "_result", None), "fields", None)
    if fields:
        return [
            ColumnInfo(
                name=f.name,
                type_code=f.type_code,
                length=f.length,
                scale=f.scale,
                flags=f.flags,
                charset=f.charsetnr,
                schema=f.db.decode() if isinstance(f.db, bytes) else (f.db or ""),
                table=f.org_table or "",
                column=f.org_name or "",
                json=f.type_code == FIELD_TYPE.JSON,
            )
            for f in fields
        ]
    flags = getattr(cursor, "description_flags", None)
    if flags is not None:
        return [
            ColumnInfo(
                name=d[0],
                type_code=d[1],
                length=d[3] or 0,
                scale=d[5] or 0,
                flags=flag,
                json=d[1] == FIELD_TYPE.JSON,
                charset_known=False,
            )
            for d, flag in zip(cursor.description, flags, strict=True)
        ]
    return [ColumnInfo(name=d[0]) for d in cursor.description]


def declared_arrow_type(column: ColumnInfo, time_zone: str) -> pa.DataType | None:
    """The Arrow type the column's database type calls for, or None to infer from the values."""
    code = column.type_code
    if code in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
        # length counts digits plus sign and point, so it bounds the precision from above.
        if column.length <= 38:
            return pa.decimal128(38, column.scale)
        return pa.decimal256(76, column.scale)
    if code in _INTEGER_TYPES:
        return pa.int64()
    if code == FIELD_TYPE.LONGLONG:
        return pa.uint64() if column.unsigned else pa.int64()
    if code in (FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE):
        return pa.float64()
    if code in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE):
        return pa.date32()
    if code in _TEMPORAL_TYPES:
        return pa.timestamp("us", tz=time_zone)
    if code == FIELD_TYPE.TIME:
        return pa.duration("us")
    if column.json:
        return pa.string()
    return None


def arrow_field(column: ColumnInfo, arrow_type: pa.DataType) -> pa.Field:
    return pa.field(column.name, arrow_type, metadata=field_metadata(column.logical_type))
