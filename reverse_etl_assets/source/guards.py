"""Guards from the best practices, checked against the database: is the query incremental in
practice, can the user write, does the sync pull millions of rows several times a day?

Each finding is a warning (the sync still runs); `reverse-etl validate`, the preview and the
`query_guards` asset check report them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from reverse_etl_assets.config.models import Database, MySQLDatabase
from reverse_etl_assets.source.connection import SourceSession
from reverse_etl_assets.sql.placeholders import LAST_SYNC_TIME, render_query, uses_last_sync_time

FUTURE_SECONDS = 5 * 365 * 86_400  # far ahead, yet before 2038 for MySQL 5.7's FROM_UNIXTIME
_FROM_UNIXTIME_OPEN = re.compile(r"FROM_UNIXTIME\s*\(\s*$", re.IGNORECASE)
_GRANT = re.compile(r"^GRANT\s+(?P<privileges>.+?)\s+ON\s+(?P<object>\S+)\s+TO\s", re.IGNORECASE | re.DOTALL)
_READ_PRIVILEGES = {"SELECT", "SHOW VIEW", "USAGE"}


Guard = Literal[
    "no_last_sync_time",
    "not_incremental",
    "write_grants",
    "large_runs",
    "identical_events",  # from the query's columns: see mapping.fields.identical_events_warning
    "unchecked",  # the database could not be asked
    # Only `reverse-etl validate`, from the calls of a sample of rows:
    "mapping",  # the mapping's warnings (a column named like a reserved field, a lookback risk)
    "rejected_rows",
    "destination_schema",
]


@dataclass(frozen=True)
class Finding:
    guard: Guard
    message: str


def static_findings(query: str) -> list[Finding]:
    if uses_last_sync_time(query):
        return []
    return [
        Finding(
            "no_last_sync_time",
            "the query does not use {{last_sync_time}}: every run sends every row again, and every row is "
            "a billed call; add e.g. WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})",
        )
    ]


def incremental_finding(session: SourceSession, query: str, now: int) -> Finding | None:
    """The query should return nothing when last_sync_time is in the future; if it still returns
    rows it is not incremental in practice (typically a DATETIME compared with a bare integer)."""
    if not uses_last_sync_time(query):
        return None  # static_findings already says so
    future = now + FUTURE_SECONDS
    if not session.returns_rows(render_query(query, future, session.time_zone)):
        return None
    message = (
        "with last_sync_time five years ahead the query still returns rows, so it is not incremental: "
        "every run sends every row again"
    )
    fixed = with_from_unixtime(query)
    if fixed != query and not session.returns_rows(render_query(fixed, future, session.time_zone)):
        message += (
            ". It compares a DATETIME/TIMESTAMP column with a bare Unix integer, which MySQL answers as "
            "true for every row: write FROM_UNIXTIME({{last_sync_time}}) instead of {{last_sync_time}}"
        )
    return Finding("not_incremental", message)


def with_from_unixtime(query: str) -> str:
    """Wrap each bare `{{last_sync_time}}` in FROM_UNIXTIME(...)."""
    parts, last = [], 0
    for match in LAST_SYNC_TIME.finditer(query):
        parts.append(query[last : match.start()])
        wrapped = _FROM_UNIXTIME_OPEN.search(query[: match.start()]) is not None
        parts.append(match.group(0) if wrapped else f"FROM_UNIXTIME({match.group(0)})")
        last = match.end()
    return "".join(parts) + query[last:]


def grants_finding(session: SourceSession, database: str) -> Finding | None:
    writable = write_grants(session.grants(), database)
    if not writable:
        return None
    return Finding(
        "write_grants",
        "the database user can do more than read: "
        + "; ".join(writable)
        + ". Use a user with only SELECT (and SHOW VIEW) on the synced tables (see the README)",
    )


def write_grants(grants: Iterable[str], database: str) -> list[str]:
    """Privileges beyond SELECT/SHOW VIEW that apply to `database` (or to every database)."""
    found = []
    for grant in grants:
        match = _GRANT.match(grant.strip())
        if match is None:
            continue  # a role or PROXY grant
        target = match.group("object")
        schema = target.split(".", 1)[0].strip("`'\"")
        if not (schema == "*" or _schema_matches(schema, database)):
            continue
        privileges = _privileges(match.group("privileges"))
        extra = [p for p in privileges if p not in _READ_PRIVILEGES]
        if "WITH GRANT OPTION" in grant.upper():
            extra.append("GRANT OPTION")
        if extra:
            found.append(f"{', '.join(extra)} ON {target}")
    return found


def large_runs_finding(
    runs: Iterable[tuple[float, int]], threshold: int, now: float | None = None
) -> Finding | None:
    """`runs` are (start timestamp, rows read) of recent runs: warn when more than one run of the
    last day read more than `threshold` rows."""
    now = time.time() if now is None else now
    large = [rows for started, rows in runs if started >= now - 86_400 and rows > threshold]
    if len(large) <= 1:
        return None
    return Finding(
        "large_runs",
        f"{len(large)} runs within 24 hours read more than {threshold:,} rows each (up to "
        f"{max(large):,}): sync millions of rows at most once a day, or make the query incremental",
    )


def _privileges(text: str) -> list[str]:
    without_columns = re.sub(r"\([^)]*\)", "", text)  # SELECT (a, b) → SELECT
    names = [" ".join(p.split()).upper() for p in without_columns.split(",")]
    return ["ALL PRIVILEGES" if name == "ALL" else name for name in names if name]


def _schema_matches(pattern: str, database: str) -> bool:
    """Grant schemas may use LIKE wildcards: `app\\_%` is app_ followed by anything."""
    regex, escaped = "", False
    for char in pattern:
        if escaped:
            regex, escaped = regex + re.escape(char), False
        elif char == "\\":
            escaped = True
        else:
            regex += "." if char == "_" else ".*" if char == "%" else re.escape(char)
    return re.fullmatch(regex, database) is not None


def database_findings(
    session: SourceSession, query: str, database: Database, probe: bool = True
) -> list[Finding]:
    """Every guard: the static one and those that ask the database. `probe` re-runs the query for a
    future time to see whether it is incremental (only worth it when it returns rows)."""
    findings = static_findings(query)
    if probe:
        incremental = incremental_finding(session, query, session.server_time())
        findings += [incremental] if incremental else []
    if isinstance(database, MySQLDatabase):
        grants = grants_finding(session, database.database)
        findings += [grants] if grants else []
    return findings
