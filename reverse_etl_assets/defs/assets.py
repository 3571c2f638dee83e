"""One asset per sync, partitioned by destination: materializing a partition runs the sync.

No `from __future__ import annotations` here: Dagster reads the context annotation at definition time.
"""

import dagster as dg

from reverse_etl_assets.config.loading import LoadedConfig
from reverse_etl_assets.config.models import SyncConfig
from reverse_etl_assets.defs.cursor_store import InstanceCursorStore
from reverse_etl_assets.defs.frequency_check import check_spec as frequency_check_spec
from reverse_etl_assets.defs.frequency_check import frequency_check
from reverse_etl_assets.defs.guards_check import check_spec as guards_check_spec
from reverse_etl_assets.defs.guards_check import guards_check
from reverse_etl_assets.defs.instance_home import rejected_rows_path
from reverse_etl_assets.defs.metadata import run_metadata
from reverse_etl_assets.defs.rejected_rows_check import check_spec as rejected_rows_spec
from reverse_etl_assets.defs.rejected_rows_check import rejected_rows_check
from reverse_etl_assets.defs.resources import DeliveryResource
from reverse_etl_assets.defs.runs import worker_tag
from reverse_etl_assets.delivery.errors import DeliveryError
from reverse_etl_assets.sync_run import SyncRunFailed, run_sync


def build_sync_asset(sync: SyncConfig, config: LoadedConfig) -> dg.AssetsDefinition:
    project = config.project
    database = project.databases[sync.database]
    destination_kinds = sorted({project.destinations[d].kind for d in sync.destinations})
    description = (sync.description or f"{sync.type} calls from {sync.database}") + (
        f"\n\n```sql\n{sync.query.strip()}\n```"
    )

    @dg.asset(
        name=sync.name,
        description=description,
        group_name=sync.group,
        owners=sync.owners,
        partitions_def=dg.StaticPartitionsDefinition(list(sync.destinations)),
        # Dagster shows at most three kinds: the database, then the destinations.
        kinds={database.kind, *destination_kinds[:2]},
        check_specs=[rejected_rows_spec(sync), frequency_check_spec(sync), guards_check_spec(sync)],
        # One run at a time per sync, whoever launches it (dagster.yaml sets every pool's limit to 1).
        pool=f"reverse_etl/{sync.name}",
        deps=[dg.AssetKey(key.split("/")) for key in sync.after_assets],
        metadata={
            "call_type": sync.type,
            "database": sync.database,
            "destinations": ", ".join(sync.destinations),
            "frequency": sync.frequency or "after upstream assets only",
            "after_assets": ", ".join(sync.after_assets) or "none",
            "query": dg.MetadataValue.md(f"```sql\n{sync.query.strip()}\n```"),
            "config_file": dg.MetadataValue.path(str(config.path)),
        },
    )
    def sync_asset(context: dg.AssetExecutionContext, delivery: DeliveryResource) -> dg.MaterializeResult:
        destination_name = context.partition_key
        # Which process runs this: a later run or tick can tell when it died without finishing.
        context.instance.add_run_tags(context.run.run_id, worker_tag())
        cursor = InstanceCursorStore(context.instance).read(sync.name, destination_name)
        context.log.info(
            f"{sync.name} → {destination_name}: last_sync_time {cursor.last_sync_time} "
            f"({cursor.last_sync_time_iso})"
        )
        try:
            sender = delivery.open(
                destination_name,
                project.destinations[destination_name],
                sync.name,
                context.instance.root_directory,
                context.log,
                # The sync accepts any share of rejected rows: so it does calls refused all alike.
                accept_refusals=sync.rejected_limit.share >= 1,
            )
        except DeliveryError as error:
            raise dg.Failure(description=str(error)) from None
        ledger = None
        try:
            if sync.lookback_seconds:
                ledger = delivery.open_ledger(context.instance.root_directory)
            result = run_sync(
                config,
                sync.name,
                destination_name,
                cursor.last_sync_time,
                sender,
                ledger=ledger,
                rejected_rows_path=rejected_rows_path(
                    context.instance.root_directory, sync.name, destination_name, context.run.run_id
                ),
                log=context.log,
            )
        except SyncRunFailed as failure:
            # No materialization, so the cursor stays where it was.
            raise dg.Failure(description=str(failure), metadata=run_metadata(failure.result)) from None
        finally:
            sender.close()
            if ledger is not None:
                ledger.close()
        for warning in result.warnings:
            context.log.warning(warning)
        return dg.MaterializeResult(
            metadata=run_metadata(result),
            check_results=[
                rejected_rows_check(sync, result),
                frequency_check(
                    context.instance,
                    sync,
                    destination_name,
                    project.schedule_timezone,
                    result.duration_seconds,
                ),
                guards_check(
                    context.instance, config, sync, destination_name, result.stats.rows_read, result.columns
                ),
            ],
        )

    return sync_asset
