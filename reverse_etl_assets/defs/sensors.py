"""Sensors: alerts to a webhook when a sync fails or rejects too many rows, and dead runs failed."""

from __future__ import annotations

from typing import Any

import dagster as dg

from reverse_etl_assets.config.models import ProjectConfig, SyncConfig
from reverse_etl_assets.defs.alerts import WEBHOOK_ENV, Alert, rejected_rows_reason, send_alert, webhook_url
from reverse_etl_assets.defs.runs import PARTITION_TAG, reap_if_dead, runs_sync

DEAD_RUNS_INTERVAL_SECONDS = 15


def build_dead_run_sensor(project: ProjectConfig) -> dg.SensorDefinition:
    """Fails the runs whose worker stopped beating and frees their pool slots, every 15 s, so a
    sync whose worker died runs again at its next launch (schedule, sensor, button) by itself."""
    syncs = {sync.name: sync for sync in project.syncs}

    @dg.sensor(
        name="reverse_etl_dead_runs",
        description="Fails sync runs whose worker stopped beating (killed, machine lost), frees their slot.",
        minimum_interval_seconds=DEAD_RUNS_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def dead_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        # One query for every started run; only sync runs are looked at.
        records = context.instance.get_run_records(
            dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=1000
        )
        failed = [
            record.dagster_run.run_id
            for record in records
            if _sync_of(record.dagster_run, syncs) is not None
            and reap_if_dead(context.instance, record.dagster_run)
        ]
        return dg.SkipReason(f"failed dead runs: {', '.join(failed)}" if failed else "no dead sync run")

    return dead_runs


def build_alert_sensors(project: ProjectConfig) -> list[dg.SensorDefinition]:
    syncs = {sync.name: sync for sync in project.syncs}

    @dg.run_failure_sensor(
        name="reverse_etl_failure_alerts",
        description=f"Posts to ${WEBHOOK_ENV} (Slack-compatible JSON) when a sync run fails.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def failure_alerts(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
        sync = _sync_of(context.dagster_run, syncs)
        if sync is None:
            return dg.SkipReason(f"run {context.dagster_run.run_id} is not a sync run")
        counts: dict[str, Any] = {}
        errors = []
        for event in context.get_step_failure_events():
            data = event.step_failure_data
            if data.user_failure_data is not None:
                counts.update({k: v.value for k, v in data.user_failure_data.metadata.items()})
            if data.error is not None:
                errors.append(data.error.message.strip())
        error = "; ".join(errors) or context.failure_event.message or "the run failed"
        return _post(context.dagster_run, sync, "FAILED", error, counts)

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name="reverse_etl_rejected_rows_alerts",
        description=f"Posts to ${WEBHOOK_ENV} when a sync run rejects more rows than its max_rejected_share.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def rejected_rows_alerts(context: dg.RunStatusSensorContext) -> dg.SkipReason | None:
        sync = _sync_of(context.dagster_run, syncs)
        if sync is None:
            return dg.SkipReason(f"run {context.dagster_run.run_id} is not a sync run")
        records = context.instance.get_records_for_run(
            context.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        for record in records:
            materialization = record.asset_materialization
            if materialization is None or materialization.asset_key != dg.AssetKey(sync.name):
                continue
            counts = {k: v.value for k, v in materialization.metadata.items()}
            reason = rejected_rows_reason(sync.max_rejected_share, counts)
            if reason:
                return _post(context.dagster_run, sync, "REJECTED ROWS", reason, counts)
        return dg.SkipReason("no sync materialization above its max_rejected_share")

    return [failure_alerts, rejected_rows_alerts]


def _sync_of(run: dg.DagsterRun, syncs: dict[str, SyncConfig]) -> SyncConfig | None:
    return next((sync for name, sync in syncs.items() if runs_sync(run, name)), None)


def _post(
    run: dg.DagsterRun, sync: SyncConfig, what: str, reason: str, counts: dict[str, Any]
) -> dg.SkipReason | None:
    url = webhook_url()
    if not url:
        return dg.SkipReason(f"no alert sent: ${WEBHOOK_ENV} is not set")
    destination = run.tags.get(PARTITION_TAG, "?")
    # A failure here shows in the sensor's tick, naming the webhook's host, never its URL.
    send_alert(Alert(what, sync.name, destination, run.run_id, reason, counts), url)
    return None
