"""A rate limit's window in the store, shared by every process of every worker that sends to one
destination: a ring of the last `requests` send times, on the store's clock, and the `Retry-After`
pause that holds them all.

Each transaction takes several slots at once (a lease), so that the store is not asked once per
request: a lease is stamped with the time it was taken and must be used within `LEASE_SECONDS`.
A slot is free again `LEASE_SECONDS` after its window ends, so that a send made a little after its
stamp (the lease, the store's commit, the network) still lands outside the window of the send it
replaced: the destination never counts more than the limit, for a few percent of its rate."""

from __future__ import annotations

import contextlib

import sqlalchemy as sa

from reverse_etl_assets.state.store import StateStore
from reverse_etl_assets.state.tables import RATE_LIMITS, RATE_SENDS

# Slots taken for threads already waiting are theirs this long (the in-memory window keeps it too).
LEASE_SECONDS = 0.05


def limit_key(destination: str, requests: int, per_seconds: float) -> str:
    """The limit is in the key, so runs configured with another limit never share a window."""
    return f"{destination}.{requests}-per-{per_seconds:g}s"


class StoreWindow:
    def __init__(self, store: StateStore, key: str, requests: int, per_seconds: float) -> None:
        self.store = store
        self.key = key
        self.requests = requests
        self.per_seconds = per_seconds
        # A lease is at most the share of the window's requests that fits in LEASE_SECONDS.
        self.lease_size = max(1, int(requests * LEASE_SECONDS / per_seconds))
        self._where_limit = RATE_LIMITS.c.limit_key == key
        with store.transaction() as connection:  # a new window: its header and its empty ring
            connection.execute(
                store.insert_missing(
                    RATE_LIMITS, [{"limit_key": key, "oldest_slot": 0, "paused_until": 0.0, "pause_owner": 0}]
                )
            )
            existing = connection.execute(
                sa.select(sa.func.count()).where(RATE_SENDS.c.limit_key == key)
            ).scalar_one()
            if existing < requests:
                rows = [{"limit_key": key, "slot": slot, "sent_at": 0.0} for slot in range(requests)]
                for start in range(0, requests, 1000):
                    connection.execute(store.insert_missing(RATE_SENDS, rows[start : start + 1000]))

    def take(self, wanted: int) -> tuple[int, float, float]:
        """Take up to `wanted` slots (at most a lease): (how many were taken, how long to wait
        before asking again when none were, the store's time)."""
        wanted = max(1, min(wanted, self.lease_size))
        with self.store.transaction() as connection:
            oldest, paused_until = connection.execute(
                sa.select(RATE_LIMITS.c.oldest_slot, RATE_LIMITS.c.paused_until)
                .where(self._where_limit)
                .with_for_update()
            ).one()
            now = self.store.now(connection)
            if paused_until > now:
                return 0, paused_until - now, now
            slots = [(oldest + i) % self.requests for i in range(wanted)]
            sent = dict(
                connection.execute(
                    sa.select(RATE_SENDS.c.slot, RATE_SENDS.c.sent_at).where(
                        RATE_SENDS.c.limit_key == self.key, RATE_SENDS.c.slot.in_(slots)
                    )
                ).all()
            )
            free: list[int] = []
            wait = 0.0
            for slot in slots:  # oldest first: the first busy slot ends the free ones
                delay = sent[slot] + self.per_seconds + LEASE_SECONDS - now
                # Free, or stamped by a clock that was later set back.
                if delay > 0 and sent[slot] <= now + self.per_seconds:
                    wait = delay
                    break
                free.append(slot)
            if not free:
                return 0, wait, now
            connection.execute(
                sa.update(RATE_SENDS)
                .where(RATE_SENDS.c.limit_key == self.key, RATE_SENDS.c.slot.in_(free))
                .values(sent_at=now)
            )
            connection.execute(
                sa.update(RATE_LIMITS)
                .where(self._where_limit)
                .values(oldest_slot=(oldest + len(free)) % self.requests)
            )
            return len(free), 0.0, now

    def pause(self, seconds: float, owner: int) -> None:
        """Hold every sender for `seconds` (a `Retry-After`), as `owner`'s pause."""
        with self.store.transaction() as connection:
            until = self.store.now(connection) + seconds
            connection.execute(
                sa.update(RATE_LIMITS)
                .where(self._where_limit, RATE_LIMITS.c.paused_until < until)
                .values(paused_until=until, pause_owner=owner)
            )

    def end_pause(self, owner: int) -> None:
        """End `owner`'s pause if it still holds: one answer never holds back later runs. With the
        store away, the pause ends at its own time (at most `max_retry_after_seconds`)."""
        with contextlib.suppress(sa.exc.SQLAlchemyError), self.store.transaction() as connection:
            connection.execute(
                sa.update(RATE_LIMITS)
                .where(self._where_limit, RATE_LIMITS.c.pause_owner == owner)
                .values(paused_until=0.0, pause_owner=0)
            )
