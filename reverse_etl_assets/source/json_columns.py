"""Find MariaDB's JSON columns, which reach the client as plain LONGTEXT.

MariaDB implements `JSON` as `LONGTEXT COLLATE utf8mb4_bin CHECK (json_valid(col))`. The result
metadata names the table and column a result column comes from, so the check constraint tells
which are JSON. Expressions (`JSON_OBJECT(...)`) and derived tables cannot be traced: for those,
the sync declares `column_types: {col: json}`.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from pymysql.constants import FIELD_TYPE, FLAG

from reverse_etl_assets.source.type_mapping import BINARY_CHARSET, ColumnInfo

_LONG_TEXT = {FIELD_TYPE.BLOB, FIELD_TYPE.LONG_BLOB}


def mark_json_columns(engine: sa.Engine, columns: list[ColumnInfo]) -> list[ColumnInfo]:
    """Return `columns` with `json=True` on those that are MariaDB JSON columns of a table."""
    candidates = [
        c
        for c in columns
        if not c.json
        and c.type_code in _LONG_TEXT
        and c.flags & FLAG.BINARY  # utf8mb4_bin: every JSON column has it
        and c.charset != BINARY_CHARSET
        and c.schema
        and c.table
        and c.column
    ]
    if not candidates:
        return columns
    tables = {(c.schema, c.table) for c in candidates}
    condition = " OR ".join(["(CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s)"] * len(tables))
    sql = (
        "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
        f"WHERE {condition}"
    )
    try:
        # A second, short connection: the main one is busy streaming the result.
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(sql, tuple(v for table in tables for v in table)).all()
    except sa.exc.DBAPIError:
        return columns  # MySQL before 8.0.16 has no CHECK_CONSTRAINTS (and no such JSON columns)
    json_checks = {(schema, table, clause.replace(" ", "").lower()) for schema, table, clause in rows}
    return [
        dataclasses.replace(c, json=True)
        if c in candidates and (c.schema, c.table, f"json_valid(`{c.column.lower()}`)") in json_checks
        else c
        for c in columns
    ]
