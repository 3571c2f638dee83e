"""One run of one sync to one destination: source → mapping → delivery, in plain Python.

The caller reads the destination's `last_sync_time` before and commits `next_last_sync_time` after;
this module never moves a cursor. `next_last_sync_time` is set only when every row was delivered
(acknowledged by the destination) or rejected as invalid, so a caller that commits it on success
alone cannot skip data.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field

import pyarrow as pa

from reverse_etl_assets.config.loading import LoadedConfig
from reverse_etl_assets.config.models import Destination, RejectedLimit
from reverse_etl_assets.cursor import query_since
from reverse_etl_assets.delivery.batching import RequestPacker
from reverse_etl_assets.delivery.destinations import max_calls_per_request, max_request_bytes
from reverse_etl_assets.delivery.errors import DeliveryError
from reverse_etl_assets.delivery.sender import DeliveryStats, Sender
from reverse_etl_assets.mapping.calls import CallMapper, Calls, MappingOptions, RejectedRow
from reverse_etl_assets.mapping.fields import MappingError
from reverse_etl_assets.redaction import RedactedError
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.source.prefetch import prefetched
from reverse_etl_assets.source.reader_process import RunningQuery, start_query
from reverse_etl_assets.sql.placeholders import render_query
from reverse_etl_assets.state.ledger import Delivered, DeliveryLedger

# Where a run's rejected rows go, a batch at a time (the Dagster layer: the state store).
RejectedRowSink = Callable[[list[RejectedRow]], None]

REJECTED_SAMPLE_SIZE = 20
PROGRESS_INTERVAL_SECONDS = 10.0


@dataclass
class SyncRunStats:
    rows_read: int = 0
    rows_rejected: int = 0  # by our validation, or refused by the destination
    calls_skipped: int = 0  # already delivered, re-read by the lookback
    delivery: DeliveryStats = field(default_factory=DeliveryStats)

    @property
    def calls_sent(self) -> int:
        return self.delivery.calls_delivered


@dataclass
class SyncRunResult:
    sync_name: str
    destination_name: str
    previous_last_sync_time: int
    query_since: int  # what {{last_sync_time}} became: the cursor minus the lookback
    rendered_query: str
    stats: SyncRunStats = field(default_factory=SyncRunStats)
    started_at: int | None = None  # the database server's clock when the run began
    next_last_sync_time: int | None = None  # set only when the run completed
    duration_seconds: float = 0.0
    rejected_sample: list[RejectedRow] = field(default_factory=list)
    rejected_rows_where: str | None = None  # how to list them all, for messages
    warnings: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # the query's result columns
    reader_peak_memory_kb: int | None = None  # the query-reading process's peak RSS, if it had one

    @property
    def rows_per_second(self) -> float:
        return self.stats.rows_read / self.duration_seconds if self.duration_seconds > 0 else 0.0


class SyncRunFailed(RedactedError):
    """The run stopped; `result` holds what happened until then (its cursor did not move)."""

    def __init__(self, message: str, result: SyncRunResult) -> None:
        super().__init__(message)
        self.result = result


def run_sync(
    config: LoadedConfig,
    sync_name: str,
    destination_name: str,
    last_sync_time: int,
    sender: Sender,
    *,
    ledger: DeliveryLedger | None = None,
    rejected_rows: RejectedRowSink | None = None,
    rejected_rows_where: str | None = None,
    log: logging.Logger | None = None,
) -> SyncRunResult:
    """Send the rows of `sync_name`'s query for `last_sync_time` through `sender` (which the caller
    opens and closes). The ledger is used when the sync has a lookback. Raises SyncRunFailed."""
    project = config.project
    sync = project.sync_to(sync_name, destination_name)
    destination = project.destinations[destination_name]
    since = query_since(last_sync_time, sync.lookback_seconds)
    result = SyncRunResult(
        sync_name=sync_name,
        destination_name=destination_name,
        previous_last_sync_time=last_sync_time,
        query_since=since,
        rendered_query=render_query(sync.query, since, project.databases[sync.database].time_zone),
        rejected_rows_where=rejected_rows_where,
    )
    mapper = CallMapper(MappingOptions.for_sync(sync, destination_name, destination))
    run = _Run(
        result,
        sender,
        ledger if sync.lookback_seconds else None,
        rejected_rows,
        log or logging.getLogger(__name__),
    )
    with _fewer_gc_passes():
        try:
            already_delivered = run.load_ledger()
            query = start_query(
                sync.database, project.databases[sync.database], result.rendered_query, sync.batch_rows
            )
            try:
                _send_rows(query, mapper, sender, run, already_delivered, destination)
            finally:
                query.stop()
                result.reader_peak_memory_kb = query.peak_memory_kb
            run.collect()
        except (SourceError, DeliveryError, MappingError) as error:
            sender.stop()  # so that what is still landing is recorded in the ledger too
            run.collect()
            raise SyncRunFailed(f"sync {sync_name!r} → {destination_name!r}: {error}", result) from error
        except BaseException:  # stopped by a signal, say: what was delivered is recorded all the same
            sender.stop()
            run.collect()
            raise
        finally:
            run.finish(mapper.warnings)
            result.columns = mapper.column_names
    _check_rejected_share(result, sync.rejected_limit)
    result.next_last_sync_time = result.started_at
    return result


def _check_rejected_share(result: SyncRunResult, limit: RejectedLimit) -> None:
    """A run that rejects most of its rows is more likely broken (a wrong column, a destination
    refusing everything) than its rows bad: it fails, and the cursor does not move past them."""
    read, rejected = result.stats.rows_read, result.stats.rows_rejected
    if read < limit.min_rows or rejected <= limit.share * read:
        return
    where = f" (all of them: {result.rejected_rows_where})" if result.rejected_rows_where else ""
    raise SyncRunFailed(
        f"sync {result.sync_name!r} → {result.destination_name!r}: {rejected:,} of {read:,} rows "
        f"({rejected / read:.0%}) were rejected or refused{where}, more than rejected_limit.share "
        f"({limit.share:.0%}): the cursor stays at {result.previous_last_sync_time}, so the next run reads "
        "them again. Fix the query or the destination; or, to accept these rejections and move on, set "
        "`rejected_limit: {share: 1}` on the sync for one run (or move the cursor with `reverse-etl "
        "cursor set`)",
        result,
    )


def _send_rows(
    query: RunningQuery,
    mapper: CallMapper,
    sender: Sender,
    run: _Run,
    already_delivered: dict[str, str],
    destination: Destination,
) -> None:
    """Map each batch as it comes and hand the calls to the sender; wait for every answer."""
    result = run.result
    packer = RequestPacker(max_request_bytes(destination), max_calls_per_request(destination))
    # Closed before the query process is stopped, however the loop ends: the reading thread first.
    with closing(prefetched(query.batches())) as batches:
        for batch in batches:
            result.started_at = query.server_time
            mapped = mapper.map_batch(batch, first_row_number=result.stats.rows_read + 1)
            result.stats.rows_read += batch.num_rows
            run.reject(mapped.rejected)
            calls = _not_yet_delivered(mapped.calls, already_delivered)
            result.stats.calls_skipped += len(mapped.calls) - len(calls)
            for request in packer.add(calls):
                sender.submit(request)
            run.collect()
    result.started_at = query.first_server_time()
    for request in packer.flush():
        sender.submit(request)
    result.stats.delivery = sender.finish()


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """A sync allocates and frees millions of short-lived tuples; with Python's default thresholds
    the cyclic collector keeps walking the whole (Dagster-sized) heap, which halves the read rate.
    Refcounting frees those tuples anyway: collect far less often during the run."""
    previous = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _not_yet_delivered(calls: Calls, delivered: Delivered) -> Calls:
    if not delivered:
        return calls
    pairs = zip(calls.entity_keys.to_pylist(), calls.message_ids.to_pylist(), strict=True)
    return calls.only(pa.array([delivered.get(key) != message_id for key, message_id in pairs]))


class _Run:
    """Counters, rejected rows, the ledger and progress logging for one run."""

    def __init__(
        self,
        result: SyncRunResult,
        sender: Sender,
        ledger: DeliveryLedger | None,
        rejected_rows: RejectedRowSink | None,
        log: logging.Logger,
    ) -> None:
        self.result = result
        self.sender = sender
        self.ledger = ledger
        self.rejected_rows = rejected_rows
        self.log = log
        self._began = time.monotonic()
        # A thread of its own, so progress is logged even while a query or a retry is slow.
        self._stopped = threading.Event()
        self._reporter = threading.Thread(target=self._report_progress, daemon=True, name="sync-progress")
        self._reporter.start()

    def load_ledger(self) -> Delivered:
        if self.ledger is None:
            return Delivered()
        sync, destination = self.result.sync_name, self.result.destination_name
        self.ledger.prune(sync, destination, before=self.result.query_since)
        return self.ledger.load(sync, destination)

    def collect(self) -> None:
        """Take in what the sender did since last time: refused calls and delivered calls."""
        self.reject(self.sender.take_refused())
        delivered = self.sender.take_delivered()
        if self.ledger is None or not delivered or self.result.started_at is None:
            return
        calls = Calls.concat(delivered)
        pairs = zip(calls.entity_keys.to_pylist(), calls.message_ids.to_pylist(), strict=True)
        self.ledger.record(self.result.sync_name, self.result.destination_name, pairs, self.result.started_at)

    def reject(self, rows: list[RejectedRow]) -> None:
        if not rows:
            return
        self.result.stats.rows_rejected += len(rows)
        room = REJECTED_SAMPLE_SIZE - len(self.result.rejected_sample)
        self.result.rejected_sample.extend(rows[: max(room, 0)])
        if self.rejected_rows is not None:
            self.rejected_rows(rows)

    def _report_progress(self) -> None:
        while not self._stopped.wait(PROGRESS_INTERVAL_SECONDS):
            stats, delivery = self.result.stats, self.sender.stats
            self.log.info(
                f"{self.result.sync_name} → {self.result.destination_name}: {stats.rows_read:,} rows read, "
                f"{delivery.calls_delivered:,} calls sent, {stats.rows_rejected:,} rejected, "
                f"{stats.rows_read / (time.monotonic() - self._began):,.0f} rows/s"
            )

    def finish(self, warnings: list[str]) -> None:
        self._stopped.set()
        self.result.duration_seconds = time.monotonic() - self._began
        self.result.warnings = warnings
        self.result.stats.delivery = self.sender.stats
