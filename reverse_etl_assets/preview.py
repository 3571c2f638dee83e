"""Preview a sync: what its next run would send to one destination, without sending anything.

It runs the query read-only with the destination's current `last_sync_time`, counts the rows (the
API calls the next run would bill), maps the first rows into the exact payloads, reports the rows
that would be rejected, and checks the guards. No cursor moves.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from tabulate import tabulate

from reverse_etl_assets.config.loading import LoadedConfig
from reverse_etl_assets.cursor import format_unix_time, query_since
from reverse_etl_assets.mapping.calls import CallMapper, MappingOptions, RejectedRow
from reverse_etl_assets.source.connection import open_read_only_session
from reverse_etl_assets.source.guards import Finding, database_findings, large_runs_finding
from reverse_etl_assets.source.query import render_query


@dataclass
class SyncPreview:
    sync_name: str
    destination_name: str
    last_sync_time: int
    query_since: int
    rendered_query: str
    total_rows: int = 0  # what the next run would read: one billed API call per row sent
    rows: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def preview_sync(
    config: LoadedConfig,
    sync_name: str,
    destination_name: str,
    last_sync_time: int,
    limit: int = 10,
    recent_runs: Iterable[tuple[float, int]] = (),
) -> SyncPreview:
    """`recent_runs` are (start timestamp, rows read) of the destination's recent runs."""
    project = config.project
    sync = project.sync_to(sync_name, destination_name)
    since = query_since(last_sync_time, sync.lookback_seconds)
    preview = SyncPreview(sync_name, destination_name, last_sync_time, since, render_query(sync.query, since))
    destination = project.destinations[destination_name]
    mapper = CallMapper(MappingOptions.for_sync(sync, destination_name, destination))
    database = project.databases[sync.database]
    with open_read_only_session(sync.database, database) as session:
        preview.total_rows = session.count_rows(preview.rendered_query)
        preview.findings = database_findings(session, sync.query, database)
        # The previewed run counts: would it be one large run too many today?
        large = large_runs_finding([*recent_runs, (time.time(), preview.total_rows)], sync.large_run_rows)
        preview.findings += [large] if large else []
        # Last: stopping a stream early drops the connection.
        stream = session.stream_batches(preview.rendered_query, max(limit, 1))
        batch = next(stream, None)
        stream.close()
    if batch is not None and limit > 0:
        batch = batch.slice(0, limit)
        preview.rows = _json_safe(batch.to_pylist())
        mapped = mapper.map_batch(batch, first_row_number=1)
        preview.calls = [orjson.loads(body) for body in mapped.calls.bodies.to_pylist()]
        preview.rejected = mapped.rejected
        preview.warnings = mapper.warnings
    return preview


def _json_safe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return orjson.loads(orjson.dumps(rows, default=str, option=orjson.OPT_NON_STR_KEYS))


def render_preview(preview: SyncPreview, width: int = 40) -> str:
    """The preview as text for a terminal: tables for rows and rejected rows, one payload a line."""
    lines = [
        f"sync {preview.sync_name} → {preview.destination_name}",
        f"last_sync_time {preview.last_sync_time} ({format_unix_time(preview.last_sync_time)}); "
        f"the query reads from {preview.query_since} ({format_unix_time(preview.query_since)})",
        f"The next run would read {preview.total_rows:,} rows: {preview.total_rows:,} API calls, "
        "less any rejected rows.",
        "",
        "Query:",
        *(f"  {line}" for line in preview.rendered_query.splitlines()),
        "",
    ]
    if preview.rows:
        shown = [{k: _short(v, width) for k, v in row.items()} for row in preview.rows]
        lines += [f"First {len(shown)} rows:", tabulate(shown, headers="keys"), ""]
        lines += [
            f"Their payloads ({len(preview.calls)}):",
            *(orjson.dumps(c).decode() for c in preview.calls),
            "",
        ]
    else:
        lines += ["No rows: the next run would send nothing.", ""]
    if preview.rejected:
        table = [[r.row_number, r.field, r.reason] for r in preview.rejected]
        lines += [
            f"Rejected rows ({len(preview.rejected)} of the first {len(preview.rows)}): not sent",
            tabulate(table, headers=["row", "field", "reason"]),
            "",
        ]
    lines.append("Guards:" if preview.findings else "Guards: every guard passed")
    lines += [f"  warning: {finding.message}" for finding in preview.findings]
    lines += [f"  warning: {warning}" for warning in preview.warnings]
    return "\n".join(lines)


def _short(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= width else text[: width - 1] + "…"
