"""One run of one sync to one destination: source → mapping → delivery, in plain Python.

The caller reads the destination's `last_sync_time` before and commits `next_last_sync_time` after;
this module never moves a cursor. `next_last_sync_time` is set only when every row was delivered
or rejected as invalid, so a caller that commits it on success alone cannot skip data.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from reverse_etl_assets.config.loading import LoadedConfig
from reverse_etl_assets.config.models import CustomerIoDestination
from reverse_etl_assets.delivery.batching import BatchRequest, RequestPacker
from reverse_etl_assets.delivery.destinations import DestinationClient, max_request_bytes
from reverse_etl_assets.delivery.errors import DeliveryError
from reverse_etl_assets.mapping.calls import CallMapper, MappingOptions, RejectedRow
from reverse_etl_assets.mapping.fields import MappingError
from reverse_etl_assets.source.connection import open_read_only_session
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.source.query import render_query

REJECTED_SAMPLE_SIZE = 20
PROGRESS_INTERVAL_SECONDS = 10.0


@dataclass
class SyncRunStats:
    rows_read: int = 0
    calls_sent: int = 0
    rows_rejected: int = 0
    requests: int = 0
    bytes_sent: int = 0


@dataclass
class SyncRunResult:
    sync_name: str
    destination_name: str
    previous_last_sync_time: int
    rendered_query: str
    stats: SyncRunStats = field(default_factory=SyncRunStats)
    started_at: int | None = None  # the database server's clock when the run began
    next_last_sync_time: int | None = None  # set only when the run completed
    duration_seconds: float = 0.0
    rejected_sample: list[RejectedRow] = field(default_factory=list)
    rejected_rows_path: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.stats.rows_read / self.duration_seconds if self.duration_seconds > 0 else 0.0


class SyncRunFailed(Exception):
    """The run stopped; `result` holds what happened until then (its cursor did not move)."""

    def __init__(self, message: str, result: SyncRunResult) -> None:
        super().__init__(message)
        self.result = result


def run_sync(
    config: LoadedConfig,
    sync_name: str,
    destination_name: str,
    last_sync_time: int,
    client: DestinationClient,
    *,
    rejected_rows_path: Path | None = None,
    log: logging.Logger | None = None,
) -> SyncRunResult:
    """Send the rows of `sync_name`'s query for `last_sync_time` through `client` (which the caller
    opens and closes). Raises SyncRunFailed naming what went wrong."""
    project = config.project
    sync = project.sync(sync_name)
    if destination_name not in sync.destinations:
        raise ValueError(
            f"sync {sync_name!r} does not send to {destination_name!r}; "
            f"its destinations are: {', '.join(sync.destinations)}"
        )
    destination = project.destinations[destination_name]
    result = SyncRunResult(
        sync_name=sync_name,
        destination_name=destination_name,
        previous_last_sync_time=last_sync_time,
        rendered_query=render_query(sync.query, last_sync_time),
        rejected_rows_path=rejected_rows_path,
    )
    mapper = CallMapper(
        MappingOptions(
            call_type=sync.type,
            message_id_namespace=f"{sync_name}/{destination_name}",
            max_call_bytes=destination.max_call_bytes,
            send_nulls=sync.send_nulls,
            column_types=sync.column_types,
            email_identifies=isinstance(destination, CustomerIoDestination),
        )
    )
    run = _Run(result, log or logging.getLogger(__name__))
    began = time.monotonic()
    try:
        with open_read_only_session(sync.database, project.databases[sync.database]) as session:
            result.started_at = session.server_time()
            packer = RequestPacker(max_request_bytes(destination))
            for batch in session.stream_batches(result.rendered_query, sync.batch_rows):
                mapped = mapper.map_batch(batch, first_row_number=result.stats.rows_read + 1)
                result.stats.rows_read += batch.num_rows
                run.reject(mapped.rejected)
                for request in packer.add(mapped.calls, mapped.row_numbers):
                    run.send(client, request)
                run.progress(began)
            for request in packer.flush():
                run.send(client, request)
        client.flush()  # an outbox makes its file durable here: part of the acknowledgement
    except (SourceError, DeliveryError, MappingError) as error:
        result.duration_seconds = time.monotonic() - began
        result.warnings = mapper.warnings
        raise SyncRunFailed(f"sync {sync_name!r} → {destination_name!r}: {error}", result) from error
    finally:
        run.close()
    result.duration_seconds = time.monotonic() - began
    result.warnings = mapper.warnings
    result.next_last_sync_time = result.started_at
    return result


class _Run:
    """Counters, the rejected-rows file and progress logging for one run."""

    def __init__(self, result: SyncRunResult, log: logging.Logger) -> None:
        self.result = result
        self.log = log
        self._rejected_file: IO[bytes] | None = None
        self._last_progress = time.monotonic()

    def send(self, client: DestinationClient, request: BatchRequest) -> None:
        client.send(request)
        stats = self.result.stats
        stats.calls_sent += len(request.calls)
        stats.requests += 1
        stats.bytes_sent += request.size

    def reject(self, rows: list[RejectedRow]) -> None:
        if not rows:
            return
        self.result.stats.rows_rejected += len(rows)
        room = REJECTED_SAMPLE_SIZE - len(self.result.rejected_sample)
        self.result.rejected_sample.extend(rows[: max(room, 0)])
        path = self.result.rejected_rows_path
        if path is None:
            return
        if self._rejected_file is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._rejected_file = path.open("ab")
        self._rejected_file.write(b"".join(orjson.dumps(row.as_dict()) + b"\n" for row in rows))

    def progress(self, began: float) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_progress = now
        stats = self.result.stats
        self.log.info(
            "%s → %s: %d rows read, %d calls sent, %d rejected, %.0f rows/s",
            self.result.sync_name,
            self.result.destination_name,
            stats.rows_read,
            stats.calls_sent,
            stats.rows_rejected,
            stats.rows_read / (now - began),
        )

    def close(self) -> None:
        if self._rejected_file is not None:
            self._rejected_file.close()
