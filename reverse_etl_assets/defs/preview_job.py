"""A preview job per sync, launched from the UI's Launchpad: what the next run would send to one
destination, shown as metadata tables. It sends nothing and moves no cursor.

No `from __future__ import annotations` here: Dagster reads the op's config annotation.
"""

from typing import Any

import dagster as dg
import orjson
from pydantic import Field

from reverse_etl_assets.config.loading import LoadedConfig
from reverse_etl_assets.config.models import SyncConfig
from reverse_etl_assets.defs.cursor_store import InstanceCursorStore
from reverse_etl_assets.defs.history import run_sizes
from reverse_etl_assets.preview import SyncPreview, preview_sync

MAX_CELL = 200


def preview_job_name(sync_name: str) -> str:
    return f"preview_{sync_name}"


def build_preview_job(sync: SyncConfig, config: LoadedConfig) -> dg.JobDefinition:
    class PreviewConfig(dg.Config):
        destination: str = Field(
            default=sync.destinations[0], description=f"One of: {', '.join(sync.destinations)}"
        )
        limit: int = Field(default=10, ge=0, le=1000, description="How many rows and payloads to show.")

    @dg.op(name=f"preview_{sync.name}_op", description=f"Preview the next run of {sync.name}; sends nothing.")
    def preview_op(context: dg.OpExecutionContext, config: PreviewConfig) -> None:
        if config.destination not in sync.destinations:
            raise dg.Failure(
                f"{sync.name} has no destination {config.destination!r}: {', '.join(sync.destinations)}"
            )
        cursor = InstanceCursorStore(context.instance).read(sync.name, config.destination)
        runs = run_sizes(context.instance, sync.name, config.destination)
        result = preview_sync(
            loaded, sync.name, config.destination, cursor.last_sync_time, config.limit, runs
        )
        metadata = preview_metadata(result)
        context.log_event(
            dg.AssetObservation(asset_key=sync.name, partition=config.destination, metadata=metadata)
        )
        context.log.info(f"{result.total_rows} rows would be sent to {config.destination} by the next run")

    loaded = config

    @dg.job(
        name=preview_job_name(sync.name),
        description=f"What the next run of {sync.name} would send: rows, payloads, rejected rows and "
        "guards, as metadata. Sends nothing, moves no cursor.",
        tags={"reverse_etl/sync": sync.name, "reverse_etl/preview": "true"},
    )
    def preview_job() -> None:
        preview_op()

    return preview_job


def preview_metadata(preview: SyncPreview) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "rows_next_run_would_send": dg.MetadataValue.int(preview.total_rows),
        "last_sync_time": dg.MetadataValue.int(preview.last_sync_time),
        "query_since": dg.MetadataValue.int(preview.query_since),
        "rendered_query": dg.MetadataValue.md(f"```sql\n{preview.rendered_query}\n```"),
        "first_rows": _table(preview.rows),
        # Exactly the bytes the run would send (re-serialized, DECIMALs could lose digits).
        "payloads": dg.MetadataValue.md(
            "\n\n".join(f"```json\n{payload.decode()}\n```" for payload in preview.payloads) or "no payload"
        ),
        "rejected_rows": _table(
            [row.as_dict() | {"row": orjson.dumps(row.row).decode()} for row in preview.rejected]
        ),
        "schema_problems": _table(
            [{"row": p.row_number, "why": "; ".join(p.reasons)} for p in preview.schema_problems]
        ),
        "guards": dg.MetadataValue.md(
            "\n".join(f"- **{f.guard}**: {f.message}" for f in preview.findings) or "every guard passed"
        ),
    }
    if preview.warnings:
        metadata["warnings"] = dg.MetadataValue.md("\n".join(f"- {w}" for w in preview.warnings))
    return metadata


def _table(rows: list[dict[str, Any]]) -> dg.TableMetadataValue:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: _cell(row.get(c)) for c in columns}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in columns]),
    )


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
