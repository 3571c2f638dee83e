"""What the fidelity oracle (test_fidelity_oracle.py) found, each as the smallest table that shows it,
asserting what docs/mapping.md says."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.preview import SyncPreview, preview_sync
from reverse_etl_assets.sync_run import SyncRunFailed, SyncRunResult, run_sync
from reverse_etl_tests.conftest import ScratchDatabase, sync_entry, write_config


def run_and_preview(
    tmp_path: Path,
    db: ScratchDatabase,
    query: str,
    call_type: str = "identify",
    driver: str = "pymysql",
    time_zone: str = "+00:00",
    **sync: Any,
) -> tuple[SyncRunResult, list[bytes], SyncPreview]:
    """The run's result and outbox lines, and the preview of the same rows."""
    out = tmp_path / f"out-{driver}"
    config = load_config(
        write_config(
            tmp_path / f"{driver}.yaml",
            {
                "databases": {"app_db": db.config(driver=driver, time_zone=time_zone)},
                "destinations": {"dry_run": {"kind": "outbox", "path": str(out)}},
                "syncs": [sync_entry("found", query, ["dry_run"], type=call_type, **sync)],
            },
        )
    )
    with closing(
        open_destination("dry_run", config.project.destinations["dry_run"], "found", tmp_path)
    ) as sender:
        result = run_sync(config, "found", "dry_run", 0, sender)
    outbox = out / "found.jsonl"
    lines = outbox.read_bytes().splitlines() if outbox.exists() else []
    preview = preview_sync(config, "found", "dry_run", 0, limit=10)
    return result, lines, preview


def rejected(result: SyncRunResult) -> list[tuple[int, str]]:
    return [(row.row_number, row.field) for row in result.rejected_sample]


def test_a_track_call_about_an_object_is_identified_by_its_group_id(
    tmp_path: Path, mysql_db: ScratchDatabase
) -> None:
    """track: "`userId`, `anonymousId`: one of them is required (`groupId` too, for an event about
    an object)"; groupId is a top-level field of the call type, never a property."""
    result, lines, preview = run_and_preview(
        tmp_path, mysql_db, "SELECT 'Signed Up' AS event, 'acme' AS groupId", call_type="track"
    )
    assert rejected(result) == []
    [call] = [orjson.loads(line) for line in lines]
    assert call["groupId"] == "acme" and call["event"] == "Signed Up"
    assert "properties" not in call
    assert preview.payloads == lines


def test_a_track_call_with_a_group_id_and_whole_properties(tmp_path: Path, mysql_db: ScratchDatabase) -> None:
    """groupId is not written inside `properties`, so a whole-object properties column is no conflict."""
    result, lines, _ = run_and_preview(
        tmp_path,
        mysql_db,
        "SELECT 'Signed Up' AS event, 'u1' AS userId, 'acme' AS groupId, '{\"plan\": \"pro\"}' AS properties",
        call_type="track",
        column_types={"properties": "json"},
    )
    assert rejected(result) == []
    [call] = [orjson.loads(line) for line in lines]
    assert call["groupId"] == "acme" and call["properties"] == {"plan": "pro"}


@pytest.mark.parametrize("flag_type", ["TINYINT(1)", "BOOLEAN", "BIT(1)"])
@pytest.mark.parametrize("field", ["userId", "anonymousId", "messageId"])
def test_a_flag_is_no_identifier(
    tmp_path: Path, mysql_db: ScratchDatabase, flag_type: str, field: str
) -> None:
    """Docs: "A flag (`TINYINT(1)`, `BIT(1)`) ... rejects the row" (it was sent as "1")."""
    mysql_db.execute(f"CREATE TABLE flags (id INT, flag {flag_type})")
    mysql_db.execute("INSERT INTO flags VALUES (1, 1), (2, 0)")
    others = {"userId": "'u1' AS anonymousId", "anonymousId": "'u1' AS userId", "messageId": "'u1' AS userId"}
    query = f"SELECT flag AS {field}, {others[field]} FROM flags ORDER BY id"
    result, lines, preview = run_and_preview(tmp_path, mysql_db, query)
    assert rejected(result) == [(1, field), (2, field)]
    assert lines == [] and preview.payloads == []


@pytest.mark.parametrize("decimal_type", ["DECIMAL(23,23)", "DECIMAL(30,20)", "DECIMAL(9,9)"])
def test_a_flag_from_a_decimal_of_any_precision(
    tmp_path: Path, mysql_db: ScratchDatabase, decimal_type: str
) -> None:
    """Flags: "a number is true when not zero", a DECIMAL whatever its precision and scale (a
    DECIMAL(23,23) made every run fail with ArrowInvalid 'Precision is not great enough')."""
    mysql_db.execute(f"CREATE TABLE d (id INT, x {decimal_type})")
    mysql_db.execute("INSERT INTO d VALUES (1, 0.5), (2, 0), (3, NULL)")
    query = "SELECT id AS userId, x AS `integrations.Salesforce`, x AS `context.active` FROM d ORDER BY id"
    result, lines, preview = run_and_preview(tmp_path, mysql_db, query)
    assert rejected(result) == []
    calls = [orjson.loads(line) for line in lines]
    assert [c.get("integrations") for c in calls] == [{"Salesforce": True}, {"Salesforce": False}, None]
    assert [c["context"].get("active") for c in calls] == [True, False, None]
    assert preview.payloads == lines


@pytest.fixture
def last_hour(mysql_db: ScratchDatabase) -> ScratchDatabase:
    """A DATETIME in the last hour of 9999: west of UTC, its instant is in year 10000."""
    mysql_db.execute("CREATE TABLE late (id INT, moment DATETIME)")
    mysql_db.execute("INSERT INTO late VALUES (1, '9999-12-31 23:00:00'), (2, '2026-01-01 00:00:00')")
    return mysql_db


@pytest.mark.parametrize("time_zone", ["-05:30", "America/New_York"])
def test_the_preview_shows_a_datetime_at_the_upper_limit(
    tmp_path: Path, last_hour: ScratchDatabase, time_zone: str
) -> None:
    """DATETIME: "ISO-8601 text with the UTC offset of time_zone"; the preview is the run's bytes
    (it failed with OverflowError: date value out of range)."""
    query = "SELECT id AS userId, moment FROM late ORDER BY id"
    _, lines, preview = run_and_preview(tmp_path, last_hour, query, time_zone=time_zone)
    offset = {"-05:30": "-05:30", "America/New_York": "-05:00"}[time_zone]
    assert orjson.loads(lines[0])["traits"]["moment"] == f"9999-12-31T23:00:00{offset}"
    assert preview.payloads == lines


def test_a_rejected_row_holding_a_datetime_at_the_upper_limit_does_not_fail_the_run(
    tmp_path: Path, last_hour: ScratchDatabase
) -> None:
    """Docs: "A row that fails is a rejected row: not sent, and it does not fail the run" (reporting it
    failed the run with OverflowError)."""
    query = (
        "SELECT id AS userId, moment, IF(id = 1, 'tv', 'server') AS `context.channel` FROM late ORDER BY id"
    )
    result, lines, preview = run_and_preview(tmp_path, last_hour, query, time_zone="-05:30")
    assert rejected(result) == [(1, "context.channel")]
    assert [orjson.loads(line)["userId"] for line in lines] == ["2"]
    assert [(r.row_number, r.field) for r in preview.rejected] == [(1, "context.channel")]


@pytest.mark.parametrize("other", ["UserId", "userid"])
def test_the_preview_of_names_that_differ_only_in_case(
    tmp_path: Path, mysql_db: ScratchDatabase, other: str
) -> None:
    """Reserved names are case-sensitive: `UserId` is a trait beside `userId`, and the preview shows
    what the run sends (it failed counting the rows: (1060) Duplicate column name)."""
    _, lines, preview = run_and_preview(tmp_path, mysql_db, f"SELECT 1 AS userId, 2 AS `{other}`")
    [call] = [orjson.loads(line) for line in lines]
    assert call["userId"] == "1" and call["traits"] == {other: 2}
    assert preview.total_rows == 1 and preview.payloads == lines


def test_a_null_object_type_is_left_out_even_with_send_nulls(
    tmp_path: Path, mysql_db: ScratchDatabase
) -> None:
    """A group's `traits.object_type_id` is an identifier ("always sent as JSON strings"; a NULL
    identifier "is left out"), so send_nulls does not make it null (it was sent as null)."""
    query = "SELECT 'acme' AS groupId, NULL AS `traits.object_type_id`, NULL AS plan"
    _, lines, _ = run_and_preview(tmp_path, mysql_db, query, call_type="group", send_nulls=True)
    [call] = [orjson.loads(line) for line in lines]
    assert call["traits"] == {"plan": None}


def test_a_boolean_column_type_rejects_numbers_other_than_0_and_1(
    tmp_path: Path, mysql_db: ScratchDatabase
) -> None:
    """column_types `boolean`: "0/1 or true/false become JSON booleans; anything else rejects its
    row" (2 was sent as true)."""
    mysql_db.execute("CREATE TABLE b (id INT, n INT)")
    mysql_db.execute("INSERT INTO b VALUES (1, 2), (2, 1), (3, 0)")
    query = "SELECT id AS userId, n FROM b ORDER BY id"
    result, lines, _ = run_and_preview(tmp_path, mysql_db, query, column_types={"n": "boolean"})
    assert rejected(result) in ([(1, "traits.n")], [(1, "n")])  # the field, or the column
    assert [orjson.loads(line)["traits"] for line in lines] == [{"n": True}, {"n": False}]


def test_connectorx_names_a_bare_null_and_the_fix(tmp_path: Path, mysql_db: ScratchDatabase) -> None:
    """`NULL AS anonymousId` is a column of type NULL, which ConnectorX has no type for (it failed
    with "not implemented: MYSQL_TYPE_NULL", naming no column): refused before reading, naming the
    column and the fix, as the other types it cannot carry; the fix gives the other drivers' payloads."""
    mysql_db.execute("CREATE TABLE n (id INT)")
    mysql_db.execute("INSERT INTO n VALUES (1), (2)")
    query = "SELECT id AS userId, NULL AS anonymousId, NULL AS plan FROM n ORDER BY id"
    with pytest.raises(SyncRunFailed) as refused:
        run_and_preview(tmp_path, mysql_db, query, driver="connectorx")
    message = str(refused.value)
    assert "'anonymousId' is a bare NULL" in message and "CAST(NULL AS CHAR) AS `anonymousId`" in message
    fixed = query.replace("NULL AS", "CAST(NULL AS CHAR) AS")
    _, default, _ = run_and_preview(tmp_path, mysql_db, query)
    _, fast, preview = run_and_preview(tmp_path, mysql_db, fixed, driver="connectorx")
    assert fast == default and preview.payloads == default
    assert [orjson.loads(line)["userId"] for line in fast] == ["1", "2"]
