"""Sync runs' heartbeats: a worker that executes a run says so every few seconds, on the store's
clock. A run whose heartbeat stopped is dead, whatever host or PID namespace it ran in."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from reverse_etl_assets.state.store import StateStore
from reverse_etl_assets.state.tables import HEARTBEATS

DEAD_AFTER_ENV = "REVERSE_ETL_DEAD_AFTER_SECONDS"


def dead_after_seconds() -> float:
    """How long a run may stay silent before it is taken for dead (default 45 s); it beats nine
    times in that time, so a slow store or a busy machine never looks like death."""
    return float(os.environ.get(DEAD_AFTER_ENV) or 45)


class Heartbeats:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def beat(self, run_id: str) -> None:
        with self.store.transaction() as connection:
            now = self.store.now(connection)
            connection.execute(
                self.store.upsert(HEARTBEATS, ["run_id"], [{"run_id": run_id, "beat_at": now}])
            )

    def silent_for(self, run_id: str) -> float | None:
        """Seconds since the run's last heartbeat; None if it never had one."""
        with self.store.engine.connect() as connection:
            beat_at = connection.execute(
                sa.select(HEARTBEATS.c.beat_at).where(HEARTBEATS.c.run_id == run_id)
            ).scalar_one_or_none()
            return None if beat_at is None else self.store.now(connection) - beat_at

    def prune(self, older_than_seconds: float = 86_400) -> None:
        with self.store.transaction() as connection:
            horizon = self.store.now(connection) - older_than_seconds
            connection.execute(sa.delete(HEARTBEATS).where(HEARTBEATS.c.beat_at < horizon))

    @contextmanager
    def beating(self, run_id: str) -> Iterator[None]:
        """Beat for `run_id` from a thread of its own while the block runs (a slow query or a
        long retry must not look like death)."""
        every = dead_after_seconds() / 9
        stopped = threading.Event()

        def loop() -> None:
            while not stopped.wait(every):
                # The store away for a moment: the next beat tries again.
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    self.beat(run_id)

        self.prune()
        self.beat(run_id)
        thread = threading.Thread(target=loop, daemon=True, name=f"heartbeat-{run_id[:8]}")
        thread.start()
        try:
            yield
        finally:
            stopped.set()
            thread.join()  # the last beat stays: a run still "started" long after it is dead
