"""A schedule per sync, built from its `frequency`: each tick asks for one run per destination."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from reverse_etl_assets.config.models import SyncConfig


def sync_job_name(sync_name: str) -> str:
    return f"{sync_name}_job"


def build_sync_job(sync: SyncConfig, asset: dg.AssetsDefinition) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        sync_job_name(sync.name),
        selection=dg.AssetSelection.assets(asset),
        description=f"Runs the sync {sync.name} for one destination.",
    )


def build_sync_schedule(
    sync: SyncConfig, job: UnresolvedAssetJobDefinition, timezone: str
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{sync.name}_schedule",
        cron_schedule=sync.cron,
        execution_timezone=timezone,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING if sync.enabled else dg.DefaultScheduleStatus.STOPPED,
        description=f"Runs {sync.name} every {sync.frequency} ({sync.cron}, {timezone}).",
    )
    def sync_schedule(context: dg.ScheduleEvaluationContext) -> dg.SkipReason | list[dg.RunRequest]:
        tick = context.scheduled_execution_time
        if sync.start_at is not None and tick is not None and tick < sync.start_at:
            return dg.SkipReason(f"{sync.name} starts at {sync.start_at.isoformat()}")
        return [dg.RunRequest(partition_key=destination) for destination in sync.destinations]

    return sync_schedule
