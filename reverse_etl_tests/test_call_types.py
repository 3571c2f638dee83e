"""All six call types, from real MariaDB rows to a real Customer.io-compatible server: payloads
follow the published OpenAPI schemas, and rows that cannot become valid calls are reported."""

from __future__ import annotations

import json
from contextlib import closing
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.delivery.api_schema import schema_errors
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.mapping.calls import CallMapper, MappingOptions
from reverse_etl_assets.mapping.fields import MappingError, place_columns
from reverse_etl_assets.sync_run import SyncRunFailed, SyncRunResult, run_sync
from reverse_etl_tests.conftest import ScratchDatabase, customerio_destination, sync_entry, write_config
from reverse_etl_tests.fake_customerio import FakeCustomerIo


@pytest.fixture
def app(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute(
        "CREATE TABLE events (id INT PRIMARY KEY, user_id INT, anon CHAR(36), name VARCHAR(50), "
        "category VARCHAR(50), company_id BIGINT, object_type INT, ip VARCHAR(45), channel VARCHAR(20), "
        "device VARCHAR(20), total DECIMAL(10,2), happened_at DATETIME(3), old_id VARCHAR(40), note TEXT)"
    )
    mysql_db.executemany(
        "INSERT INTO events VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                1,
                42,
                "5f1c6d9e-0000-4000-8000-000000000001",
                "Order Completed",
                "Shop",
                9001,
                1,
                "203.0.113.9",
                "server",
                "ios",
                "19.99",
                "2026-03-01 10:00:00.250",
                "anon-1",
                "first",
            ),
            (
                2,
                43,
                None,
                "User Deleted",
                "Account",
                9002,
                2,
                None,
                "browser",
                "android",
                "0.00",
                "2026-03-02 11:00:00",
                "anon-2",
                None,
            ),
            (
                3,
                None,
                "5f1c6d9e-0000-4000-8000-000000000003",
                "Pricing",
                "Marketing",
                9003,
                7,
                "2001:db8::1",
                "mobile",
                None,
                "5.50",
                "2026-03-03 12:00:00",
                None,
                "anonymous",
            ),
        ],
    )
    return mysql_db


def sync(
    tmp_path: Path, db: ScratchDatabase, server: FakeCustomerIo, call_type: str, query: str
) -> SyncRunResult:
    config = load_config(
        write_config(
            tmp_path / "reverse_etl.yaml",
            {
                "databases": {"app_db": db.config()},
                "destinations": {"cio": customerio_destination(server)},
                "syncs": [sync_entry("s", query, ["cio"], type=call_type)],
            },
        )
    )
    with closing(open_destination("cio", config.project.destinations["cio"], "s", tmp_path)) as client:
        return run_sync(config, "s", "cio", 0, client)


def assert_valid(calls: list[dict[str, Any]]) -> None:
    assert calls
    for call in calls:
        assert schema_errors(call) == [], (call, schema_errors(call))
        # The installed distribution's own version, not a constant that drifts from it.
        assert call["context"]["library"] == {"name": "reverse-etl", "version": version("reverse-etl")}
        assert isinstance(call["messageId"], str) and 0 < len(call["messageId"]) <= 100


def test_identify(tmp_path, app, customerio):
    result = sync(
        tmp_path,
        app,
        customerio,
        "identify",
        "SELECT user_id AS userId, anon AS anonymousId, note AS email_note, ip AS `context.ip`, "
        "channel AS `context.channel`, 0 AS `integrations.Salesforce`, 1 AS `integrations.All`, "
        "happened_at AS timestamp, total AS `traits.lifetime_value` FROM events ORDER BY id",
    )
    assert result.stats.rows_rejected == 0
    calls = customerio.accepted
    assert_valid(calls)
    first = calls[0]
    assert first["userId"] == "42" and first["anonymousId"].startswith("5f1c")
    assert first["traits"] == {"email_note": "first", "lifetime_value": 19.99}
    assert first["context"]["ip"] == "203.0.113.9" and first["context"]["channel"] == "server"
    assert first["integrations"] == {"Salesforce": False, "All": True}
    assert first["timestamp"] == "2026-03-01T10:00:00.250000+00:00"
    assert "userId" not in calls[2] and calls[2]["anonymousId"].endswith("3")


def test_track_with_semantic_events_passing_through(tmp_path, app, customerio):
    sync(
        tmp_path,
        app,
        customerio,
        "track",
        "SELECT name AS event, user_id AS userId, anon AS anonymousId, total, category, "
        "happened_at AS timestamp, CONCAT('evt-', id) AS messageId FROM events ORDER BY id",
    )
    calls = customerio.accepted
    assert_valid(calls)
    assert [c["event"] for c in calls] == ["Order Completed", "User Deleted", "Pricing"]
    assert calls[0]["properties"] == {"total": 19.99, "category": "Shop"}
    assert [c["messageId"] for c in calls] == ["evt-1", "evt-2", "evt-3"]  # the user's own ids win
    deleted = calls[1]
    assert set(deleted) == {"type", "event", "userId", "properties", "timestamp", "messageId", "context"}


def test_page_and_screen(tmp_path, app, customerio):
    sync(
        tmp_path,
        app,
        customerio,
        "page",
        "SELECT user_id AS userId, anon AS anonymousId, name, category, "
        "CONCAT('https://example.com/', id) AS `properties.url` FROM events ORDER BY id",
    )
    pages = list(customerio.accepted)
    assert_valid(pages)
    assert pages[0]["name"] == "Order Completed" and pages[0]["category"] == "Shop"
    assert pages[0]["properties"] == {"url": "https://example.com/1"}

    customerio.accepted.clear()
    sync(
        tmp_path,
        app,
        customerio,
        "screen",
        "SELECT user_id AS userId, anon AS anonymousId, name, device AS `context.device.type`, "
        "'mobile' AS `context.channel` FROM events ORDER BY id",
    )
    screens = customerio.accepted
    assert_valid(screens)
    assert screens[0]["name"] == "Order Completed"
    assert screens[0]["context"]["device"] == {"type": "ios"}


def test_group_with_object_type_top_level_or_as_a_trait(tmp_path, app, customerio):
    sync(
        tmp_path,
        app,
        customerio,
        "group",
        "SELECT company_id AS groupId, object_type AS objectTypeId, user_id AS userId, anon AS anonymousId, "
        "name, 'owner' AS `traits.relationshipAttributes.role` FROM events ORDER BY id",
    )
    groups = list(customerio.accepted)
    assert_valid(groups)
    assert groups[0]["groupId"] == "9001" and groups[0]["objectTypeId"] == "1"
    assert groups[0]["traits"] == {"name": "Order Completed", "relationshipAttributes": {"role": "owner"}}

    customerio.accepted.clear()
    sync(
        tmp_path,
        app,
        customerio,
        "group",
        "SELECT company_id AS groupId, object_type AS `traits.object_type_id`, user_id AS userId, "
        "anon AS anonymousId FROM events ORDER BY id",
    )
    assert [c["traits"]["object_type_id"] for c in customerio.accepted] == ["1", "2", "7"]
    assert_valid(customerio.accepted)


def test_alias(tmp_path, app, customerio):
    result = sync(
        tmp_path,
        app,
        customerio,
        "alias",
        "SELECT old_id AS previousId, user_id AS userId FROM events ORDER BY id",
    )
    assert_valid(customerio.accepted)
    assert [(c["previousId"], c["userId"]) for c in customerio.accepted] == [
        ("anon-1", "42"),
        ("anon-2", "43"),
    ]
    # Row 3 has neither previousId nor userId: rejected, not sent.
    [rejected] = result.rejected_sample
    assert (rejected.row_number, rejected.field, rejected.reason) == (
        3,
        "previousId",
        "an alias call needs previousId",
    )


def test_alias_calls_have_no_traits(tmp_path, app, customerio):
    with pytest.raises(SyncRunFailed, match=r"column 'note': alias calls have no traits or properties"):
        sync(
            tmp_path,
            app,
            customerio,
            "alias",
            "SELECT old_id AS previousId, user_id AS userId, note FROM events",
        )
    assert customerio.accepted == []


@pytest.mark.parametrize(
    ("call_type", "bad", "good", "field", "reason"),
    [
        (
            "identify",
            "NULL AS userId, 'x' AS plan",
            "1, 'x'",
            "userId",
            "an identify call needs userId or anonymousId",
        ),
        ("track", "1 AS userId, '' AS event", "1, 'ok'", "event", "a track call needs an event name"),
        (
            "track",
            "NULL AS userId, 'Signed Up' AS event",
            "1, 'ok'",
            "userId",
            "a track call needs userId or anonymousId",
        ),
        ("group", "1 AS userId, NULL AS groupId", "1, 2", "groupId", "a group call needs groupId"),
        (
            "group",
            "1 AS groupId, 'company' AS objectTypeId",
            "1, '2'",
            "objectTypeId",
            "'company' is not a stringified",
        ),
        (
            "page",
            "NULL AS userId, 'Home' AS name",
            "1, 'Home'",
            "userId",
            "a page call needs userId or anonymousId",
        ),
        (
            "identify",
            "1 AS userId, 'tv' AS `context.channel`",
            "1, 'server'",
            "context.channel",
            "'tv' is not one of",
        ),
        (
            "screen",
            "1 AS userId, 'web' AS `context.device.type`",
            "1, 'ios'",
            "context.device.type",
            "'web' is not",
        ),
        (
            "track",
            "1 AS userId, 'e' AS event, '2026-01-01 10:00' AS timestamp",
            "1, 'e', '2026-01-01T10:00:00Z'",
            "timestamp",
            "UTC offset",
        ),
        (
            "track",
            "1 AS userId, 'e' AS event, 1767225600 AS timestamp",
            "1, 'e', NULL",
            "timestamp",
            "FROM_UNIXTIME",
        ),
        (
            "track",
            "1 AS userId, 'e' AS event, REPEAT('x', 101) AS messageId",
            "1, 'e', 'm-1'",
            "messageId",
            "at most 100",
        ),
        (
            "identify",
            "1 AS userId, REPEAT('x', 40000) AS bio",
            "1, 'short'",
            "(call)",
            "limit is 32,000 bytes",
        ),
    ],
)
def test_invalid_rows_are_rejected_with_the_field_and_reason(
    tmp_path, mysql_db, customerio, call_type, bad, good, field, reason
):
    # A valid row after the bad one shows the rest is still delivered.
    result = sync(tmp_path, mysql_db, customerio, call_type, f"SELECT {bad} UNION ALL SELECT {good}")
    [rejected] = result.rejected_sample
    assert (rejected.row_number, rejected.field) == (1, field)
    assert reason in rejected.reason
    assert result.stats.rows_rejected == 1 and result.stats.calls_sent == 1
    assert len(customerio.accepted) == 1
    # Nothing invalid reached the server: strict mode would have answered 400 to the bad call.
    assert [request.status for request in customerio.requests] == [200]
    assert result.next_last_sync_time is not None  # rejected rows do not fail the run


def test_integration_flags_from_numbers(tmp_path, mysql_db, customerio):
    sync(
        tmp_path,
        mysql_db,
        customerio,
        "identify",
        "SELECT 1 AS userId, 2 AS `integrations.X`, 0 AS `integrations.Y`",
    )
    assert customerio.accepted[0]["integrations"] == {"X": True, "Y": False}


def test_message_ids_differ_per_sync_and_destination_and_repeat_for_the_same_row(tmp_path):
    """delivery.md: the id is a hash of the sync, the destination and the call."""
    config = load_config(
        write_config(
            tmp_path / "reverse_etl.yaml",
            {
                "databases": {"app_db": {"kind": "sqlite", "path": str(tmp_path / "app.sqlite")}},
                "destinations": {"a": {"kind": "outbox"}, "b": {"kind": "outbox"}},
                "syncs": [sync_entry(name, "SELECT 1 AS userId", ["a", "b"]) for name in ("s1", "s2")],
            },
        )
    )
    batch = pa.RecordBatch.from_pydict({"userId": [1, 2], "plan": ["pro", "pro"]})

    def ids(sync: str, destination: str) -> list[str]:
        project = config.project
        options = MappingOptions.for_sync(project.sync(sync), destination, project.destinations[destination])
        return CallMapper(options).map_batch(batch, first_row_number=1).calls.message_ids.to_pylist()

    first = ids("s1", "a")
    assert ids("s1", "a") == first  # a new mapper (the next run) gives the same rows the same ids
    every = [*first, *ids("s1", "b"), *ids("s2", "a"), *ids("s2", "b")]
    assert len(set(every)) == 8  # per row, per destination, per sync: all different


def test_near_misses_of_reserved_names_are_warned_about():
    placements, warnings = place_columns("identify", ["user_id", "email", "AnonymousID", "traits.userId"])
    assert [p.dotted for p in placements] == [
        "traits.user_id",
        "traits.email",
        "traits.AnonymousID",
        "traits.userId",
    ]
    assert warnings == [
        "column 'user_id' becomes traits.user_id, not the top-level field 'userId': "
        "reserved names are case-sensitive; alias it AS userId",
        "column 'AnonymousID' becomes traits.AnonymousID, not the top-level field 'anonymousId': "
        "reserved names are case-sensitive; alias it AS anonymousId",
    ]


@pytest.mark.parametrize(
    ("call_type", "columns", "message"),
    [
        ("track", ["event", "traits.plan"], "track calls carry no traits (they have `properties.`)"),
        (
            "identify",
            ["userId", "email", "traits.email"],
            "columns 'email' and 'traits.email' both set traits.email",
        ),
        ("identify", ["userId", "context.library.name"], "context.library is set by reverse ETL itself"),
        ("identify", ["userId", "a..b"], "a dotted name needs a name between every two dots"),
    ],
)
def test_columns_that_cannot_form_calls_fail_the_run_before_sending(call_type, columns, message):
    with pytest.raises(
        MappingError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
    ):
        place_columns(call_type, columns)


def test_the_schema_check_itself_catches_bad_payloads():
    """The OpenAPI check used above is not vacuous."""
    assert schema_errors({"type": "track", "userId": "1"})  # no event
    assert schema_errors({"type": "identify", "userId": 1})  # not a string
    assert schema_errors({"type": "identify", "userId": "1", "timestamp": "yesterday"})
    assert not schema_errors({"type": "identify", "userId": "1", "anonymousId": "a"})
    assert json.dumps(schema_errors({"type": "group", "groupId": "g", "objectTypeId": 1}))


def test_customerio_identifies_by_email_when_there_is_no_id(tmp_path, mysql_db, customerio):
    result = sync(
        tmp_path, mysql_db, customerio, "identify", "SELECT NULL AS userId, 'a@example.com' AS email"
    )
    assert result.stats.rows_rejected == 0
    [call] = customerio.accepted
    assert call["userId"] == "" and call["traits"] == {"email": "a@example.com"}
    assert_valid([call])


def test_whole_objects_from_json_columns(tmp_path, mysql_db, customerio):
    mysql_db.execute("CREATE TABLE people (id INT PRIMARY KEY, profile JSON, extra JSON)")
    mysql_db.execute(
        """INSERT INTO people VALUES (1, '{"plan": "pro", "tags": ["a", "b"]}', '{"ip": "203.0.113.9"}'),
                                     (2, '[1, 2]', '{"library": "mine"}')"""
    )
    result = sync(
        tmp_path, mysql_db, customerio, "identify",
        # Both are traced to MariaDB JSON columns; `context` is merged with ours (context.library).
        "SELECT id AS userId, profile AS traits, extra AS context FROM people ORDER BY id",
    )  # fmt: skip
    [call] = customerio.accepted
    assert call["traits"] == {"plan": "pro", "tags": ["a", "b"]}
    assert call["context"]["ip"] == "203.0.113.9" and call["context"]["library"]["name"] == "reverse-etl"
    reasons = {(r.row_number, r.field, r.reason) for r in result.rejected_sample}
    assert reasons == {(2, "traits", "traits must be a JSON object")}
    assert_valid([call])
