"""The benchmark's data: a realistic `users` table per row count in the `reverse_etl_bench` database.

Rows are generated inside MariaDB (SEQUENCE engine, `INSERT ... SELECT`), in chunks so that no single
transaction grows huge. A table is reused when its comment carries the current generator version and
it holds exactly the requested number of rows.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import pymysql

DATABASE = "reverse_etl_bench"
GENERATOR_VERSION = "v1"
CHUNK_ROWS = 500_000

# The one sync query of the whole benchmark; `{table}` is the table for the row count.
SYNC_QUERY = (
    "SELECT id AS userId, email, first_name, last_name, phone, plan, balance, is_active, preferences, "
    "created_at, updated_at FROM {table} WHERE updated_at >= FROM_UNIXTIME({{{{last_sync_time}}}})"
)

_FIRST_NAMES = (
    "Alice", "Bob", "Carla", "David", "Emma", "Farid", "Grace", "Hiro", "Inès", "José", "Kofi", "Lena",
    "Mateo", "Nora", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tanvi", "Uma", "Victor", "Zoë", "Łukasz",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Johnson", "Garcia", "Müller", "Dubois", "Rossi", "Kowalski", "Nakamura", "Okafor", "Silva",
    "Novak", "Jensen", "O'Brien", "Haddad", "Kim", "Nguyen", "Patel", "Cohen", "Ivanova", "Larsen",
    "Martín", "Schmidt", "Bianchi", "Andersson", "Fernández", "Wójcik", "Yamamoto", "Mensah", "Costa", "Ali",
)  # fmt: skip
_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "example.com", "icloud.com", "proton.me")

_CREATE_TABLE = """
CREATE TABLE {table} (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  email VARCHAR(255) NOT NULL,
  first_name VARCHAR(100) NULL,
  last_name VARCHAR(100) NULL,
  phone VARCHAR(32) NULL,
  plan ENUM('free','starter','pro','enterprise') NOT NULL DEFAULT 'free',
  balance DECIMAL(12,2) NOT NULL DEFAULT 0,
  is_active TINYINT(1) NOT NULL DEFAULT 1,
  preferences JSON NULL,
  created_at DATETIME NOT NULL,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  KEY idx_updated_at (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='{comment}'
"""


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


_FIRST = f"ELT(1 + seq % {len(_FIRST_NAMES)}, {_sql_list(_FIRST_NAMES)})"
_LAST = f"ELT(1 + (seq DIV {len(_FIRST_NAMES)}) % {len(_LAST_NAMES)}, {_sql_list(_LAST_NAMES)})"

# One row per `seq`; every value is a deterministic function of it. Roughly 1 in 7 phones and 1 in 13
# preference objects are NULL, as in real data.
_INSERT = f"""
INSERT INTO @TABLE@
  (id, email, first_name, last_name, phone, plan, balance, is_active, preferences, created_at, updated_at)
SELECT
  seq,
  LOWER(CONCAT(REPLACE({_FIRST}, ' ', ''), '.', REPLACE(REPLACE({_LAST}, ' ', ''), '''', ''), '.', seq, '@',
               ELT(1 + seq % {len(_DOMAINS)}, {_sql_list(_DOMAINS)}))),
  {_FIRST},
  {_LAST},
  IF(seq % 7 = 0, NULL, CONCAT('+1', 200 + seq % 800, LPAD(seq * 31 % 10000000, 7, '0'))),
  CASE WHEN seq * 13 % 100 < 60 THEN 'free' WHEN seq * 13 % 100 < 85 THEN 'starter'
       WHEN seq * 13 % 100 < 97 THEN 'pro' ELSE 'enterprise' END,
  (seq * 7907 % 10000000) / 100,
  seq % 11 <> 0,
  IF(seq % 13 = 0, NULL, CONCAT(
    '{{"newsletter":', IF(seq % 2 = 0, 'true', 'false'),
    ',"language":"', ELT(1 + seq % 5, 'en', 'fr', 'de', 'es', 'pt-BR'),
    '","theme":"', IF(seq % 3 = 0, 'dark', 'light'),
    '","notifications":{{"email":true,"sms":', IF(seq % 4 = 0, 'true', 'false'), '}}}}')),
  TIMESTAMP'2016-01-01 00:00:00' + INTERVAL (seq * 7919 % 283996800) SECOND,
  TIMESTAMP'2016-01-01 00:00:00' + INTERVAL (seq * 7919 % 283996800) SECOND
    + INTERVAL (seq * 104729 % 31536000) SECOND
FROM seq_@FIRST@_to_@LAST@
"""


@dataclass(frozen=True)
class Dataset:
    rows: int
    table: str
    view: str  # the sync query as a view (for dlt, which reads tables and views)
    query_template: str  # with {{last_sync_time}}
    query: str  # rendered with last_sync_time = 0


def table_name(rows: int) -> str:
    return f"users_{rows}"


def dataset(rows: int) -> Dataset:
    table = table_name(rows)
    template = SYNC_QUERY.format(table=table)
    return Dataset(rows, table, f"{table}_sync", template, template.replace("{{last_sync_time}}", "0"))


def connect(host: str, port: int, user: str, password: str, database: str | None = None):
    return pymysql.connect(
        host=host, port=port, user=user, password=password, database=database, charset="utf8mb4",
        autocommit=True,
    )  # fmt: skip


def ensure(rows: int, host: str, port: int, user: str, password: str, regenerate: bool = False) -> Dataset:
    """Create (or reuse) the table with `rows` rows and the view of the sync query over it."""
    data = dataset(rows)
    comment = f"reverse_etl_bench {GENERATOR_VERSION} rows={rows}"
    with connect(host, port, user, password) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE} CHARACTER SET utf8mb4")
        cursor.execute(f"USE {DATABASE}")
        cursor.execute("SET time_zone = '+00:00'")
        cursor.execute(
            "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (DATABASE, data.table),
        )
        found = cursor.fetchone()
        reuse = False
        if found is not None and found[0] == comment and not regenerate:
            cursor.execute(f"SELECT COUNT(*) FROM {data.table}")
            reuse = cursor.fetchone()[0] == rows
        if reuse:
            _say(f"reusing {DATABASE}.{data.table} ({rows:,} rows)")
        else:
            _generate(cursor, data.table, rows, comment)
        cursor.execute(f"CREATE OR REPLACE VIEW {data.view} AS {data.query}")
    return data


def _generate(cursor, table: str, rows: int, comment: str) -> None:
    began = time.monotonic()
    _say(f"generating {DATABASE}.{table}: {rows:,} rows ...")
    cursor.execute(f"DROP TABLE IF EXISTS {table}")
    cursor.execute(_CREATE_TABLE.format(table=table, comment=comment))
    cursor.execute("SET SESSION unique_checks = 0")
    for first in range(1, rows + 1, CHUNK_ROWS):
        last = min(first + CHUNK_ROWS - 1, rows)
        cursor.execute("START TRANSACTION")
        sql = _INSERT.replace("@TABLE@", table).replace("@FIRST@", str(first)).replace("@LAST@", str(last))
        cursor.execute(sql)
        cursor.execute("COMMIT")
    cursor.execute(f"ANALYZE TABLE {table}")
    cursor.fetchall()
    _say(f"generated {table} in {time.monotonic() - began:.0f} s")


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
