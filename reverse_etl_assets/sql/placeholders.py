"""The sync's SQL: find and fill in `{{last_sync_time}}`."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from reverse_etl_assets.sql.lexer import statement_body

# `{{last_sync_time}}`, with any spaces inside the braces.
LAST_SYNC_TIME = re.compile(r"\{\{\s*last_sync_time\s*\}\}")
_ANY_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_IN_FROM_UNIXTIME = re.compile(r"(FROM_UNIXTIME\s*\(\s*)\{\{\s*last_sync_time\s*\}\}(\s*\))", re.IGNORECASE)
_FIXED_OFFSET = re.compile(r"^[+-]\d\d:\d\d$")


def uses_last_sync_time(query: str) -> bool:
    return LAST_SYNC_TIME.search(query) is not None


def unknown_placeholders(query: str) -> list[str]:
    """`{{...}}` other than `{{last_sync_time}}`: probably a typo (they reach the database as written)."""
    return [m.group(0) for m in _ANY_PLACEHOLDER.finditer(query) if not LAST_SYNC_TIME.fullmatch(m.group(0))]


def render_query(query: str, last_sync_time: int, time_zone: str = "+00:00") -> str:
    """Replace every `{{last_sync_time}}` with the integer Unix time (`time_zone` is the session's,
    for `FROM_UNIXTIME({{last_sync_time}})`: see `wall_clock_bound`).

    The value is an integer we produce, never user input, so plain substitution is safe. A
    semicolon that ends the statement is dropped (with any comment after it): the driver runs one
    statement.
    """
    if not isinstance(last_sync_time, int) or isinstance(last_sync_time, bool):
        raise TypeError(f"last_sync_time must be an integer Unix time, got {last_sync_time!r}")
    bound = wall_clock_bound(last_sync_time, time_zone)
    sql = _IN_FROM_UNIXTIME.sub(lambda match: f"{match.group(1)}{bound}{match.group(2)}", query)
    return statement_body(LAST_SYNC_TIME.sub(str(last_sync_time), sql))


def wall_clock_bound(seconds: int, time_zone: str) -> int:
    """The instant to give FROM_UNIXTIME so that `column >= FROM_UNIXTIME(...)` misses no row
    written at or after `seconds`.

    FROM_UNIXTIME gives wall-clock time in the session's zone, and the server compares DATETIME
    and TIMESTAMP columns with it as wall-clock times. Where a named zone repeats an hour (daylight
    saving time ends), an instant in the first pass through that hour has a wall-clock time that
    the second pass repeats, and the rows of the second pass written before that wall-clock time
    would be missed. For such an instant, the bound is the last second before the repeated hour
    began: the run re-reads at most that hour rather than lose rows. Anywhere else (and in fixed
    offsets) wall-clock time only grows with the instant, and the bound is `seconds` itself.
    """
    if _FIXED_OFFSET.match(time_zone) or time_zone == "UTC":
        return seconds
    zone = ZoneInfo(time_zone)
    local = datetime.fromtimestamp(seconds, zone)
    twin = local.replace(fold=1)  # the same wall-clock time in a second pass, if there is one
    before, after = local.utcoffset(), twin.utcoffset()
    if local.fold == 1 or before is None or after is None or before == after:
        return seconds  # not a repeated wall-clock time, or already in its second pass
    # The offset changes between this instant and its twin: find the second it does.
    low, high = seconds, int(twin.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    repeated_seconds = int((before - after).total_seconds())
    return high - repeated_seconds - 1
