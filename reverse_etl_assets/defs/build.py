"""The whole Dagster shell, built from the loaded configuration."""

from __future__ import annotations

import dagster as dg

from reverse_etl_assets.config.loading import LoadedConfig
from reverse_etl_assets.defs.after_upstream import build_after_upstream_sensor
from reverse_etl_assets.defs.assets import build_sync_asset
from reverse_etl_assets.defs.executor import build_executor
from reverse_etl_assets.defs.preview_job import build_preview_job
from reverse_etl_assets.defs.resources import DeliveryResource
from reverse_etl_assets.defs.runs import sync_job_name
from reverse_etl_assets.defs.schedules import build_sync_schedules
from reverse_etl_assets.defs.sensors import build_alert_sensors, build_dead_run_sensor
from reverse_etl_assets.defs.start_now import build_start_now_sensor


def build_definitions(config: LoadedConfig) -> dg.Definitions:
    project = config.project
    assets, sync_jobs, preview_jobs, schedules = [], [], [], []
    sensors = [*build_alert_sensors(project), build_dead_run_sensor(project)]
    executor = build_executor(project.executor)
    for sync in project.syncs:
        asset = build_sync_asset(sync, config)
        assets.append(asset)
        sync_jobs.append(
            dg.define_asset_job(
                sync_job_name(sync.name),
                selection=dg.AssetSelection.assets(asset),
                description=f"Runs the sync {sync.name} for one destination (the partition).",
                executor_def=executor,
            )
        )
        preview_jobs.append(build_preview_job(sync, config))
        schedules.extend(build_sync_schedules(sync, project.schedule_timezone))
    sensors.append(build_start_now_sensor(project, sync_jobs))
    after_upstream = build_after_upstream_sensor(project)
    sensors += [after_upstream] if after_upstream is not None else []
    jobs = sync_jobs + preview_jobs
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={"delivery": DeliveryResource()},
        # Runs that are not the sync's job (the Materialize button, declarative automation) execute
        # where the sync jobs do.
        executor=executor,
    )
