"""The delivery ledger: which version of each person, group or event a destination last received,
within a sync's lookback horizon.

A sync with `lookback_seconds` re-reads a window it has already sent, to catch rows committed after
an earlier run started (the "late commit" gap). The ledger keeps those re-read rows from being sent
twice: a call is skipped when the last call delivered for the same person (group, event) to the
same destination had the same message id, i.e. the same content. A person who changed and changed
back is sent again, because the last delivered version differs.

It is pruned at every run to the lookback horizon, so it holds at most the calls of one horizon.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from reverse_etl_assets.state.store import StateStore
from reverse_etl_assets.state.tables import DELIVERED

_KEY = ["sync", "destination", "entity_key"]
_CHUNK = 5_000  # rows per INSERT: large enough to be fast, small enough for every driver's limits


class DeliveryLedger:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def load(self, sync: str, destination: str) -> dict[str, str]:
        """entity key → the message id last delivered for it."""
        query = sa.select(DELIVERED.c.entity_key, DELIVERED.c.message_id).where(
            DELIVERED.c.sync == sync, DELIVERED.c.destination == destination
        )
        with self.store.engine.connect() as connection:
            return {key: message_id for key, message_id in connection.execute(query)}

    def record(self, sync: str, destination: str, delivered: Iterable[tuple[str, str]], at: int) -> None:
        """Remember (entity key, message id) pairs as delivered at Unix time `at`."""
        # The last version of a key wins: one INSERT must not name a key twice (PostgreSQL refuses).
        latest = {key: message_id for key, message_id in delivered}
        rows = [
            {
                "sync": sync,
                "destination": destination,
                "entity_key": key,
                "message_id": mid,
                "delivered_at": at,
            }
            for key, mid in latest.items()
        ]
        with self.store.transaction() as connection:
            for start in range(0, len(rows), _CHUNK):
                connection.execute(self.store.upsert(DELIVERED, _KEY, rows[start : start + _CHUNK]))

    def prune(self, sync: str, destination: str, before: int) -> int:
        """Forget what was delivered before the horizon; return how many entries went."""
        return self._delete(sync, destination, DELIVERED.c.delivered_at < before)

    def forget(self, sync: str, destination: str) -> int:
        """Forget every delivery to the destination (its cursor was moved back by hand: what it
        re-reads must be sent again); return how many entries went."""
        return self._delete(sync, destination)

    def _delete(self, sync: str, destination: str, *conditions: sa.ColumnElement[bool]) -> int:
        statement = sa.delete(DELIVERED).where(
            DELIVERED.c.sync == sync, DELIVERED.c.destination == destination, *conditions
        )
        with self.store.transaction() as connection:
            return connection.execute(statement).rowcount
