"""A sync run's result → the metadata Dagster shows on the materialization (or the failure)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from reverse_etl_assets.config.models import Destination, OutboxDestination
from reverse_etl_assets.cursor import format_unix_time
from reverse_etl_assets.defs.cursor_store import LAST_SYNC_TIME
from reverse_etl_assets.delivery.sender import Sender
from reverse_etl_assets.sync_run import SyncRunResult


def run_metadata(result: SyncRunResult) -> dict[str, Any]:
    stats, delivery = result.stats, result.stats.delivery
    metadata: dict[str, Any] = {
        "destination": result.destination_name,
        "rows_read": dg.MetadataValue.int(stats.rows_read),
        "calls_sent": dg.MetadataValue.int(delivery.calls_delivered),
        "rows_rejected": dg.MetadataValue.int(stats.rows_rejected),
        "calls_skipped_already_delivered": dg.MetadataValue.int(stats.calls_skipped),
        "requests": dg.MetadataValue.int(delivery.requests),
        "retried_requests": dg.MetadataValue.int(delivery.retried_requests),
        "split_requests": dg.MetadataValue.int(delivery.split_requests),
        "bytes_sent": dg.MetadataValue.int(delivery.bytes_sent),
        "throttled_seconds": dg.MetadataValue.float(round(delivery.throttled_seconds, 3)),
        "backoff_seconds": dg.MetadataValue.float(round(delivery.backoff_seconds, 3)),
        "duration_seconds": dg.MetadataValue.float(round(result.duration_seconds, 3)),
        "rows_per_second": dg.MetadataValue.float(round(result.rows_per_second, 1)),
        "previous_last_sync_time": dg.MetadataValue.int(result.previous_last_sync_time),
        "previous_last_sync_time_utc": format_unix_time(result.previous_last_sync_time),
        "query_since": dg.MetadataValue.int(result.query_since),
        "rendered_query": dg.MetadataValue.md(f"```sql\n{result.rendered_query}\n```"),
    }
    if result.reader_peak_memory_kb:
        metadata["reader_peak_memory_mb"] = dg.MetadataValue.float(
            round(result.reader_peak_memory_kb / 1024, 1)
        )
    if result.next_last_sync_time is not None:
        # The cursor: the next run of this destination reads it back.
        metadata[LAST_SYNC_TIME] = dg.MetadataValue.int(result.next_last_sync_time)
        metadata["last_sync_time_utc"] = format_unix_time(result.next_last_sync_time)
    if result.rejected_sample:
        metadata["rejected_rows_sample"] = rejected_table(result)
    if result.rejected_rows_where is not None and stats.rows_rejected:
        # Every one of them is in the state store, listed by this command on any worker.
        metadata["rejected_rows_all"] = dg.MetadataValue.text(result.rejected_rows_where)
    if result.warnings:
        metadata["warnings"] = dg.MetadataValue.md("\n".join(f"- {w}" for w in result.warnings))
    return metadata


def destination_link(config: Destination, sender: Sender) -> dict[str, Any]:
    """Where the calls went: the outbox's file, or the endpoint (its URL never holds a secret)."""
    if isinstance(config, OutboxDestination):
        return {"outbox_file": dg.MetadataValue.path(sender.settings.url)}
    return {"destination_url": dg.MetadataValue.url(sender.settings.url)}


def rejected_table(result: SyncRunResult) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"row_number": row.row_number, "field": row.field, "reason": row.reason})
            for row in result.rejected_sample
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("row_number", "int"),
                dg.TableColumn("field", "string"),
                dg.TableColumn("reason", "string"),
            ]
        ),
    )
