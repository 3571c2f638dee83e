"""A destination's cursor: the `last_sync_time` its next run's query sees.

The value is the database server's Unix time at the start of the last run that delivered every row
(0 before the first). Where it is stored is the caller's business (the Dagster layer keeps it in
the asset partition's materializations); this module says what it is and how a run uses it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Cursor:
    last_sync_time: int = 0
    set_at: dt.datetime | None = None  # when it was committed
    set_by: str | None = None  # a run id, or who moved it by hand

    @property
    def last_sync_time_iso(self) -> str:
        return format_unix_time(self.last_sync_time)


def query_since(last_sync_time: int, lookback_seconds: int) -> int:
    """What `{{last_sync_time}}` becomes in the query: the cursor, moved back by the lookback."""
    return max(last_sync_time - lookback_seconds, 0) if last_sync_time else 0


def format_unix_time(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")
