"""One asset per sync, partitioned by destination: materializing a partition runs the sync.

No `from __future__ import annotations` here: Dagster reads the context annotation at definition time.
"""

import dagster as dg

from reverse_etl_assets.config.loading import LoadedConfig
from reverse_etl_assets.config.models import SyncConfig
from reverse_etl_assets.defs.after_upstream import after_upstream_condition
from reverse_etl_assets.defs.cursor_store import InstanceCursorStore
from reverse_etl_assets.defs.frequency_check import check_spec as frequency_check_spec
from reverse_etl_assets.defs.frequency_check import frequency_check
from reverse_etl_assets.defs.guards_check import check_spec as guards_check_spec
from reverse_etl_assets.defs.guards_check import guards_check
from reverse_etl_assets.defs.metadata import destination_link, run_metadata
from reverse_etl_assets.defs.rejected_rows_check import check_spec as rejected_rows_spec
from reverse_etl_assets.defs.rejected_rows_check import rejected_rows_check
from reverse_etl_assets.defs.resources import DeliveryResource
from reverse_etl_assets.defs.state_store import state_store
from reverse_etl_assets.delivery.errors import DeliveryError
from reverse_etl_assets.mapping.calls import RejectedRow
from reverse_etl_assets.state.heartbeats import Heartbeats
from reverse_etl_assets.state.ledger import DeliveryLedger
from reverse_etl_assets.state.rejected_rows import RejectedRowStore
from reverse_etl_assets.sync_run import SyncRunFailed, run_sync


def build_sync_asset(sync: SyncConfig, config: LoadedConfig) -> dg.AssetsDefinition:
    project = config.project
    database = project.databases[sync.database]
    destination_kinds = sorted({project.destinations[d].kind for d in sync.destinations})
    # The asset list shows the description as plain text: the SQL is in the metadata (`query`).
    description = sync.description or f"{sync.type} calls from {sync.database}"

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
        automation_condition=after_upstream_condition(sync),
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
        run_id = context.run.run_id
        store = state_store(context.instance)
        context.log.info(f"state store: {store.describe()}")
        # Alive while it beats: a later run or tick tells a dead run (its worker killed, its machine
        # lost) from a slow one, on any host and in any PID namespace.
        with Heartbeats(store).beating(run_id):
            cursor = InstanceCursorStore(context.instance).read(sync.name, destination_name)
            context.log.info(
                f"{sync.name} → {destination_name}: last_sync_time {cursor.last_sync_time} "
                f"({cursor.last_sync_time_iso})"
            )
            rejected_store = RejectedRowStore(store)
            rejected_store.prune(project.rejected_rows_retention_days)

            def record_rejected(rows: list[RejectedRow]) -> None:
                rejected_store.record(sync.name, destination_name, run_id, [row.as_dict() for row in rows])

            try:
                sender = delivery.open(
                    destination_name,
                    project.destinations[destination_name],
                    sync.name,
                    store,
                    context.log,
                    # The sync accepts any share of rejected rows: so it does calls refused all alike.
                    accept_refusals=sync.rejected_limit.share >= 1,
                )
            except DeliveryError as error:
                raise dg.Failure(description=str(error)) from None
            try:
                result = run_sync(
                    config,
                    sync.name,
                    destination_name,
                    cursor.last_sync_time,
                    sender,
                    ledger=DeliveryLedger(store) if sync.lookback_seconds else None,
                    rejected_rows=record_rejected,
                    rejected_rows_where=rejected_rows_command(sync.name, destination_name, run_id),
                    log=context.log,
                )
            except SyncRunFailed as failure:
                # No materialization, so the cursor stays where it was.
                raise dg.Failure(description=str(failure), metadata=run_metadata(failure.result)) from None
            finally:
                sender.close()
        for warning in result.warnings:
            context.log.warning(warning)
        return dg.MaterializeResult(
            metadata={
                **run_metadata(result),
                **destination_link(project.destinations[destination_name], sender),
            },
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


def rejected_rows_command(sync_name: str, destination: str, run_id: str) -> str:
    """The command that lists a run's rejected rows, from any machine of the instance."""
    return f"reverse-etl rejected {sync_name} --destination {destination} --run {run_id}"
