"""Several requests in flight, a client-side rate limit, connection reuse, and the other
Segment-compatible destinations (segment, http)."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.sync_run import SyncRunFailed, SyncRunResult, run_sync
from reverse_etl_tests.conftest import (
    API_KEY_ENV,
    ScratchDatabase,
    cli_environment,
    customerio_destination,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo, FakeCustomerIoProcess

QUERY = "SELECT id AS userId, email FROM people WHERE id > {{last_sync_time}} ORDER BY id"


@pytest.fixture
def people(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute("CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100))")
    mysql_db.executemany(
        "INSERT INTO people VALUES (%s, %s)", [(i, f"p{i}@example.com") for i in range(1, 601)]
    )
    return mysql_db


def run(tmp_path: Path, db: ScratchDatabase, destination: dict[str, Any]) -> SyncRunResult:
    config = load_config(
        write_config(
            tmp_path / "reverse_etl.yaml",
            {
                "databases": {"app_db": db.config()},
                "destinations": {"dest": destination},
                "syncs": [sync_entry("people", QUERY, ["dest"])],
            },
        )
    )
    with closing(open_destination("dest", config.project.destinations["dest"], "people", tmp_path)) as sender:
        return run_sync(config, "people", "dest", 0, sender)


def test_several_requests_in_flight_over_reused_connections(tmp_path, people, customerio):
    customerio.latency_seconds = 0.2
    result = run(
        tmp_path, people, customerio_destination(customerio, max_request_bytes=3_000, max_in_flight=4)
    )
    requests = len(customerio.requests)
    assert result.stats.calls_sent == 600 and requests >= 30
    assert customerio.max_in_flight_seen == 4  # never more than asked, and really concurrent
    # Four sending threads, each keeping its connection alive: four client ports, not one per request.
    assert len({r.client_port for r in customerio.requests}) <= 4
    # 30+ requests of 0.2 s each, four at a time: well under the 6+ s one at a time would take
    # (a quarter of it in theory; three quarters leaves room for a busy machine).
    assert result.duration_seconds < requests * 0.2 * 0.75


def ten_per_second(server: FakeCustomerIoProcess) -> dict:
    """The server as a destination limited to ten requests a second, in small requests."""
    return {
        "kind": "customerio",
        "base_url": server.base_url,
        "api_key_env": API_KEY_ENV,
        "max_request_bytes": 3_000,
        "rate_limit": {"requests": 10, "per_seconds": 1},
    }


def test_the_rate_limit_paces_requests(tmp_path, people, monkeypatch):
    # The server in a process of its own: in this one, a collector pause would hold requests back
    # and let them in at once, and the times it saw would not be the times they were sent.
    server = FakeCustomerIoProcess()
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    result = run(tmp_path, people, ten_per_second(server))
    received, _accepted = server.finish()
    times = sorted(received)
    assert len(times) >= 30
    # Ten at once (the bucket is full), then ten per second.
    for i in range(10, len(times)):
        assert times[i] - times[i - 10] >= 0.9
    assert result.stats.delivery.throttled_seconds >= 1.5


def test_runs_of_two_syncs_at_once_share_the_destination_rate_limit(tmp_path, people, monkeypatch):
    """Two syncs to one destination, each run in its own `reverse-etl run` process at the same time:
    together they keep to the destination's limit, which counts requests from both."""
    server = FakeCustomerIoProcess()
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    limited = ten_per_second(server)
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {"cio": limited},
            "syncs": [sync_entry("people", QUERY, ["cio"]), sync_entry("people_again", QUERY, ["cio"])],
        },
    )
    # Both start on a new instance: creating its storage is not a race either.
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "reverse_etl_assets.cli", "run", sync, "--new-instance"],
            cwd=tmp_path,
            env=cli_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for sync in ("people", "people_again")
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    received, accepted = server.finish()
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert accepted == 1200
    times = sorted(received)
    assert len(times) >= 60
    # The server sees at most ten in any second. The margin is for two processes on a busy machine
    # sending a little after they took their slot; unshared, ten arrive within about half a second.
    tightest = min(times[i] - times[i - 10] for i in range(10, len(times)))
    assert tightest >= 0.75, tightest


def test_segment_write_key_and_batch_limit(tmp_path, people, monkeypatch):
    segment = FakeCustomerIo(api_key="segment-write-key").start()
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "segment-write-key")
    try:
        result = run(
            tmp_path,
            people,
            {
                "kind": "segment",
                "base_url": segment.base_url,
                "write_key_env": "SEGMENT_WRITE_KEY",
                "max_calls_per_request": 250,
            },
        )
    finally:
        segment.stop()
    assert result.stats.calls_sent == 600
    assert sorted(len(r.calls()) for r in segment.requests) == [100, 250, 250]
    request = segment.requests[0]
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"segment-write-key:").decode()
    assert "x-strict-mode" not in request.headers  # a Customer.io header, not Segment's


def test_http_endpoint_with_a_header_of_its_own(tmp_path, people, monkeypatch):
    endpoint = FakeCustomerIo(auth_header=("Authorization", "Bearer s3cr3t")).start()
    monkeypatch.setenv("COLLECTOR_TOKEN", "Bearer s3cr3t")
    collector = {
        "kind": "http",
        "base_url": endpoint.base_url,
        "header_name": "Authorization",
        "header_value_env": "COLLECTOR_TOKEN",
    }
    try:
        result = run(tmp_path, people, {**collector, "strict_mode": True})
        assert result.stats.calls_sent == 600 and len(endpoint.accepted) == 600
        assert endpoint.requests[0].headers["x-strict-mode"] == "1"

        monkeypatch.setenv("COLLECTOR_TOKEN", "Bearer wrong")
        with pytest.raises(SyncRunFailed, match=r"answered 401"):
            run(tmp_path, people, collector)
    finally:
        endpoint.stop()


def test_outbox_keeps_the_order_of_the_rows(tmp_path, people):
    started = time.monotonic()
    result = run(tmp_path, people, {"kind": "outbox", "path": str(tmp_path / "out")})
    assert result.stats.calls_sent == 600 and time.monotonic() - started < 30
    lines = (tmp_path / "out" / "people.jsonl").read_text().splitlines()
    assert [line.split('"userId":"')[1].split('"')[0] for line in lines] == [str(i) for i in range(1, 601)]


def test_a_long_run_logs_its_progress(tmp_path, people, customerio, monkeypatch, caplog):
    import logging

    import reverse_etl_assets.sync_run as sync_run

    monkeypatch.setattr(sync_run, "PROGRESS_INTERVAL_SECONDS", 0.2)
    customerio.latency_seconds = 0.1
    config = load_config(
        write_config(
            tmp_path / "reverse_etl.yaml",
            {
                "databases": {"app_db": people.config()},
                "destinations": {
                    "dest": customerio_destination(customerio, max_request_bytes=3_000, max_in_flight=1)
                },
                "syncs": [sync_entry("people", QUERY, ["dest"])],
            },
        )
    )  # fmt: skip
    log = logging.getLogger("test-progress")
    with caplog.at_level(logging.INFO, logger="test-progress"):
        with closing(
            open_destination("dest", config.project.destinations["dest"], "people", tmp_path)
        ) as sender:
            run_sync(config, "people", "dest", 0, sender, log=log)
    progress = [r.getMessage() for r in caplog.records if "rows/s" in r.getMessage()]
    assert len(progress) >= 3
    assert (
        progress[-1].startswith("people → dest: 600 rows read, ")
        and " calls sent, 0 rejected, " in progress[-1]
    )
