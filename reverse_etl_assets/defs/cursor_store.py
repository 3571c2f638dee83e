"""Cursors live in the Dagster instance: each destination partition's latest materialization
carries its `last_sync_time` in metadata, so the UI shows every cursor move with its run."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from reverse_etl_assets.cursor import Cursor, format_unix_time

LAST_SYNC_TIME = "last_sync_time"
CHANGED_BY = "cursor_changed_by"


class InstanceCursorStore:
    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance

    def read(self, sync_name: str, destination_name: str) -> Cursor:
        """The latest materialization that carries a cursor: one without (a materialization
        reported by hand in the UI, say) must not send the destination back to 0."""
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(sync_name), asset_partitions=[destination_name]),
            limit=100,
        ).records
        for record in records:
            metadata = record.asset_materialization.metadata if record.asset_materialization else {}
            if LAST_SYNC_TIME in metadata:
                changed_by = metadata.get(CHANGED_BY)
                return Cursor(
                    last_sync_time=int(metadata[LAST_SYNC_TIME].value),
                    set_at=dt.datetime.fromtimestamp(record.timestamp, dt.UTC),
                    set_by=str(changed_by.value)
                    if changed_by
                    else (f"run {record.run_id}" if record.run_id else None),
                )
        return Cursor()

    def write(
        self, sync_name: str, destination_name: str, last_sync_time: int, change: str, changed_by: str
    ) -> int:
        """Move a cursor by hand; return the one it replaced. It is recorded as a materialization of
        the destination's partition, so the UI shows who moved it, when, and from where to where."""
        previous = self.read(sync_name, destination_name).last_sync_time
        self.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=sync_name,
                partition=destination_name,
                description=f"cursor {change} by {changed_by}",
                metadata={
                    LAST_SYNC_TIME: dg.MetadataValue.int(last_sync_time),
                    "last_sync_time_utc": format_unix_time(last_sync_time),
                    "previous_last_sync_time": dg.MetadataValue.int(previous),
                    "cursor_change": change,
                    CHANGED_BY: changed_by,
                },
            )
        )
        return previous
