"""The `rejected_rows` check on every sync, evaluated with each materialization."""

from __future__ import annotations

import dagster as dg

from reverse_etl_assets.config.models import SyncConfig
from reverse_etl_assets.defs.metadata import rejected_table
from reverse_etl_assets.sync_run import SyncRunResult

REJECTED_ROWS = "rejected_rows"


def check_spec(sync: SyncConfig) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        REJECTED_ROWS,
        asset=sync.name,
        description=(
            "Rows that could not become valid calls and were not sent. Warns when any row was "
            f"rejected; errors when more than {sync.max_rejected_share:.0%} were (max_rejected_share)."
        ),
    )


def rejected_rows_check(sync: SyncConfig, result: SyncRunResult) -> dg.AssetCheckResult:
    rejected, read = result.stats.rows_rejected, result.stats.rows_read
    share = rejected / read if read else 0.0
    metadata: dict[str, object] = {
        "rows_rejected": dg.MetadataValue.int(rejected),
        "rows_read": dg.MetadataValue.int(read),
        "rejected_share": dg.MetadataValue.float(round(share, 6)),
        "max_rejected_share": dg.MetadataValue.float(sync.max_rejected_share),
    }
    if result.rejected_sample:
        metadata["rejected_rows_sample"] = rejected_table(result)
    if result.rejected_rows_where is not None and rejected:
        metadata["rejected_rows_all"] = dg.MetadataValue.text(result.rejected_rows_where)
    severity = dg.AssetCheckSeverity.ERROR if share > sync.max_rejected_share else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        check_name=REJECTED_ROWS,
        passed=rejected == 0,
        severity=severity,
        metadata=metadata,
        description=f"{rejected} of {read} rows rejected ({share:.1%})" if rejected else "no row rejected",
    )
