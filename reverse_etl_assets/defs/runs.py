"""Finding the runs of one sync and destination, however they were launched."""

from __future__ import annotations

import dagster as dg

from reverse_etl_assets.defs.state_store import state_store
from reverse_etl_assets.state.heartbeats import Heartbeats, dead_after_seconds

# Queued, starting or running: a run in any of these states still owns the destination's cursor.
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
PARTITION_TAG = "dagster/partition"


def sync_job_name(sync_name: str) -> str:
    return f"{sync_name}_job"


def runs_sync(run: dg.DagsterRun, sync_name: str) -> bool:
    """The schedule's job, the UI's Materialize button (`__ASSET_JOB` with an asset selection),
    a backfill or `reverse-etl run`: any run whose work includes the sync's asset."""
    if run.job_name == sync_job_name(sync_name):
        return True
    return bool(run.asset_selection) and dg.AssetKey(sync_name) in run.asset_selection


def run_in_progress(instance: dg.DagsterInstance, sync_name: str, destination: str) -> dg.DagsterRun | None:
    records = instance.get_run_records(
        dg.RunsFilter(statuses=IN_PROGRESS, tags={PARTITION_TAG: destination}), limit=200
    )
    runs = [record.dagster_run for record in records if runs_sync(record.dagster_run, sync_name)]
    # Every dead one is failed (its slot freed), not only those before the first live one: a run
    # waiting for the slot a dead run holds must not hide it.
    alive = [run for run in runs if not reap_if_dead(instance, run)]
    return alive[0] if alive else None


def reap_if_dead(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Fail a started run whose heartbeat stopped (its worker was killed, or its machine lost), and
    free its pool slot, so the sync runs again at its next tick instead of waiting for run
    monitoring's max runtime. A run that never beat (still waiting for its slot, say) is left to
    run monitoring."""
    if run.status != dg.DagsterRunStatus.STARTED:
        return False
    silent = Heartbeats(state_store(instance)).silent_for(run.run_id)
    if silent is None or silent < dead_after_seconds():
        return False
    instance.report_run_failed(
        run,
        f"its worker stopped beating {silent:.0f} s ago (killed, or its machine lost); "
        "the cursor did not move",
    )
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return True
