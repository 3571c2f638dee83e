"""The payload-fidelity cases found by trying the product as a new user and as an attacker would:
each one a real table on MariaDB, run through every driver that can read it, the preview too.
(The generated search for more of each class is test_fidelity_oracle.py.)"""

from __future__ import annotations

import json
import re
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.preview import SyncPreview, preview_sync
from reverse_etl_assets.sync_run import SyncRunResult, run_sync
from reverse_etl_tests.conftest import (
    ScratchDatabase,
    admin_connection,
    reverse_etl,
    sync_entry,
    write_config,
)

DRIVERS = ["pymysql", "mysqlclient", "connectorx"]


def project(tmp_path: Path, db: ScratchDatabase, query: str, driver: str = "pymysql", **sync: Any) -> Path:
    """A configuration of its own (and an outbox folder of its own) for each run."""
    folder = tmp_path / uuid.uuid4().hex[:8]
    folder.mkdir()
    return write_config(
        folder / "reverse_etl.yaml",
        {
            "databases": {"app_db": db.config(driver=driver)},
            "destinations": {"dry_run": {"kind": "outbox", "path": str(folder / "outbox")}},
            "syncs": [sync_entry("cases", query, ["dry_run"], **sync)],
        },
    )


def run(tmp_path: Path, db: ScratchDatabase, query: str, driver: str = "pymysql", **sync: Any) -> Ran:
    config = load_config(project(tmp_path, db, query, driver, **sync))
    destination = config.project.destinations["dry_run"]
    with closing(open_destination("dry_run", destination, "cases", tmp_path)) as sender:
        result = run_sync(config, "cases", "dry_run", 0, sender)
    outbox = config.path.parent / "outbox" / "cases.jsonl"
    return Ran(result, outbox.read_bytes().splitlines() if outbox.exists() else [])


def preview(
    tmp_path: Path, db: ScratchDatabase, query: str, driver: str = "pymysql", **sync: Any
) -> SyncPreview:
    config = load_config(project(tmp_path, db, query, driver, **sync))
    return preview_sync(config, "cases", "dry_run", 0, limit=50)


class Ran:
    def __init__(self, result: SyncRunResult, bodies: list[bytes]) -> None:
        self.result = result
        self.bodies = bodies
        self.calls = [orjson.loads(body) for body in bodies]  # every body is one JSON document
        self.rejected = {r.row_number: (r.field, r.reason) for r in result.rejected_sample}


def insert_unchecked(db: ScratchDatabase, sql: str, args: Any = None, sql_mode: str | None = None) -> None:
    """Write what MariaDB would refuse by default: JSON that fails json_valid, invalid dates."""
    with closing(admin_connection(db.name)) as connection, connection.cursor() as cursor:
        cursor.execute("SET SESSION check_constraint_checks = 0")
        if sql_mode is not None:
            cursor.execute("SET SESSION sql_mode = %s", (sql_mode,))
        cursor.execute(sql, args)


# -- JSON from the database is parsed, never spliced --------------------------------------------------

STORED_JSON = [
    (1, '  {"a": 1 ,\n "b": [1.10, 1E2, 123456789012345678901234567890]}  '),  # passes json_valid
    (2, "1."),
    (3, "-"),
    (4, '"\\x41"'),
    (5, "1e"),
    (6, '1},"userId":"attacker","x":{"y":1'),  # closes the traits object: a second userId
    (7, '{"a":1} {"b":2}'),
    (8, "null"),
    (9, '"plain text"'),
]


@pytest.fixture
def stored_json(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute("CREATE TABLE docs (id INT PRIMARY KEY, js JSON)")
    for row in STORED_JSON:
        insert_unchecked(mysql_db, "INSERT INTO docs VALUES (%s, %s)", row)
    return mysql_db


@pytest.mark.parametrize("driver", DRIVERS)
def test_json_column_text_is_parsed_and_written_again_never_spliced(tmp_path, stored_json, driver):
    ran = run(
        tmp_path,
        stored_json,
        "SELECT id AS userId, js FROM docs ORDER BY id",
        driver,
        column_types={"js": "json"},
    )
    assert not any(b"attacker" in body for body in ran.bodies)
    assert [call["userId"] for call in ran.calls] == ["1", "8", "9"]
    # Written compactly, with each number exactly as stored.
    assert b'"js":{"a":1,"b":[1.10,1E2,123456789012345678901234567890]}' in ran.bodies[0]
    assert "js" not in ran.calls[1].get("traits", {})  # the document null is NULL: left out
    assert ran.calls[2]["traits"] == {"js": "plain text"}
    assert set(ran.rejected) == {2, 3, 4, 5, 6, 7}
    for field, reason in ran.rejected.values():
        assert field == "traits.js" and reason.startswith("not valid JSON")


def test_a_traced_json_column_is_parsed_too(tmp_path, stored_json):
    """PyMySQL traces MariaDB's JSON columns to their table: the database vouches for nothing."""
    ran = run(tmp_path, stored_json, "SELECT id AS userId, js FROM docs ORDER BY id")
    assert set(ran.rejected) == {2, 3, 4, 5, 6, 7}
    assert not any(b"attacker" in body for body in ran.bodies)


def test_a_json_null_document_is_null_and_send_nulls_sends_it(tmp_path, stored_json):
    query = "SELECT id AS userId, js FROM docs WHERE id = 8"
    assert run(tmp_path, stored_json, query).calls[0].get("traits") is None
    assert run(tmp_path, stored_json, query, send_nulls=True).calls[0]["traits"] == {"js": None}


@pytest.mark.parametrize("driver", DRIVERS)
def test_whole_object_columns_with_whitespace_fill_their_object(tmp_path, mysql_db, driver):
    mysql_db.execute("CREATE TABLE objects (id INT, t JSON, c JSON)")
    mysql_db.execute(
        'INSERT INTO objects VALUES (1, \'  {"plan": "pro", "n": 1.50}\n\', \' {"ip": "10.0.0.1"} \')'
    )
    query = "SELECT id AS userId, t AS traits, c AS context FROM objects"
    ran = run(tmp_path, mysql_db, query, driver, column_types={"traits": "json", "context": "json"})
    assert b'"traits":{"plan":"pro","n":1.50}' in ran.bodies[0]
    assert ran.calls[0]["context"]["ip"] == "10.0.0.1" and "library" in ran.calls[0]["context"]


# -- NULLs and values with a fixed set ---------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_null_in_an_enum_valued_field_is_left_out(tmp_path, mysql_db, driver):
    mysql_db.execute("CREATE TABLE devices (id INT, channel VARCHAR(10), kind VARCHAR(10))")
    mysql_db.execute("INSERT INTO devices VALUES (1, NULL, NULL), (2, 'mobile', 'ios'), (3, 'fax', NULL)")
    query = (
        "SELECT id AS userId, channel AS `context.channel`, kind AS `context.device.type` "
        "FROM devices ORDER BY id"
    )
    ran = run(tmp_path, mysql_db, query, driver)
    assert [call["userId"] for call in ran.calls] == ["1", "2"]
    assert set(ran.calls[0]["context"]) == {"library"}
    assert ran.calls[1]["context"]["device"] == {"type": "ios"}
    assert ran.rejected == {3: ("context.channel", "'fax' is not one of browser, server, mobile")}


# -- DECIMAL digits -------------------------------------------------------------------------------

DECIMALS = [
    ("DECIMAL(20,10)", "0.0000001000"),
    ("DECIMAL(20,10)", "-0.0000000001"),
    ("DECIMAL(20,10)", "0.0000000000"),
    ("DECIMAL(65,30)", "-0.000000000000000000000000000001"),
    ("DECIMAL(65,30)", "0.000000000000000000000000000000"),
    ("DECIMAL(65,0)", "-99999999999999999999999999999999999999999999999999999999999999999"),
    ("DECIMAL(10,2)", "0.00"),
    ("DECIMAL(5,5)", "0.00001"),
]


@pytest.mark.parametrize("driver", DRIVERS)
def test_decimals_keep_the_digits_the_server_prints(tmp_path, mysql_db, driver):
    columns = ", ".join(f"d{i} {kind}" for i, (kind, _) in enumerate(DECIMALS))
    mysql_db.execute(f"CREATE TABLE money (id INT, {columns})")
    mysql_db.execute(f"INSERT INTO money VALUES (1, {', '.join(value for _, value in DECIMALS)})")
    if driver == "connectorx":  # it refuses DECIMALs wider than it can hold, before reading
        chosen = [i for i, (kind, _) in enumerate(DECIMALS) if kind in ("DECIMAL(20,10)", "DECIMAL(10,2)")]
    else:
        chosen = list(range(len(DECIMALS)))
    query = f"SELECT d0 AS userId, {', '.join(f'd{i}' for i in chosen)} FROM money"
    ran = run(tmp_path, mysql_db, query, driver)
    body = ran.bodies[0].decode()
    assert '"userId":"0.0000001000"' in body
    for i in chosen:
        assert f'"d{i}":{DECIMALS[i][1]},' in body or f'"d{i}":{DECIMALS[i][1]}}}' in body, (i, body)
    assert "E" not in body.replace("messageId", "")
    assert preview(tmp_path, mysql_db, query, driver).payloads == ran.bodies


# -- values that cannot be read reject their row, and the run goes on ------------------------------


@pytest.mark.parametrize("driver", ["pymysql", "mysqlclient"])
def test_an_invalid_date_rejects_its_row_and_the_run_goes_on(tmp_path, mysql_db, driver):
    mysql_db.execute("CREATE TABLE visits (id INT, day DATE, moment DATETIME(3))")
    insert_unchecked(
        mysql_db,
        "INSERT INTO visits VALUES (1, '2026-02-31', '2026-01-01 10:00:00'), "
        "(2, '2026-02-28', '2026-04-31 10:00:00.500'), (3, '2026-02-28', '2026-02-28 10:00:00.250')",
        sql_mode="ALLOW_INVALID_DATES",
    )
    ran = run(
        tmp_path, mysql_db, "SELECT id AS userId, day, moment FROM visits ORDER BY id", driver, batch_rows=2
    )
    assert [call["userId"] for call in ran.calls] == ["3"]
    assert ran.calls[0]["traits"] == {"day": "2026-02-28", "moment": "2026-02-28T10:00:00.250000+00:00"}
    assert ran.rejected[1][0] == "traits.day" and "'2026-02-31'" in ran.rejected[1][1]
    assert ran.rejected[2][0] == "traits.moment" and "'2026-04-31 10:00:00.500'" in ran.rejected[2][1]
    assert ran.result.next_last_sync_time is not None  # the run completed


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("2026-13-45T99:99:99+00:00", False),
        ("2026-02-30T10:00:00Z", False),
        ("2026-02-28T24:00:00+01:00", False),
        ("2026-02-28T10:00:00", False),  # no offset
        ("2026-02-28T10:00:00.123456789+05:30", True),
        ("2024-02-29 23:59:59Z", True),
    ],
)
def test_a_timestamp_text_must_name_a_real_instant(tmp_path, mysql_db, text, sent):
    query = f"SELECT 'Signed Up' AS event, 1 AS userId, '{text}' AS timestamp"
    ran = run(tmp_path, mysql_db, query, type="track")
    if sent:
        assert ran.calls[0]["timestamp"] == text
    else:
        assert ran.calls == [] and ran.rejected[1][0] == "timestamp"


# -- the preview is the run -------------------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_preview_shows_the_bytes_the_run_sends(tmp_path, mysql_db, driver):
    mysql_db.execute("CREATE TABLE mixed (id INT, money DECIMAL(10,2), js JSON, note TEXT)")
    mysql_db.execute(
        'INSERT INTO mixed VALUES (1, 0.00, \'{"tags": ["a", 1.0]}\', \'line\\nbreak \\"q\\"\'), '
        "(2, 12.50, NULL, NULL), (3, NULL, '  [1,2]  ', '😀')"
    )
    query = "SELECT id AS userId, money, js, note FROM mixed ORDER BY id"
    ran = run(tmp_path, mysql_db, query, driver, column_types={"js": "json"}, batch_rows=2)
    shown = preview(tmp_path, mysql_db, query, driver, column_types={"js": "json"}, batch_rows=2)
    assert shown.payloads == ran.bodies
    assert b'"money":0.00' in ran.bodies[0] and b'"tags":["a",1.0]' in ran.bodies[0]


@pytest.mark.parametrize(
    "ending",
    [
        "\n-- the last line is a comment",
        " # a hash comment",
        ";",
        "; -- done",
        ";\n# done\n",
        " /* note */ ;",
    ],
)
def test_a_query_ending_in_a_comment_or_semicolon_works_everywhere(tmp_path, mysql_db, ending):
    mysql_db.execute("CREATE TABLE people (id INT, updated_at DATETIME DEFAULT CURRENT_TIMESTAMP)")
    mysql_db.execute("INSERT INTO people (id) VALUES (1), (2)")
    query = (
        f"SELECT id AS userId FROM people WHERE updated_at >= FROM_UNIXTIME({{{{last_sync_time}}}}){ending}"
    )
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": mysql_db.config()},
            "destinations": {"dry_run": {"kind": "outbox"}},
            "syncs": [sync_entry("people", query, ["dry_run"])],
        },
    )
    for command in (
        ["validate"],
        ["preview", "people"],
        ["cursor", "reset", "people", "--destination", "dry_run", "--yes"],
        ["run", "people"],
    ):
        done = reverse_etl(*command, cwd=tmp_path, env={"DAGSTER_HOME": str(tmp_path / ".dagster")})
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    assert len((tmp_path / "outbox" / "dry_run" / "people.jsonl").read_text().splitlines()) == 2


# -- what the destination would refuse is shown before anything is sent ----------------------------


def test_the_preview_and_validate_show_calls_the_destination_would_refuse(tmp_path, mysql_db):
    query = "SELECT 1 AS userId, 'Pricing' AS name, JSON_ARRAY('plans', 'prices') AS `context.page.keywords`"
    shown = preview(tmp_path, mysql_db, query, type="page")
    [problem] = shown.schema_problems
    assert problem.row_number == 1
    assert re.search(r"context\.page\.keywords: .* is not of type 'array'", problem.reasons[0]), problem
    declared = preview(tmp_path, mysql_db, query, type="page", column_types={"context.page.keywords": "json"})
    assert declared.schema_problems == [] and declared.calls[0]["context"]["page"]["keywords"] == [
        "plans",
        "prices",
    ]

    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": mysql_db.config()},
            "destinations": {"dry_run": {"kind": "outbox"}},
            "syncs": [sync_entry("pages", query, ["dry_run"], type="page")],
        },
    )
    validated = reverse_etl("validate", cwd=tmp_path, env={"DAGSTER_HOME": str(tmp_path / ".dagster")})
    assert "the destination's published schema refuses 1 of the calls" in validated.stderr, validated.stderr
    assert "context.page.keywords" in validated.stderr


def test_every_payload_is_one_json_document(tmp_path, stored_json):
    """The outbox holds what would be sent: one document a line, whatever the table holds."""
    ran = run(
        tmp_path,
        stored_json,
        "SELECT id AS userId, js AS traits FROM docs ORDER BY id",
        column_types={"traits": "json"},
    )
    assert [call["userId"] for call in ran.calls] == ["1", "8"]  # an object, and a NULL; the rest rejected
    for line in ran.bodies:
        assert isinstance(json.loads(line), dict)
