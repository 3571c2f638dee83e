"""Every call the benchmark makes into `reverse_etl_assets`, one function per measured stage.

This is the only module to adapt when the package's APIs change. Each stage function runs in a child
process of its own (see worker.py), does its work, and returns a dict with at least `rows`,
`seconds` and `cpu_seconds` for the timed part only (imports, configuration and un-timed
preparation stay outside the Stopwatch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from measure import Stopwatch, status_kb

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.config.models import MySQLDatabase, SyncConfig
from reverse_etl_assets.delivery.batching import RequestPacker
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.mapping.calls import CallMapper, MappingOptions
from reverse_etl_assets.source.connection import open_read_only_session

DATABASE_NAME = "bench_db"
DESTINATION_NAME = "cio"
SYNC_NAME = "bench_identify"
DEFAULT_BATCH_ROWS: int = SyncConfig.model_fields["batch_rows"].default
# MariaDB reports a JSON column as LONGTEXT, so the sync says how to read it, as a user would.
COLUMN_TYPES = {"preferences": "json"}


def _database(db: dict[str, Any], driver: str = "pymysql") -> MySQLDatabase:
    return MySQLDatabase(
        driver=driver,
        host=db["host"],
        port=db["port"],
        database=db["database"],
        user=db["user"],
        password_env=db.get("password_env"),
        ssl={"mode": "disabled"},
    )


def extract(
    db: dict[str, Any], sql: str, batch_rows: int = DEFAULT_BATCH_ROWS, driver: str = "pymysql"
) -> dict[str, Any]:
    """(3) Our extraction alone, with one driver: stream Arrow RecordBatches, count the rows, drop
    the batches."""
    rows = batches = 0
    watch = Stopwatch()
    with watch, open_read_only_session(DATABASE_NAME, _database(db, driver)) as session:
        for batch in session.stream_batches(sql, batch_rows):
            rows += batch.num_rows
            batches += 1
    return {"rows": rows, "seconds": watch.seconds, "cpu_seconds": watch.cpu_seconds, "batches": batches}


def map_calls(
    db: dict[str, Any], sql: str, batch_rows: int = DEFAULT_BATCH_ROWS, preload: bool = True
) -> dict[str, Any]:
    """(4) Our mapping and serialization alone: RecordBatch → one JSON call (bytes) per row.

    With `preload`, every batch is extracted first (not timed); otherwise batches are mapped as they
    are read and only the mapping is timed. Packing the calls into `/batch` request bodies is timed
    on its own (`pack_seconds`): it is the part of delivery that is not waiting on the network.
    """
    mapper = CallMapper(
        MappingOptions(
            call_type="identify",
            message_id_namespace="bench/cio",
            max_call_bytes=32_000,
            column_types=COLUMN_TYPES,
            email_identifies=True,  # as run_sync sets it for a Customer.io destination
        )
    )
    packer = RequestPacker(500_000)
    map_watch, pack_watch = Stopwatch(), Stopwatch()
    rows = calls = rejected = requests = body_bytes = 0
    rss_before_kb = 0

    def handle(batch: Any) -> None:
        nonlocal rows, calls, rejected, requests, body_bytes
        with map_watch:
            mapped = mapper.map_batch(batch, first_row_number=rows + 1)
        with pack_watch:
            # efef0bb and before: calls were bytes, with their row numbers in a list beside them.
            old_api = hasattr(mapped, "row_numbers")
            for request in packer.add(*((mapped.calls, mapped.row_numbers) if old_api else (mapped.calls,))):
                body_bytes += len(request.body())
                requests += 1
        rows += batch.num_rows
        calls += len(mapped.calls)
        rejected += len(mapped.rejected)

    with open_read_only_session(DATABASE_NAME, _database(db)) as session:
        if preload:
            batches = list(session.stream_batches(sql, batch_rows))
            rss_before_kb = status_kb("VmRSS") or 0
            for batch in batches:
                handle(batch)
        else:
            for batch in session.stream_batches(sql, batch_rows):
                handle(batch)
    with pack_watch:
        for request in packer.flush():
            body_bytes += len(request.body())
            requests += 1
    return {
        "rows": rows,
        "seconds": map_watch.seconds,
        "cpu_seconds": map_watch.cpu_seconds,
        "calls": calls,
        "rejected": rejected,
        "pack_seconds": pack_watch.seconds,
        "requests": requests,
        "body_bytes": body_bytes,
        "rss_before_kb": rss_before_kb,
        "preload": preload,
    }


def write_config(
    path: Path,
    db: dict[str, Any],
    query_template: str,
    base_url: str,
    api_key_env: str,
    driver: str = "pymysql",
) -> Path:
    """The YAML a user would write for this sync (see reverse_etl.example.yaml)."""
    database = {key: db[key] for key in ("host", "port", "database", "user")}
    database["driver"] = driver
    if db.get("password_env"):
        database["password_env"] = db["password_env"]
    config = {
        "databases": {DATABASE_NAME: {**database, "ssl": {"mode": "disabled"}, "time_zone": "+00:00"}},
        "destinations": {
            DESTINATION_NAME: {"kind": "customerio", "base_url": base_url, "api_key_env": api_key_env}
        },
        "syncs": [
            {
                "name": SYNC_NAME,
                "type": "identify",
                "database": DATABASE_NAME,
                "destinations": [DESTINATION_NAME],
                "frequency": "15m",
                "query": query_template,
                "column_types": COLUMN_TYPES,
            }
        ],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def end_to_end(
    db: dict[str, Any],
    query_template: str,
    base_url: str,
    api_key_env: str,
    workdir: str,
    driver: str = "pymysql",
) -> dict[str, Any]:
    """(5) One identify sync, from the query to the server's 200s, as the Dagster asset runs it."""
    from reverse_etl_assets.sync_run import run_sync

    folder = Path(workdir)
    config = load_config(
        write_config(folder / "reverse_etl.yaml", db, query_template, base_url, api_key_env, driver)
    )
    if not os.environ.get(api_key_env):
        raise SystemExit(f"set {api_key_env}")
    watch = Stopwatch()
    with watch:
        # A Sender since 7ff3d51 (concurrent delivery), a DestinationClient before.
        client = open_destination(
            DESTINATION_NAME, config.project.destinations[DESTINATION_NAME], SYNC_NAME, folder / "outbox"
        )
        try:
            result = run_sync(config, SYNC_NAME, DESTINATION_NAME, 0, client)
        finally:
            client.close()
    stats = result.stats
    delivery = getattr(stats, "delivery", stats)  # efef0bb and before: no separate delivery stats
    return {
        "rows": stats.rows_read,
        "seconds": watch.seconds,
        "cpu_seconds": watch.cpu_seconds,
        "calls": stats.calls_sent,
        "rejected": stats.rows_rejected,
        "requests": delivery.requests,
        "body_bytes": delivery.bytes_sent,
        "run_duration_seconds": result.duration_seconds,
        # The query is read by a process of its own: its peak memory counts too.
        "reader_peak_rss_kb": getattr(result, "reader_peak_memory_kb", None),
        "warnings": result.warnings,
    }


def end_to_end_fast(
    db: dict[str, Any], query_template: str, base_url: str, api_key_env: str, workdir: str
) -> dict[str, Any]:
    """(5f) The same sync on the fast path: the database's `driver: connectorx`."""
    return end_to_end(db, query_template, base_url, api_key_env, workdir, driver="connectorx")
