"""Every MySQL/MariaDB column type, read from a real server, mapped and checked value by value."""

from __future__ import annotations

import base64
import json
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.mapping.calls import CallMapper, MappingOptions
from reverse_etl_assets.sync_run import SyncRunResult, run_sync
from reverse_etl_tests.conftest import ScratchDatabase, admin_connection, sync_entry, write_config

DEEP_JSON = {"a": {"b": {"c": {"d": {"e": {"f": [1, 2, {"g": [True, None, "ü😀"]}]}}}}}, "n": 1.5}
MAX_DECIMAL = "99999999999999999999999999999999999.999999999999999999999999999999"

TABLE = """
CREATE TABLE everything (
  id INT PRIMARY KEY,
  tiny TINYINT, tiny_flag TINYINT(1), small SMALLINT, medium MEDIUMINT UNSIGNED, plain INT,
  big BIGINT, ubig BIGINT UNSIGNED,
  dec65 DECIMAL(65,30), money DECIMAL(10,2),
  f FLOAT, d DOUBLE,
  day DATE, moment DATETIME(6), stamp TIMESTAMP(6) NULL, clock TIME(6), yr YEAR,
  ch CHAR(10), vc VARCHAR(100), tx TEXT, empty VARCHAR(10),
  bn BINARY(4), vb VARBINARY(16), bl BLOB,
  js JSON,
  en ENUM('small','large'), st SET('red','green','blue'),
  bits BIT(5), bit_flag BIT(1),
  nothing VARCHAR(10)
) CHARACTER SET utf8mb4
"""


@pytest.fixture
def everything(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute(TABLE)
    mysql_db.execute(
        "INSERT INTO everything VALUES (1, 127, 1, -32768, 16777215, -2147483648, "
        "-9223372036854775808, 18446744073709551615, %s, 12345678.90, 1.5, 1e308, "
        "'2026-02-28', '2026-02-28 23:59:59.123456', '2026-02-28 23:59:59.654321', '-838:59:59', 2155, "
        "'abc', 'héllo wörld 😀🎉', %s, '', X'00FF10EE', X'DEADBEEF', X'00010203', %s, 'large', 'red,blue', "
        "b'10101', b'1', NULL)",
        (MAX_DECIMAL, 'line1\nline2 "quoted" \\ back', json.dumps(DEEP_JSON)),
    )
    mysql_db.execute(
        "INSERT INTO everything (id, tiny_flag, bit_flag, st, clock) VALUES (2, 0, b'0', '', '12:30:00.5')"
    )
    return mysql_db


def sync_everything(tmp_path: Path, db: ScratchDatabase, **sync: Any) -> tuple[SyncRunResult, list[bytes]]:
    config_path = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": db.config(time_zone="+00:00")},
            "destinations": {"dry_run": {"kind": "outbox", "path": str(tmp_path / "out")}},
            "syncs": [
                sync_entry(
                    "everything",
                    "SELECT id AS userId, e.* FROM everything e ORDER BY id",
                    ["dry_run"],
                    **sync,
                )
            ],
        },
    )
    config = load_config(config_path)
    destination = config.project.destinations["dry_run"]
    with closing(open_destination("dry_run", destination, "everything", tmp_path)) as client:
        result = run_sync(config, "everything", "dry_run", 0, client)
    return result, (tmp_path / "out" / "everything.jsonl").read_bytes().splitlines()


def test_every_column_type_maps_to_the_documented_json(tmp_path, everything):
    result, lines = sync_everything(tmp_path, everything)
    assert result.stats.rows_rejected == 0, result.rejected_sample
    first = json.loads(lines[0], parse_float=Decimal, parse_int=int)
    traits = first["traits"]
    assert first["userId"] == "1"
    assert traits["id"] == 1
    assert traits["tiny"] == 127
    assert traits["tiny_flag"] is True
    assert traits["small"] == -32768
    assert traits["medium"] == 16777215
    assert traits["plain"] == -2147483648
    assert traits["big"] == -9223372036854775808
    assert traits["ubig"] == 18446744073709551615  # no digit lost beyond 2^53
    assert traits["dec65"] == Decimal(MAX_DECIMAL)
    assert traits["money"] == Decimal("12345678.90")
    assert traits["f"] == Decimal("1.5") and traits["d"] == Decimal("1e308")
    assert traits["day"] == "2026-02-28"
    assert traits["moment"] == "2026-02-28T23:59:59.123456+00:00"
    assert traits["stamp"] == "2026-02-28T23:59:59.654321+00:00"
    assert traits["clock"] == "-838:59:59"
    assert traits["yr"] == 2155
    assert traits["ch"] == "abc"
    assert traits["vc"] == "héllo wörld 😀🎉"
    assert traits["tx"] == 'line1\nline2 "quoted" \\ back'
    assert traits["empty"] == ""
    assert base64.b64decode(traits["bn"]) == bytes.fromhex("00FF10EE")
    assert base64.b64decode(traits["vb"]) == bytes.fromhex("DEADBEEF")
    assert base64.b64decode(traits["bl"]) == bytes.fromhex("00010203")
    assert json.loads(json.dumps(traits["js"], default=float)) == DEEP_JSON
    assert traits["en"] == "large"
    assert traits["st"] == ["red", "blue"]
    assert traits["bits"] == 21
    assert traits["bit_flag"] is True
    assert "nothing" not in traits  # NULL is left out by default

    # The exact digits are in the JSON text itself, not only after a lossless parse.
    assert b'"ubig":18446744073709551615' in lines[0]
    assert f'"dec65":{MAX_DECIMAL}'.encode() in lines[0]
    assert '"vc":"héllo wörld 😀🎉"'.encode() in lines[0]

    second = json.loads(lines[1])
    assert second["traits"]["tiny_flag"] is False and second["traits"]["bit_flag"] is False
    assert second["traits"]["st"] == [] and second["traits"]["clock"] == "12:30:00.500000"
    assert set(second["traits"]) == {"id", "tiny_flag", "st", "clock", "bit_flag"}


def test_send_nulls_sends_them_in_traits_only(tmp_path, everything):
    _, lines = sync_everything(tmp_path, everything, send_nulls=True)
    second = json.loads(lines[1])
    assert second["traits"]["nothing"] is None and second["traits"]["js"] is None
    assert len(second["traits"]) == 30  # every column of the table
    assert "timestamp" not in second


def test_column_types_override_the_database_type(tmp_path, everything):
    _, lines = sync_everything(
        tmp_path, everything, column_types={"tiny_flag": "string", "ubig": "string", "vb": "hex"}
    )
    first = json.loads(lines[0])
    assert first["traits"]["tiny_flag"] == "1"
    assert first["traits"]["ubig"] == "18446744073709551615"
    assert first["traits"]["vb"] == "deadbeef"


def test_a_column_declared_json_that_is_not_json_rejects_its_row(tmp_path, everything):
    result, lines = sync_everything(tmp_path, everything, column_types={"tx": "json"})
    [rejected] = result.rejected_sample
    assert (rejected.row_number, rejected.field) == (1, "traits.tx")
    assert rejected.reason.startswith("not valid JSON")
    assert rejected.row["userId"] == 1  # the report carries the row, to find and fix it
    assert [json.loads(line)["userId"] for line in lines] == ["2"]


def test_zero_dates_are_null(tmp_path, mysql_db):
    mysql_db.execute("CREATE TABLE z (id INT, day DATE, moment DATETIME)")
    with closing(admin_connection(mysql_db.name)) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = ''")
            cursor.execute(
                "INSERT INTO z VALUES (1, '0000-00-00', '0000-00-00 00:00:00'), (2, '2026-01-01', NULL)"
            )
    config_path = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": mysql_db.config()},
            "destinations": {"dry_run": {"kind": "outbox", "path": str(tmp_path / "out")}},
            "syncs": [
                sync_entry("zeros", "SELECT id AS userId, day, moment FROM z ORDER BY id", ["dry_run"])
            ],
        },
    )
    config = load_config(config_path)
    with closing(
        open_destination("dry_run", config.project.destinations["dry_run"], "zeros", tmp_path)
    ) as client:
        run_sync(config, "zeros", "dry_run", 0, client)
    calls = [json.loads(line) for line in (tmp_path / "out" / "zeros.jsonl").read_text().splitlines()]
    assert "traits" not in calls[0] or calls[0]["traits"] == {}
    assert calls[1]["traits"] == {"day": "2026-01-01"}


def test_non_finite_floats_are_rejected_not_sent(tmp_path):
    """MySQL cannot store NaN; SQLite (the demo's engine) can compute infinities."""
    import sqlite3

    path = tmp_path / "floats.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE f (id INTEGER, x REAL)")
        db.execute("INSERT INTO f VALUES (1, 1e999), (2, 2.5)")
        db.commit()
    config_path = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": {"kind": "sqlite", "path": str(path)}},
            "destinations": {"dry_run": {"kind": "outbox", "path": str(tmp_path / "out")}},
            "syncs": [sync_entry("floats", "SELECT id AS userId, x FROM f ORDER BY id", ["dry_run"])],
        },
    )
    config = load_config(config_path)
    with closing(
        open_destination("dry_run", config.project.destinations["dry_run"], "floats", tmp_path)
    ) as client:
        result = run_sync(config, "floats", "dry_run", 0, client)
    [rejected] = result.rejected_sample
    assert (rejected.row_number, rejected.field) == (1, "traits.x") and "infinities" in rejected.reason
    assert [
        json.loads(line)["userId"] for line in (tmp_path / "out" / "floats.jsonl").read_text().splitlines()
    ] == ["2"]


def test_nan_is_rejected_not_sent():
    """No database here produces NaN (MariaDB and SQLite both turn it into NULL), but a driver or a
    future source could: the mapper itself refuses it, as a trait and as an identifier."""
    batch = pa.RecordBatch.from_pydict({"userId": [1.0, float("nan"), 3.0], "x": [float("nan"), 2.5, 0.5]})
    mapped = CallMapper(MappingOptions("identify", "floats/dry_run")).map_batch(batch, first_row_number=1)
    assert [(r.row_number, r.field) for r in mapped.rejected] == [(1, "traits.x"), (2, "userId")]
    assert all(r.reason.startswith("nan is not a JSON number") for r in mapped.rejected)
    [call] = [json.loads(body) for body in mapped.calls.bodies.to_pylist()]
    assert (call["userId"], call["traits"]) == ("3", {"x": 0.5})


def test_empty_identifiers_are_left_out_and_huge_whole_floats_keep_their_value():
    """An empty string is no id: the field is left out (one key per name in the JSON), the message
    id is ours, and Customer.io's email fallback applies. A float beyond int64 is not wrapped."""
    batch = pa.RecordBatch.from_pydict(
        {
            "userId": ["", "u2", ""],
            "messageId": ["", "", "m3"],
            "email": ["a@x.io", "b@x.io", None],
            "score": [1.0, 2.0, 3.0],
        }
    )
    options = MappingOptions("identify", "ids/cio", email_identifies=True)
    mapped = CallMapper(options).map_batch(batch, first_row_number=1)
    bodies = mapped.calls.bodies.to_pylist()
    assert [(body.count('"userId"'), body.count('"messageId"')) for body in bodies] == [(1, 1), (1, 1)]
    first, second = (json.loads(body) for body in bodies)
    assert first["userId"] == "" and len(first["messageId"]) == 32  # the email fallback, our id
    assert second["userId"] == "u2"
    # Row 3 has neither an id nor an email: rejected, not sent with an empty id.
    assert [(r.row_number, r.field) for r in mapped.rejected] == [(3, "userId")]

    floats = pa.RecordBatch.from_pydict({"userId": [1e20, 7.0, 2.0**62]})
    mapped = CallMapper(MappingOptions("identify", "ids/x")).map_batch(floats, first_row_number=1)
    assert [json.loads(body)["userId"] for body in mapped.calls.bodies.to_pylist()] == [
        "1e+20",
        "7",
        "4611686018427387904",
    ]
