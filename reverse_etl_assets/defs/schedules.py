"""A schedule per sync and destination, built from the sync's `frequency`.

A tick is skipped, with a message naming the run, while a run of the same sync and destination is
queued or in progress, however it was launched. Nothing is lost by skipping: the next run reads the
destination's stored cursor, so it catches up on the skipped interval's rows.
"""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from reverse_etl_assets.config.models import SyncConfig
from reverse_etl_assets.defs.runs import PARTITION_TAG, run_in_progress, sync_job_name
from reverse_etl_assets.defs.state_store import state_store
from reverse_etl_assets.state.schedule_ticks import ScheduleTicks

SKIPPED_BUSY = "still in progress"  # every overlap skip message contains these words
SKIPPED_NOT_STARTED = "does not start before"


def schedule_name(sync_name: str, destination: str) -> str:
    return f"{sync_name}__{destination}_schedule"


def build_sync_schedules(sync: SyncConfig, timezone: str) -> list[dg.ScheduleDefinition]:
    if sync.cron is None:
        return []
    return [_schedule(sync, destination, timezone) for destination in sync.destinations]


def _schedule(sync: SyncConfig, destination: str, timezone: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=schedule_name(sync.name, destination),
        cron_schedule=sync.cron,
        execution_timezone=timezone,
        job_name=sync_job_name(sync.name),
        default_status=dg.DefaultScheduleStatus.RUNNING if sync.enabled else dg.DefaultScheduleStatus.STOPPED,
        description=f"Runs {sync.name} → {destination} every {sync.frequency} ({sync.cron}, {timezone}); "
        "skips a tick while an earlier run is still in progress.",
        tags={"reverse_etl/sync": sync.name, "reverse_etl/destination": destination},
    )
    def sync_schedule(context: dg.ScheduleEvaluationContext) -> dg.SkipReason | dg.RunRequest:
        return evaluate_tick(context, sync, destination)

    return sync_schedule


def evaluate_tick(
    context: dg.ScheduleEvaluationContext, sync: SyncConfig, destination: str
) -> dg.SkipReason | dg.RunRequest:
    tick = context.scheduled_execution_time
    if sync.start_at is not None and tick is not None and tick < sync.start_at:
        return dg.SkipReason(f"{sync.name} {SKIPPED_NOT_STARTED} {sync.start_at.isoformat()} (start_at)")
    busy = run_in_progress(context.instance, sync.name, destination)
    if tick is not None:  # the sync_frequency check counts the ticks skipped for a run in progress
        try:
            ScheduleTicks(state_store(context.instance)).record(
                sync.name, destination, tick.timestamp(), skipped_busy=busy is not None
            )
        except sa.exc.SQLAlchemyError as error:
            # Bookkeeping for a check: the store being away must not cost the tick its run.
            context.log.warning(f"{sync.name} → {destination}: tick not recorded ({type(error).__name__})")
    if busy is not None:
        return dg.SkipReason(
            f"{sync.name} → {destination}: run {busy.run_id} ({busy.job_name}, {busy.status.value}) is "
            f"{SKIPPED_BUSY}; the next run catches up from the stored last_sync_time"
        )
    return dg.RunRequest(partition_key=destination, tags={PARTITION_TAG: destination})
