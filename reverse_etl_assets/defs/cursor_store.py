"""Cursors live in the Dagster instance: each destination partition's latest materialization
carries its `last_sync_time` in metadata, so the UI shows every cursor move with its run."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from reverse_etl_assets.cursor import Cursor

LAST_SYNC_TIME = "last_sync_time"


class InstanceCursorStore:
    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance

    def read(self, sync_name: str, destination_name: str) -> Cursor:
        records = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(sync_name), asset_partitions=[destination_name]),
            limit=1,
        ).records
        if not records:
            return Cursor()
        record = records[0]
        materialization = record.asset_materialization
        value = materialization.metadata.get(LAST_SYNC_TIME) if materialization else None
        if value is None:
            return Cursor()
        return Cursor(
            last_sync_time=int(value.value),
            set_at=dt.datetime.fromtimestamp(record.timestamp, dt.UTC),
            set_by=record.run_id or None,
        )
