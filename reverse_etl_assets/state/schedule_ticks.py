"""What each schedule tick of a sync and destination did: launched a run, or skipped it because a
run was still in progress. Shared by every daemon and worker of the instance."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from reverse_etl_assets.state.store import StateStore
from reverse_etl_assets.state.tables import SCHEDULE_TICKS

KEEP_SECONDS = 60 * 86_400  # enough for the last twenty ticks of a daily schedule, and more


@dataclass(frozen=True)
class RecentTicks:
    ticks: int
    skipped_busy: int


class ScheduleTicks:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def record(self, sync: str, destination: str, tick_at: float, skipped_busy: bool) -> None:
        """Once per tick: a tick evaluated again (the daemon retrying it) keeps one row."""
        row = {"sync": sync, "destination": destination, "tick_at": tick_at, "skipped_busy": skipped_busy}
        with self.store.transaction() as connection:
            connection.execute(self.store.upsert(SCHEDULE_TICKS, ["sync", "destination", "tick_at"], [row]))
            connection.execute(
                sa.delete(SCHEDULE_TICKS).where(
                    SCHEDULE_TICKS.c.sync == sync,
                    SCHEDULE_TICKS.c.destination == destination,
                    SCHEDULE_TICKS.c.tick_at < tick_at - KEEP_SECONDS,
                )
            )

    def recent(self, sync: str, destination: str, limit: int) -> RecentTicks:
        with self.store.engine.connect() as connection:
            outcomes = connection.execute(
                sa.select(SCHEDULE_TICKS.c.skipped_busy)
                .where(SCHEDULE_TICKS.c.sync == sync, SCHEDULE_TICKS.c.destination == destination)
                .order_by(SCHEDULE_TICKS.c.tick_at.desc())
                .limit(limit)
            ).scalars()
            skipped = [bool(outcome) for outcome in outcomes]
        return RecentTicks(ticks=len(skipped), skipped_busy=sum(skipped))
