"""Rejected rows, kept in the store so that every worker, the UI and `reverse-etl rejected` see
them wherever the run happened; pruned after the retention period."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import sqlalchemy as sa

from reverse_etl_assets.state.store import StateStore
from reverse_etl_assets.state.tables import REJECTED_ROWS

_CHUNK = 1_000


class RejectedRowStore:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def record(self, sync: str, destination: str, run_id: str, rows: list[dict[str, object]]) -> None:
        with self.store.transaction() as connection:
            now = self.store.now(connection)
            values = [
                {
                    "sync": sync,
                    "destination": destination,
                    "run_id": run_id,
                    "recorded_at": now,
                    "row": orjson.dumps(row).decode(),
                }
                for row in rows
            ]
            for start in range(0, len(values), _CHUNK):
                connection.execute(sa.insert(REJECTED_ROWS), values[start : start + _CHUNK])

    def rows(
        self, sync: str, destination: str | None = None, run_id: str | None = None
    ) -> Iterator[tuple[str, str, bytes]]:
        """(destination, run id, the row as one JSON document), in the order they were recorded."""
        conditions = [REJECTED_ROWS.c.sync == sync]
        if destination is not None:
            conditions.append(REJECTED_ROWS.c.destination == destination)
        if run_id is not None:
            conditions.append(REJECTED_ROWS.c.run_id == run_id)
        query = (
            sa.select(REJECTED_ROWS.c.destination, REJECTED_ROWS.c.run_id, REJECTED_ROWS.c.row)
            .where(*conditions)
            .order_by(REJECTED_ROWS.c.id)
            .execution_options(yield_per=_CHUNK)
        )
        with self.store.engine.connect() as connection:
            for found_destination, found_run, row in connection.execute(query):
                yield found_destination, found_run, row.encode()

    def count(self, sync: str, destination: str, run_id: str) -> int:
        query = sa.select(sa.func.count()).where(
            REJECTED_ROWS.c.sync == sync,
            REJECTED_ROWS.c.destination == destination,
            REJECTED_ROWS.c.run_id == run_id,
        )
        with self.store.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def prune(self, retention_days: float) -> int:
        """Forget rows recorded more than `retention_days` ago; return how many went."""
        with self.store.transaction() as connection:
            horizon = self.store.now(connection) - retention_days * 86_400
            return connection.execute(
                sa.delete(REJECTED_ROWS).where(REJECTED_ROWS.c.recorded_at < horizon)
            ).rowcount
