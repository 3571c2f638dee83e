"""The whole Dagster shell, built from the loaded configuration."""

from __future__ import annotations

import os

import dagster as dg

from reverse_etl_assets.config.loading import LoadedConfig
from reverse_etl_assets.defs.assets import build_sync_asset
from reverse_etl_assets.defs.resources import DeliveryResource
from reverse_etl_assets.defs.schedules import build_sync_job, build_sync_schedule


def build_definitions(config: LoadedConfig) -> dg.Definitions:
    assets, jobs, schedules = [], [], []
    for sync in config.project.syncs:
        asset = build_sync_asset(sync, config)
        job = build_sync_job(sync, asset)
        assets.append(asset)
        jobs.append(job)
        schedules.append(build_sync_schedule(sync, job, config.project.schedule_timezone))
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=schedules,
        resources={"delivery": DeliveryResource(ledger_url=os.environ.get("REVERSE_ETL_LEDGER_URL") or None)},
    )
