"""The delivery ledger: which version of each person, group or event a destination last received,
within a sync's lookback horizon.

A sync with `lookback_seconds` re-reads a window it has already sent, to catch rows committed after
an earlier run started (the "late commit" gap). The ledger keeps those re-read rows from being sent
twice: a call is skipped when the last call delivered for the same person (group, event) to the
same destination had the same message id, i.e. the same content. A person who changed and changed
back is sent again, because the last delivered version differs.

It is pruned at every run to the lookback horizon, so it holds at most the calls of one horizon.

An entity key is stored as its XXH3-128 digest: a key is made of the row's own values, and those may
hold what a store's text column cannot (PostgreSQL refuses NUL; MySQL's key length is bounded), or be
longer than any index allows.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
import xxhash

from reverse_etl_assets.state.store import StateStore
from reverse_etl_assets.state.tables import DELIVERED

_KEY = ["sync", "destination", "entity_key"]
_CHUNK = 5_000  # rows per INSERT: large enough to be fast, small enough for every driver's limits


def ledger_key(entity_key: str) -> str:
    """What the ledger stores for an entity key: 32 hex digits, whatever the key holds."""
    return xxhash.xxh3_128_hexdigest(entity_key.encode("utf-8", "surrogatepass"))


class Delivered:
    """What `load` found: the message id last delivered for each entity key."""

    def __init__(self, by_digest: dict[str, str] | None = None) -> None:
        self._by_digest = by_digest or {}

    def get(self, entity_key: str) -> str | None:
        return self._by_digest.get(ledger_key(entity_key))

    def __len__(self) -> int:
        return len(self._by_digest)


class DeliveryLedger:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def load(self, sync: str, destination: str) -> Delivered:
        query = sa.select(DELIVERED.c.entity_key, DELIVERED.c.message_id).where(
            DELIVERED.c.sync == sync, DELIVERED.c.destination == destination
        )
        with self.store.engine.connect() as connection:
            return Delivered({key: message_id for key, message_id in connection.execute(query)})

    def record(self, sync: str, destination: str, delivered: Iterable[tuple[str, str]], at: int) -> None:
        """Remember (entity key, message id) pairs as delivered at Unix time `at`."""
        # The last version of a key wins: one INSERT must not name a key twice (PostgreSQL refuses).
        latest = {ledger_key(key): message_id for key, message_id in delivered}
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
