"""Preview a sync: what its next run would send to one destination, without sending anything.

It counts the rows the query returns with the destination's current `last_sync_time` (the API
calls the next run would bill), and reads the first rows the way the run reads them (the same
driver, the same reading process, the same mapping), so its payloads are the run's, byte for byte.
Each payload is checked against the destination's published schema too, to show the rows it would
refuse; and the guards are checked. No cursor moves.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import orjson
from tabulate import tabulate

from reverse_etl_assets.config.loading import LoadedConfig
from reverse_etl_assets.cursor import format_unix_time, query_since
from reverse_etl_assets.delivery.api_schema import schema_errors
from reverse_etl_assets.mapping.calls import CallMapper, MappingOptions, RejectedRow, plain_rows
from reverse_etl_assets.source.connection import open_read_only_session
from reverse_etl_assets.source.guards import Finding, database_findings, large_runs_finding
from reverse_etl_assets.source.reader_process import start_query
from reverse_etl_assets.source.unreadable import take_unreadable
from reverse_etl_assets.sql.placeholders import render_query


@dataclass(frozen=True)
class SchemaProblem:
    """A previewed call the destination's published schema refuses."""

    row_number: int
    reasons: list[str]


@dataclass
class CallSample:
    """The first rows of a query, read and mapped as the run reads and maps them."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)  # the calls' bytes, exactly as the run sends them
    row_numbers: list[int] = field(default_factory=list)  # the row each payload comes from
    rejected: list[RejectedRow] = field(default_factory=list)
    schema_problems: list[SchemaProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def calls(self) -> list[dict[str, Any]]:
        return [orjson.loads(payload) for payload in self.payloads]


@dataclass
class SyncPreview(CallSample):
    sync_name: str = ""
    destination_name: str = ""
    last_sync_time: int = 0
    query_since: int = 0
    rendered_query: str = ""
    total_rows: int = 0  # what the next run would read: one billed API call per row sent
    findings: list[Finding] = field(default_factory=list)


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
    database = project.databases[sync.database]
    rendered = render_query(sync.query, since, database.time_zone)
    with open_read_only_session(sync.database, database) as session:
        total_rows = session.count_rows(rendered)
        findings = database_findings(session, sync.query, database)
    # The previewed run counts: would it be one large run too many today?
    large = large_runs_finding([*recent_runs, (time.time(), total_rows)], sync.large_run_rows)
    sample = CallSample()
    if limit > 0 and total_rows:
        sample = sample_calls(config, sync_name, destination_name, rendered, limit)
    return SyncPreview(
        **vars(sample),
        sync_name=sync_name,
        destination_name=destination_name,
        last_sync_time=last_sync_time,
        query_since=since,
        rendered_query=rendered,
        total_rows=total_rows,
        findings=[*findings, large] if large else findings,
    )


def sample_calls(
    config: LoadedConfig, sync_name: str, destination_name: str, rendered_query: str, limit: int
) -> CallSample:
    """Read and map the first `limit` rows of `rendered_query` as the run does, then stop reading;
    check each call against the destination's published schema."""
    project = config.project
    sync = project.sync_to(sync_name, destination_name)
    destination = project.destinations[destination_name]
    mapper = CallMapper(MappingOptions.for_sync(sync, destination_name, destination))
    sample = CallSample()
    query = start_query(
        sync.database, project.databases[sync.database], rendered_query, min(limit, sync.batch_rows)
    )
    try:
        with closing(query.batches()) as batches:
            for batch in batches:
                batch = batch.slice(0, limit - len(sample.rows))
                mapped = mapper.map_batch(batch, first_row_number=len(sample.rows) + 1)
                sample.rows += plain_rows(take_unreadable(batch)[0])
                sample.payloads += [body.encode() for body in mapped.calls.bodies.to_pylist()]
                sample.row_numbers += mapped.calls.row_numbers.to_pylist()
                sample.rejected += mapped.rejected
                if len(sample.rows) >= limit:
                    break
    finally:
        query.stop()
    sample.warnings = mapper.warnings
    for row_number, call in zip(sample.row_numbers, sample.calls, strict=True):
        reasons = schema_errors(call)
        if reasons:
            sample.schema_problems.append(SchemaProblem(row_number, reasons))
    return sample


def sample_findings(sample: CallSample) -> list[Finding]:
    """What `reverse-etl validate` says of a sample: rows that would be rejected or refused."""
    findings = [Finding("mapping", warning) for warning in sample.warnings]  # names, lookback
    if sample.rejected:
        first = sample.rejected[0]
        findings.append(
            Finding(
                "rejected_rows",
                f"{len(sample.rejected)} of its first {len(sample.rows)} rows would be rejected, e.g. row "
                f"{first.row_number}, {first.field}: {first.reason}",
            )
        )
    if sample.schema_problems:
        first = sample.schema_problems[0]
        findings.append(
            Finding(
                "destination_schema",
                f"the destination's published schema refuses {len(sample.schema_problems)} of the calls "
                f"its first {len(sample.rows)} rows become, e.g. row {first.row_number}: "
                f"{'; '.join(first.reasons)}",
            )
        )
    return findings


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
            f"Their payloads ({len(preview.payloads)}), as the run sends them:",
            *(payload.decode() for payload in preview.payloads),
            "",
        ]
    elif preview.total_rows:
        lines += ["(--limit 0: no rows shown)", ""]
    else:
        lines += ["No rows: the next run would send nothing.", ""]
    if preview.rejected:
        table = [[r.row_number, r.field, r.reason] for r in preview.rejected]
        lines += [
            f"Rejected rows ({len(preview.rejected)} of the first {len(preview.rows)}): not sent",
            tabulate(table, headers=["row", "field", "reason"]),
            "",
        ]
    if preview.schema_problems:
        table = [[p.row_number, "; ".join(p.reasons)] for p in preview.schema_problems]
        lines += [
            f"Calls the destination's published schema refuses ({len(preview.schema_problems)}): "
            "the destination would answer 400",
            tabulate(table, headers=["row", "why"]),
            "",
        ]
    lines.append("Guards:" if preview.findings else "Guards: every guard passed")
    lines += [f"  warning: {finding.message}" for finding in preview.findings]
    lines += [f"  warning: {warning}" for warning in preview.warnings]
    return "\n".join(lines)


def _short(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= width else text[: width - 1] + "…"
