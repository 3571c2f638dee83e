"""The `reverse_etl_start_now` sensor: a scheduled sync's destination that has never run starts on
the daemon's next evaluation, not a whole interval later (a daily sync would otherwise wait for
midnight); from then on its schedule runs it.

"Never run" means: no run of the sync for that destination in any state, and no materialization of
its partition (a cursor set by hand counts as one). The sensor's cursor remembers the pairs it has
seen run, so a long-lived instance does not query them again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import dagster as dg

from reverse_etl_assets.config.models import ProjectConfig, SyncConfig
from reverse_etl_assets.defs.runs import PARTITION_TAG, runs_sync, sync_job_name

START_NOW_SENSOR = "reverse_etl_start_now"
START_NOW_INTERVAL_SECONDS = 10


def build_start_now_sensor(project: ProjectConfig, jobs: Sequence[Any]) -> dg.SensorDefinition:
    """`jobs` are the syncs' jobs (what `define_asset_job` returns; its type is not public API)."""
    scheduled = [sync for sync in project.syncs if sync.cron is not None and sync.enabled]

    @dg.sensor(
        name=START_NOW_SENSOR,
        description="Starts each scheduled sync's destination that has never run at once (once "
        "enabled and past its start_at), instead of at its schedule's next tick.",
        minimum_interval_seconds=START_NOW_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=list(jobs),
    )
    def start_now(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        started: set[str] = set(json.loads(context.cursor)) if context.cursor else set()
        now = dt.datetime.now(dt.UTC)
        requests, waiting = [], []
        for sync in scheduled:
            for destination in sync.destinations:
                pair = f"{sync.name}:{destination}"
                if pair in started:
                    continue
                if sync.start_at is not None and now < sync.start_at:
                    waiting.append(f"{pair} (start_at {sync.start_at.isoformat()})")
                    continue
                if _has_run(context.instance, sync, destination):
                    started.add(pair)
                    continue
                # The run key makes this once per pair, whatever the sensor's cursor says.
                requests.append(
                    dg.RunRequest(
                        run_key=f"{pair}:first",
                        job_name=sync_job_name(sync.name),
                        partition_key=destination,
                        tags={PARTITION_TAG: destination},
                    )
                )
                started.add(pair)
        skip = (
            None
            if requests
            else "every scheduled destination has run"
            + (f"; waiting for {', '.join(waiting)}" if waiting else "")
        )
        return dg.SensorResult(run_requests=requests, skip_reason=skip, cursor=json.dumps(sorted(started)))

    return start_now


def _has_run(instance: dg.DagsterInstance, sync: SyncConfig, destination: str) -> bool:
    materialized = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(sync.name), asset_partitions=[destination]), limit=1
    ).records
    if materialized:
        return True
    records = instance.get_run_records(dg.RunsFilter(tags={PARTITION_TAG: destination}), limit=500)
    return any(runs_sync(record.dagster_run, sync.name) for record in records)
