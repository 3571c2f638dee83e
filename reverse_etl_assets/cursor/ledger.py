"""The delivery ledger: which version of each person, group or event a destination last received,
within a sync's lookback horizon.

A sync with `lookback_seconds` re-reads a window it has already sent, to catch rows committed after
an earlier run started (the "late commit" gap). The ledger keeps those re-read rows from being sent
twice: a call is skipped when the last call delivered for the same person (group, event) to the
same destination had the same message id, i.e. the same content. A person who changed and changed
back is sent again, because the last delivered version differs.

It is a small SQL table (SQLite beside the Dagster instance by default, or any SQLAlchemy URL such
as PostgreSQL when workers run on several machines), pruned at every run to the lookback horizon,
so it holds at most the calls of one horizon.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

_METADATA = sa.MetaData()
DELIVERED = sa.Table(
    "reverse_etl_delivered",
    _METADATA,
    sa.Column("sync", sa.String(255), primary_key=True),
    sa.Column("destination", sa.String(255), primary_key=True),
    sa.Column("entity_key", sa.String(512), primary_key=True),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("delivered_at", sa.BigInteger, nullable=False, index=True),
)


class DeliveryLedger:
    def __init__(self, url: str) -> None:
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(url, connect_args=connect_args)
        _METADATA.create_all(self.engine)

    def load(self, sync: str, destination: str) -> dict[str, str]:
        """entity key → the message id last delivered for it."""
        query = sa.select(DELIVERED.c.entity_key, DELIVERED.c.message_id).where(
            DELIVERED.c.sync == sync, DELIVERED.c.destination == destination
        )
        with self.engine.connect() as connection:
            return {key: message_id for key, message_id in connection.execute(query)}

    def record(self, sync: str, destination: str, delivered: Iterable[tuple[str, str]], at: int) -> None:
        """Remember (entity key, message id) pairs as delivered at Unix time `at`."""
        rows = [
            {
                "sync": sync,
                "destination": destination,
                "entity_key": key,
                "message_id": message_id,
                "delivered_at": at,
            }
            for key, message_id in delivered
        ]
        if not rows:
            return
        insert = (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert(DELIVERED)
        statement = insert.on_conflict_do_update(
            index_elements=["sync", "destination", "entity_key"],
            set_={"message_id": insert.excluded.message_id, "delivered_at": insert.excluded.delivered_at},
        )
        with self.engine.begin() as connection:
            connection.execute(statement, rows)

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
        with self.engine.begin() as connection:
            return connection.execute(statement).rowcount

    def close(self) -> None:
        self.engine.dispose()
