"""What recent runs of a sync's destination did, read back from their materializations."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg


@dataclass(frozen=True)
class PastRun:
    timestamp: float
    rows_read: int
    duration_seconds: float


def recent_runs(
    instance: dg.DagsterInstance, sync_name: str, destination: str, limit: int = 20
) -> list[PastRun]:
    """Newest first; cursor moves made by hand (no rows_read) are left out."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(sync_name), asset_partitions=[destination]), limit=limit
    ).records
    runs = []
    for record in records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        if "rows_read" in metadata and "duration_seconds" in metadata:
            runs.append(
                PastRun(
                    record.timestamp,
                    int(metadata["rows_read"].value),
                    float(metadata["duration_seconds"].value),
                )
            )
    return runs


def run_sizes(instance: dg.DagsterInstance, sync_name: str, destination: str) -> list[tuple[float, int]]:
    """(timestamp, rows read) of recent runs, newest first: what the large-runs guard looks at."""
    return [(run.timestamp, run.rows_read) for run in recent_runs(instance, sync_name, destination)]
