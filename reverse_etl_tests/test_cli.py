"""`reverse-etl run` materializes the same asset in the project's persistent Dagster instance."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from reverse_etl_tests.conftest import (
    ScratchDatabase,
    customerio_destination,
    reverse_etl,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo

QUERY = "SELECT id AS userId, email FROM people WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})"


def project(tmp_path: Path, db: ScratchDatabase, server: FakeCustomerIo) -> Path:
    db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), "
        "updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    db.executemany("INSERT INTO people (id, email) VALUES (%s, %s)", [(i, f"{i}@x.io") for i in range(10)])
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": db.config()},
            "destinations": {"cio": customerio_destination(server), "dry_run": {"kind": "outbox"}},
            "syncs": [sync_entry("people", QUERY, ["cio", "dry_run"])],
        },
    )
    return tmp_path


def test_run_uses_the_persistent_instance_and_its_cursor(tmp_path, mysql_db, customerio):
    cwd = project(tmp_path, mysql_db, customerio)
    first = reverse_etl("run", "people", "--destination", "cio", cwd=cwd)
    assert first.returncode == 0, first.stdout + first.stderr
    match = re.search(
        r"OK people → cio \(run (\S+)\): 10 rows read, 10 calls sent, 0 rejected, 1 request in .*"
        r"last_sync_time 0 → (\d+)",
        first.stdout,
    )
    assert match, first.stdout
    run_id, cursor = match.group(1), int(match.group(2))
    assert len(customerio.accepted) == 10

    # The instance is ./.dagster, created with the project's dagster.yaml, and keeps the cursor.
    home = cwd / ".dagster"
    assert (home / "dagster.yaml").exists()
    second = reverse_etl("run", "people", "--destination", "cio", cwd=cwd)
    assert f"last_sync_time {cursor} → " in second.stdout, second.stdout
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("people"), asset_partitions=["cio"]), limit=10
        ).records
        assert len(records) == 2
        assert records[-1].run_id == run_id
        assert instance.get_run_by_id(run_id).tags["reverse_etl/launched_by"] == "cli"

    # Without --destination, every destination runs; the outbox one still starts from 0.
    both = reverse_etl("run", "people", cwd=cwd)
    assert "OK people → dry_run" in both.stdout and "last_sync_time 0 → " in both.stdout
    assert len((cwd / "outbox" / "dry_run" / "people.jsonl").read_text().splitlines()) == 10


def test_run_reports_failures_and_exits_non_zero(tmp_path, mysql_db, customerio):
    cwd = project(tmp_path, mysql_db, customerio)
    customerio.api_key = "another-key"
    failed = reverse_etl("run", "people", "--destination", "cio", cwd=cwd)
    assert failed.returncode == 1
    assert "FAILED people → cio" in failed.stdout and "401" in failed.stdout and "API key" in failed.stdout

    unknown = reverse_etl("run", "nobody", cwd=cwd)
    assert unknown.returncode == 1 and "no sync named 'nobody'; the syncs are: people" in unknown.stderr
    wrong_destination = reverse_etl("run", "people", "--destination", "segment", cwd=cwd)
    assert "does not send to segment; its destinations are: cio, dry_run" in wrong_destination.stderr
