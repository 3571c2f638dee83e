"""Finding the runs of one sync and destination, however they were launched."""

from __future__ import annotations

import dagster as dg

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
    for record in records:
        if runs_sync(record.dagster_run, sync_name):
            return record.dagster_run
    return None
