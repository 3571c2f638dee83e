"""A named `time_zone` with daylight saving time: the cursor walks across both transitions of the
year, over rows written on every second around them, and no row written at or after the cursor is
ever missed by `updated_at >= FROM_UNIXTIME({{last_sync_time}})` (needs the server's time-zone
tables, which .ci/run loads)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reverse_etl_assets.config.models import MySQLDatabase
from reverse_etl_assets.source.connection import open_read_only_session
from reverse_etl_assets.sql.placeholders import render_query, wall_clock_bound
from reverse_etl_tests.conftest import ScratchDatabase, admin_connection

ZONE = "Europe/Berlin"
AROUND_SECONDS = 2 * 3600
TRANSITIONS = {  # the changes of 2026, in UTC
    "fall back": datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
    "spring forward": datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
}


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


@pytest.fixture
def every_second(mysql_db: ScratchDatabase, request: pytest.FixtureRequest) -> tuple[ScratchDatabase, int]:
    """A row for every second within two hours of the transition: `ts` (TIMESTAMP, an instant) and
    `dt` (DATETIME), the wall-clock time an application in Berlin would have written."""
    with admin_connection(mysql_db.name) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT CONVERT_TZ('2026-01-01 00:00:00', 'UTC', %s)", (ZONE,))
        assert cursor.fetchone()[0] is not None, "the server's time-zone tables are not loaded"
    transition = unix(TRANSITIONS[request.param])
    mysql_db.execute("CREATE TABLE events (at_unix BIGINT PRIMARY KEY, ts TIMESTAMP NULL, dt DATETIME NULL)")
    with admin_connection(mysql_db.name) as connection, connection.cursor() as cursor:
        cursor.execute(f"SET time_zone = '{ZONE}'")
        cursor.execute(
            "INSERT INTO events (at_unix, ts, dt) SELECT %s + seq, FROM_UNIXTIME(%s + seq), "
            f"FROM_UNIXTIME(%s + seq) FROM seq_0_to_{2 * AROUND_SECONDS - 1}",
            (transition - AROUND_SECONDS,) * 3,
        )
    return mysql_db, transition


def cursors(transition: int) -> list[int]:
    """Every 29 seconds across the 90 minutes either side, and every second near the edges of the
    repeated or skipped hour."""
    walk = set(range(transition - 5400, transition + 5400, 29))
    for edge in (transition - 3600, transition, transition + 3600):
        walk.update(range(edge - 3, edge + 4))
    return sorted(walk)


@pytest.mark.parametrize("every_second", list(TRANSITIONS), indirect=True)
@pytest.mark.parametrize("column", ["ts", "dt"])
def test_the_cursor_walks_across_a_dst_transition_without_missing_a_row(every_second, column):
    db, transition = every_second
    query = f"SELECT at_unix FROM events WHERE {column} >= FROM_UNIXTIME({{{{last_sync_time}}}})"
    config = MySQLDatabase.model_validate(db.config(time_zone=ZONE))
    with open_read_only_session("app_db", config) as session:
        for cursor in cursors(transition):
            rendered = render_query(query, cursor, ZONE)
            missed = session.count_rows(
                f"SELECT at_unix FROM events WHERE at_unix >= {cursor} "
                f"AND at_unix NOT IN (SELECT at_unix FROM ({rendered}) AS sent)"
            )
            assert missed == 0, (cursor, rendered)
            again = session.count_rows(f"SELECT at_unix FROM ({rendered}) AS sent WHERE at_unix < {cursor}")
            assert again <= 3601, (cursor, again)  # at most the repeated hour is read again


def test_the_bound_moves_only_inside_the_first_pass_of_a_repeated_hour():
    fall_back = unix(TRANSITIONS["fall back"])
    assert wall_clock_bound(fall_back - 1800, ZONE) == fall_back - 3601
    assert wall_clock_bound(fall_back - 3600, ZONE) == fall_back - 3601
    assert wall_clock_bound(fall_back - 3601, ZONE) == fall_back - 3601
    assert wall_clock_bound(fall_back, ZONE) == fall_back  # the second pass
    spring = unix(TRANSITIONS["spring forward"])
    assert all(wall_clock_bound(s, ZONE) == s for s in range(spring - 4000, spring + 4000, 7))
    assert wall_clock_bound(fall_back - 1800, "+02:00") == fall_back - 1800
    # Only FROM_UNIXTIME({{last_sync_time}}) is a wall-clock comparison: a bare integer stays exact.
    query = "SELECT 1 WHERE a >= FROM_UNIXTIME({{last_sync_time}}) AND b >= {{last_sync_time}}"
    rendered = render_query(query, fall_back - 1800, ZONE)
    assert rendered == f"SELECT 1 WHERE a >= FROM_UNIXTIME({fall_back - 3601}) AND b >= {fall_back - 1800}"
