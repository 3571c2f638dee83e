"""Finding the runs of one sync and destination, however they were launched."""

from __future__ import annotations

import os
import socket

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
        run = record.dagster_run
        if runs_sync(run, sync_name) and not reap_if_dead(instance, run):
            return run
    return None


WORKER_TAG = "reverse_etl/worker"  # host:pid of the process executing a sync run


def worker_tag() -> dict[str, str]:
    return {WORKER_TAG: f"{socket.gethostname()}:{os.getpid()}"}


def reap_if_dead(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Fail a run whose worker process on this host is gone (killed, crashed), and free its pool
    slot, so the sync is not held up until run monitoring's max runtime. Runs of other hosts are
    left to run monitoring."""
    host, _, pid = run.tags.get(WORKER_TAG, "").rpartition(":")
    if run.status != dg.DagsterRunStatus.STARTED or host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        pass
    except PermissionError:
        return False  # alive, another user's
    else:
        return False
    instance.report_run_failed(run, f"the worker process {pid} on {host} is gone (killed or crashed)")
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return True
