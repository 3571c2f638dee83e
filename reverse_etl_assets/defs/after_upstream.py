"""Syncs that run after upstream Dagster assets update (`after_assets`): declarative automation.

Each such sync's asset carries a condition; one automation condition sensor of ours, running by
default (Dagster's own default sensor starts stopped), evaluates them in the daemon and launches a
plain run per destination (no backfill).
"""

from __future__ import annotations

import dagster as dg

from reverse_etl_assets.config.models import ProjectConfig, SyncConfig

AFTER_UPSTREAM_SENSOR = "reverse_etl_after_upstream"


def after_upstream_condition(sync: SyncConfig) -> dg.AutomationCondition | None:
    """Each destination runs once any upstream asset has been materialized since this condition
    last requested it, as soon as no run of it is in progress. An update that comes while a run is
    in progress is kept, not lost: that run may have read the upstream tables before they changed."""
    if not sync.after_assets or not sync.enabled:
        return None
    updated = dg.AutomationCondition.any_deps_updated().since(dg.AutomationCondition.newly_requested())
    return (updated & ~dg.AutomationCondition.in_progress()).with_label(
        f"after {', '.join(sync.after_assets)} update"
    )


def build_after_upstream_sensor(project: ProjectConfig) -> dg.AutomationConditionSensorDefinition | None:
    syncs = [sync.name for sync in project.syncs if after_upstream_condition(sync) is not None]
    if not syncs:
        return None
    return dg.AutomationConditionSensorDefinition(
        AFTER_UPSTREAM_SENSOR,
        target=dg.AssetSelection.assets(*syncs),
        default_status=dg.DefaultSensorStatus.RUNNING,
        emit_backfills=False,  # a run per destination, as every other launch makes
        minimum_interval_seconds=15,
        description="Runs the syncs that follow upstream assets (after_assets) once those update.",
    )
