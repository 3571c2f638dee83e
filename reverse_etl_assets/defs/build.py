"""The whole Dagster shell, built from the loaded configuration."""

from __future__ import annotations

import dagster as dg

from reverse_etl_assets.config.loading import LoadedConfig
from reverse_etl_assets.defs.assets import build_sync_asset
from reverse_etl_assets.defs.executor import build_executor
from reverse_etl_assets.defs.preview_job import build_preview_job
from reverse_etl_assets.defs.resources import DeliveryResource
from reverse_etl_assets.defs.schedules import build_sync_job, build_sync_schedules
from reverse_etl_assets.defs.sensors import build_alert_sensors, build_dead_run_sensor, build_upstream_sensor


def build_definitions(config: LoadedConfig) -> dg.Definitions:
    project = config.project
    assets, jobs, schedules = [], [], []
    sensors = [*build_alert_sensors(project), build_dead_run_sensor(project)]
    executor = build_executor(project.executor)
    for sync in project.syncs:
        asset = build_sync_asset(sync, config)
        job = build_sync_job(sync, asset, executor)
        assets.append(asset)
        jobs += [job, build_preview_job(sync, config)]
        schedules.extend(build_sync_schedules(sync, job, project.schedule_timezone))
        if sync.after_assets:
            sensors.append(build_upstream_sensor(sync, job))
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={"delivery": DeliveryResource()},
    )
