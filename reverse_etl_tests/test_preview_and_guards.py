"""The preview (command line and Dagster job), the best-practice guards, and the cursor commands."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.defs.build import build_definitions
from reverse_etl_assets.source.guards import large_runs_finding, write_grants
from reverse_etl_tests.conftest import (
    ScratchDatabase,
    customerio_destination,
    reverse_etl,
    started_run,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo

# Row 3 has no userId: it cannot become a call.
INCREMENTAL = (
    "SELECT IF(id = 3, NULL, id) AS userId, email FROM people "
    "WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}}) ORDER BY id"
)
# The documented mistake: a DATETIME compared with a bare integer is true for every row.
BARE = "SELECT id AS userId, email FROM people WHERE updated_at >= {{last_sync_time}}"


@pytest.fixture
def people(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), updated_at DATETIME NOT NULL)"
    )
    mysql_db.executemany(
        "INSERT INTO people VALUES (%s, %s, NOW() - INTERVAL %s HOUR)",
        [(i, f"p{i}@x.io", i) for i in range(1, 26)],
    )
    return mysql_db


@pytest.fixture
def reader(people: ScratchDatabase):
    """A read-only user with SELECT on the synced database only, as the README tells users to make."""
    user = f"reader_{people.name[-8:]}"
    people.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'reader-pass-1'")
    people.execute(f"GRANT SELECT, SHOW VIEW ON `{people.name}`.* TO '{user}'@'%'")
    os.environ["READER_PASSWORD"] = "reader-pass-1"
    yield user
    people.execute(f"DROP USER '{user}'@'%'")
    del os.environ["READER_PASSWORD"]


def project(
    tmp_path: Path,
    db: ScratchDatabase,
    server: FakeCustomerIo,
    query: str = INCREMENTAL,
    large_run_rows: int = 1_000_000,
    **database: str,
) -> Path:
    return write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": db.config(**database)},
            "destinations": {"cio": customerio_destination(server), "backup": {"kind": "outbox"}},
            "syncs": [
                sync_entry(
                    "people", query, ["cio", "backup"], send_nulls=False, large_run_rows=large_run_rows
                )
            ],
        },
    )


def test_preview_with_limit_zero_counts_and_shows_no_rows(tmp_path, people, customerio):
    project(tmp_path, people, customerio)
    out = reverse_etl("preview", "people", "--destination", "backup", "--limit", "0", cwd=tmp_path).stdout
    assert "The next run would read 25 rows" in out and "(--limit 0: no rows shown)" in out
    assert "the next run would send nothing" not in out  # it would send 25: nothing contradicts that


def instance_at(cwd: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(cwd / ".dagster")))


def test_preview_shows_rows_payloads_rejections_and_the_count_and_sends_nothing(tmp_path, people, customerio):
    project(tmp_path, people, customerio)
    shown = reverse_etl("preview", "people", "--destination", "backup", "--limit", "4", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "sync people → backup" in out and "last_sync_time 0 (1970-01-01T00:00:00Z)" in out
    assert "The next run would read 25 rows: 25 API calls" in out
    assert "FROM_UNIXTIME(0)" in out
    payloads = [json.loads(line) for line in out.splitlines() if line.startswith('{"type"')]
    assert [p["userId"] for p in payloads] == ["1", "2", "4"]
    assert payloads[0]["traits"] == {"email": "p1@x.io"}
    assert "Rejected rows (1 of the first 4): not sent" in out
    assert "an identify call needs userId or anonymousId" in out
    # Root can write: the guard names what it can do.
    assert "Guards:\n  warning: the database user can do more than read: ALL PRIVILEGES" in out
    # Nothing was sent and no cursor exists.
    assert customerio.requests == [] and not (tmp_path / "outbox").exists()
    with instance_at(tmp_path) as instance:
        assert instance.get_runs() == []
        assert not instance.fetch_materializations(dg.AssetKey("people"), limit=1).records


def test_preview_uses_the_destination_cursor(tmp_path, people, customerio):
    project(tmp_path, people, customerio)
    assert reverse_etl("run", "people", "--destination", "cio", cwd=tmp_path).returncode == 0
    time.sleep(1.1)
    people.execute("UPDATE people SET email = 'changed@x.io', updated_at = NOW() WHERE id = 7")
    cio = reverse_etl("preview", "people", "--destination", "cio", cwd=tmp_path).stdout
    assert "The next run would read 1 rows" in cio and "changed@x.io" in cio
    backup = reverse_etl("preview", "people", "--destination", "backup", cwd=tmp_path).stdout
    assert "The next run would read 25 rows" in backup


def test_the_preview_job_in_dagster_shows_metadata_tables(tmp_path, people, customerio, monkeypatch):
    monkeypatch.chdir(tmp_path)
    defs = build_definitions(load_config(project(tmp_path, people, customerio)))
    job = defs.resolve_job_def("preview_people")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"preview_people_op": {"config": {"destination": "backup", "limit": 3}}}},
        )
        assert result.success
        [observation] = [
            e.event_specific_data.asset_observation
            for e in result.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        ]
        assert observation.partition == "backup"
        metadata = observation.metadata
        assert metadata["rows_next_run_would_send"].value == 25
        assert [r.data["userId"] for r in metadata["first_rows"].value.records] == ["1", "2", "null"]
        assert metadata["rejected_rows"].value.records[0].data["row_number"] == "3"
        assert '"userId":"1"' in metadata["payloads"].value  # the bytes the run sends
        assert customerio.requests == []
        assert not instance.fetch_materializations(dg.AssetKey("people"), limit=1).records


def test_a_datetime_compared_with_a_bare_integer_is_caught_with_the_fix(tmp_path, people, customerio, reader):
    project(tmp_path, people, customerio, query=BARE, user=reader, password_env="READER_PASSWORD")
    validated = reverse_etl("validate", cwd=tmp_path)
    assert validated.returncode == 0, validated.stderr
    assert "with last_sync_time five years ahead the query still returns rows" in validated.stderr
    assert "write FROM_UNIXTIME({{last_sync_time}}) instead of {{last_sync_time}}" in validated.stderr
    preview = reverse_etl("preview", "people", cwd=tmp_path).stdout
    assert "not incremental" in preview and "FROM_UNIXTIME({{last_sync_time}})" in preview

    project(tmp_path, people, customerio, user=reader, password_env="READER_PASSWORD")
    clean = reverse_etl("validate", cwd=tmp_path)
    assert clean.returncode == 0 and "warning" not in clean.stderr  # a read-only user, an incremental query


def test_a_user_who_can_write_is_named(tmp_path, people, customerio):
    project(tmp_path, people, customerio)  # as root
    validated = reverse_etl("validate", cwd=tmp_path)
    assert "the database user can do more than read: ALL PRIVILEGES, GRANT OPTION ON *.*" in validated.stderr


def test_write_grants_are_read_per_schema():
    grants = [
        "GRANT USAGE ON *.* TO `reader`@`%`",
        "GRANT SELECT, SHOW VIEW ON `app`.* TO `reader`@`%`",
        "GRANT SELECT, INSERT, DELETE ON `other`.* TO `reader`@`%`",
        "GRANT SELECT (id, email), UPDATE (email) ON `app`.`users` TO `reader`@`%`",
        "GRANT EXECUTE ON `app\\_%`.* TO `reader`@`%`",
        "GRANT PROXY ON ''@'%' TO 'reader'@'%'",
    ]
    assert write_grants(grants, "app") == ["UPDATE ON `app`.`users`"]
    assert write_grants(grants, "app_2") == ["EXECUTE ON `app\\_%`.*"]
    assert write_grants(grants, "other") == ["INSERT, DELETE ON `other`.*"]


def test_large_runs_more_than_once_a_day():
    now = 1_800_000_000.0
    assert large_runs_finding([(now - 3600, 2_000_000)], 1_000_000, now) is None
    twice = large_runs_finding(
        [(now - 3600, 2_000_000), (now - 7200, 1_500_000), (now - 90_000, 5_000_000)], 1_000_000, now
    )
    assert twice is not None and "2 runs within 24 hours read more than 1,000,000 rows" in twice.message


def test_large_runs_are_counted_from_the_instance_history(tmp_path, people, customerio):
    """The second run of the day over `large_run_rows` is flagged by its own check; the preview and
    `validate` read the same history from the instance."""
    project(tmp_path, people, customerio, query=BARE, large_run_rows=20)  # every run reads 25 rows

    def guards_of_latest_run() -> str:
        with instance_at(tmp_path) as instance:
            [record] = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [dg.AssetCheckKey(dg.AssetKey("people"), "query_guards")]
            ).values()
            return record.event.dagster_event.event_specific_data.description

    assert reverse_etl("run", "people", "--destination", "backup", cwd=tmp_path).returncode == 0
    assert "runs within 24 hours" not in guards_of_latest_run()
    preview = reverse_etl("preview", "people", "--destination", "backup", cwd=tmp_path).stdout
    assert "2 runs within 24 hours read more than 20 rows each (up to 25)" in preview
    assert "runs within 24 hours" not in reverse_etl("validate", cwd=tmp_path).stderr

    assert reverse_etl("run", "people", "--destination", "backup", cwd=tmp_path).returncode == 0
    assert "2 runs within 24 hours read more than 20 rows each" in guards_of_latest_run()
    assert "2 runs within 24 hours" in reverse_etl("validate", cwd=tmp_path).stderr
    # Another destination's history is its own.
    cio = reverse_etl("preview", "people", "--destination", "cio", cwd=tmp_path).stdout
    assert "runs within 24 hours" not in cio


def test_the_query_guards_check_runs_with_each_materialization(tmp_path, people, customerio, monkeypatch):
    from reverse_etl_tests.conftest import materialize_sync

    monkeypatch.chdir(tmp_path)
    with dg.instance_for_test() as instance:
        result = materialize_sync(
            project(tmp_path, people, customerio, query=BARE), "people", "backup", instance
        )
        assert result.success
        [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "query_guards"]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert "not incremental" in check.description and "ALL PRIVILEGES" in check.description


def test_cursor_show_set_and_reset(tmp_path, people, customerio):
    project(tmp_path, people, customerio)
    assert reverse_etl("run", "people", "--destination", "cio", cwd=tmp_path).returncode == 0
    shown = reverse_etl("cursor", "show", "people", cwd=tmp_path).stdout
    lines = {line.split()[0]: line for line in shown.splitlines()[2:]}
    assert "run " in lines["cio"]
    assert lines["backup"].split()[1] == "0" and "never" in lines["backup"]

    moved = reverse_etl(
        "cursor", "set", "people", "--destination", "backup", "--to", "2026-01-01T00:00:00Z", cwd=tmp_path
    )
    assert moved.returncode == 0 and "last_sync_time 0 → 1767225600 (2026-01-01T00:00:00Z)" in moved.stdout
    shown = reverse_etl("cursor", "show", "people", cwd=tmp_path).stdout
    assert "1767225600" in shown and "(reverse-etl cursor)" in shown

    # reset asks first, saying how many rows it will re-send; "no" changes nothing.
    refused = reverse_etl("cursor", "reset", "people", "--destination", "cio", cwd=tmp_path, stdin="n\n")
    assert refused.returncode == 1
    assert "Its next run will send 25 rows (25 API calls) again." in refused.stdout
    done = reverse_etl("cursor", "reset", "people", "--destination", "cio", cwd=tmp_path, stdin="y\n")
    assert done.returncode == 0 and "→ 0; the next run sends 25 rows" in done.stdout

    # Each move is a materialization of the destination's partition: the UI shows who and when.
    with instance_at(tmp_path) as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("people"), asset_partitions=["cio"]), limit=5
        ).records
        latest = records[0].asset_materialization
        assert latest.metadata["last_sync_time"].value == 0
        assert latest.metadata["cursor_change"].value == "reset"
        assert latest.metadata["previous_last_sync_time"].value > 0
    rerun = reverse_etl("run", "people", "--destination", "cio", cwd=tmp_path)
    assert "25 rows read" in rerun.stdout and "last_sync_time 0 → " in rerun.stdout


def test_cursor_set_refuses_nonsense(tmp_path, people, customerio):
    project(tmp_path, people, customerio)
    bad = reverse_etl("cursor", "set", "people", "--destination", "cio", "--to", "yesterday", cwd=tmp_path)
    assert bad.returncode == 2 and "neither a Unix time nor an ISO-8601 date-time" in bad.stderr
    wrong = reverse_etl("cursor", "set", "people", "--destination", "nope", "--to", "0", cwd=tmp_path)
    assert wrong.returncode == 1 and "does not send to nope" in wrong.stderr


def test_a_cursor_is_not_moved_under_a_run_in_progress(tmp_path, people, customerio):
    """The run's materialization would overwrite the move when it ends."""
    project(tmp_path, people, customerio)
    assert reverse_etl("cursor", "show", "people", cwd=tmp_path).returncode == 0  # creates the instance
    with instance_at(tmp_path) as instance:
        running = started_run(instance)
    refused = reverse_etl("cursor", "set", "people", "--destination", "cio", "--to", "0", cwd=tmp_path)
    assert refused.returncode == 1
    assert f"run {running.run_id} of people → cio is in progress" in refused.stderr
    # The other destination's cursor is free to move.
    moved = reverse_etl("cursor", "set", "people", "--destination", "backup", "--to", "5", cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr
