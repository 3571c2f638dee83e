"""The `query_guards` check on every sync, evaluated with each materialization: the best-practice
guards (incremental query, read-only user, no large syncs several times a day)."""

from __future__ import annotations

import time

import dagster as dg

from reverse_etl_assets.config.loading import LoadedConfig
from reverse_etl_assets.config.models import SyncConfig
from reverse_etl_assets.defs.history import run_sizes
from reverse_etl_assets.mapping.fields import identical_events_warning
from reverse_etl_assets.source.connection import open_read_only_session
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.source.guards import (
    Finding,
    database_findings,
    large_runs_finding,
    static_findings,
)

QUERY_GUARDS = "query_guards"


def check_spec(sync: SyncConfig) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        QUERY_GUARDS,
        asset=sync.name,
        description="Warns when the query does not use {{last_sync_time}} or is not incremental in "
        "practice, when the database user can write, when runs read more than large_run_rows rows "
        "more than once a day, or when a lookback could send only one of two identical events.",
    )


def guards_check(
    instance: dg.DagsterInstance,
    config: LoadedConfig,
    sync: SyncConfig,
    destination: str,
    rows_read: int,
    columns: list[str],
) -> dg.AssetCheckResult:
    """`columns` are the query's result columns, as this run read them."""
    database = config.project.databases[sync.database]
    try:
        with open_read_only_session(sync.database, database) as session:
            findings = database_findings(session, sync.query, database, probe=rows_read > 0)
    except SourceError as error:
        findings = [
            *static_findings(sync.query),
            Finding("unchecked", f"the database guards could not run: {error}"),
        ]
    # This run's materialization is not stored yet: it is counted here.
    history = run_sizes(instance, sync.name, destination)
    large = large_runs_finding([(time.time(), rows_read), *history], sync.large_run_rows)
    findings += [large] if large else []
    identical = identical_events_warning(sync.type, columns) if sync.lookback_seconds and columns else None
    findings += [Finding("identical_events", identical)] if identical else []
    return guards_result(findings)


def guards_result(findings: list[Finding]) -> dg.AssetCheckResult:
    if not findings:
        return dg.AssetCheckResult(check_name=QUERY_GUARDS, passed=True, description="every guard passed")
    return dg.AssetCheckResult(
        check_name=QUERY_GUARDS,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(f.message for f in findings),
        metadata={
            "findings": dg.MetadataValue.md("\n".join(f"- **{f.guard}**: {f.message}" for f in findings))
        },
    )
