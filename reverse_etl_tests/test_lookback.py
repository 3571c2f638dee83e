"""`lookback_seconds` closes the late-commit gap; the delivery ledger keeps re-read rows from being
sent twice."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from reverse_etl_assets.defs.state_store import state_store
from reverse_etl_assets.state.ledger import DeliveryLedger
from reverse_etl_tests.conftest import (
    ScratchDatabase,
    admin_connection,
    customerio_destination,
    materialize_sync,
    reverse_etl,
    run_metadata,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo

QUERY = (
    "SELECT id AS userId, plan, version FROM people "
    "WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}}) ORDER BY id"
)


@pytest.fixture
def people(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, plan VARCHAR(20), version INT NOT NULL DEFAULT 0, "
        "updated_at DATETIME(6) NOT NULL)"
    )
    mysql_db.executemany(
        "INSERT INTO people (id, plan, updated_at) VALUES (%s, 'free', NOW(6) - INTERVAL 1 HOUR)",
        [(i,) for i in range(1, 21)],
    )
    return mysql_db


def config(tmp_path: Path, db: ScratchDatabase, server: FakeCustomerIo, lookback: int) -> Path:
    return write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": db.config()},
            "destinations": {"cio": customerio_destination(server)},
            "syncs": [
                sync_entry("no_lookback", QUERY, ["cio"]),
                sync_entry("with_lookback", QUERY, ["cio"], lookback_seconds=lookback),
            ],
        },
    )


def test_a_late_commit_is_missed_without_lookback_and_delivered_once_with_it(
    tmp_path, people, customerio, instance, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    # Generous, so that a slow machine cannot push the changed rows out of the window mid-test.
    path = config(tmp_path, people, customerio, lookback=60)

    def run(sync: str) -> dict:
        before = len(customerio.accepted)
        metadata = run_metadata(materialize_sync(path, sync, "cio", instance), sync)
        metadata["calls"] = customerio.accepted[before:]
        return metadata

    assert run("no_lookback")["calls_sent"] == 20
    assert run("with_lookback")["calls_sent"] == 20

    # A transaction stamps row 1 now, but commits only after the next runs have started.
    late = admin_connection(people.name)
    late.autocommit(False)
    with late.cursor() as cursor:
        cursor.execute("UPDATE people SET plan = 'late', version = 1, updated_at = NOW(6) WHERE id = 1")
    people.execute("UPDATE people SET plan = 'prompt', version = 1, updated_at = NOW(6) WHERE id = 2")
    time.sleep(1.1)
    for sync in ("no_lookback", "with_lookback"):
        calls = run(sync)["calls"]
        assert [(c["userId"], c["traits"]["plan"]) for c in calls] == [("2", "prompt")]
    late.commit()
    late.close()
    time.sleep(1.1)

    # Without a lookback the late row is older than the cursor: it is never sent.
    missed = run("no_lookback")
    assert missed["rows_read"] == 0
    # With a lookback it is read again and sent; row 2, re-read but unchanged, is not sent twice.
    caught = run("with_lookback")
    assert caught["query_since"] == caught["previous_last_sync_time"] - 60
    assert [(c["userId"], c["traits"]["plan"]) for c in caught["calls"]] == [("1", "late")]
    assert caught["rows_read"] == 2 and caught["calls_skipped_already_delivered"] == 1

    # And the next run re-reads both, sends neither.
    again = run("with_lookback")
    assert again["rows_read"] == 2 and again["calls_sent"] == 0
    assert again["calls_skipped_already_delivered"] == 2


def test_concurrent_writers_every_change_delivered_and_none_twice(
    tmp_path, people, customerio, instance, monkeypatch
):
    """Writers keep transactions open for up to 2.5 s while syncs run back to back; with a 5 s
    lookback every row's final state arrives and no (row, version) arrives twice."""
    monkeypatch.chdir(tmp_path)
    path = config(tmp_path, people, customerio, lookback=5)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        chance = random.Random(seed)
        connection = admin_connection(people.name)
        connection.autocommit(False)
        try:
            while not stop.is_set():
                with connection.cursor() as cursor:
                    row = chance.randint(1, 20)
                    cursor.execute(
                        "UPDATE people SET version = version + 1, plan = %s, updated_at = NOW(6) "
                        "WHERE id = %s",
                        (chance.choice(["free", "pro", "team"]), row),
                    )
                time.sleep(chance.uniform(0.2, 2.5))  # the transaction stays open
                connection.commit()
        except BaseException as error:  # surfaced by the test below
            errors.append(error)
        finally:
            connection.close()

    writers = [threading.Thread(target=writer, args=(seed,)) for seed in range(3)]
    for thread in writers:
        thread.start()
    runs = 0
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            assert materialize_sync(path, "with_lookback", "cio", instance).success
            runs += 1
    finally:
        stop.set()
        for thread in writers:
            thread.join()
    assert not errors
    time.sleep(1.1)
    assert materialize_sync(path, "with_lookback", "cio", instance).success

    final = {str(row_id): version for row_id, version in people.query("SELECT id, version FROM people")}
    assert sum(final.values()) >= 10 and runs >= 5  # the writers and the syncs really interleaved
    last_delivered: dict[str, int] = {}
    for call in customerio.accepted:
        last_delivered[call["userId"]] = call["traits"]["version"]
    assert last_delivered == final  # every row's latest change arrived
    pairs = Counter((call["userId"], call["traits"]["version"]) for call in customerio.accepted)
    assert max(pairs.values()) == 1  # and no version of a row arrived twice


def test_the_ledger_is_pruned_to_the_lookback_horizon(tmp_path, people, customerio, instance, monkeypatch):
    """It stays bounded: what was delivered before the horizon of a run is gone after that run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REVERSE_ETL_STATE_URL", raising=False)  # the default, beside the instance
    path = config(tmp_path, people, customerio, lookback=1)

    def run() -> dict:
        return run_metadata(materialize_sync(path, "with_lookback", "cio", instance), "with_lookback")

    first = run()
    # The state store the run used, beside the instance.
    ledger = DeliveryLedger(state_store(instance))
    assert len(ledger.load("with_lookback", "cio")) == first["calls_sent"] == 20
    time.sleep(2.1)
    # Its window starts a second before the first run: the first run's entries are still needed.
    second = run()
    assert second["query_since"] == first["last_sync_time"] - 1
    assert len(ledger.load("with_lookback", "cio")) == 20
    # This one's starts after the first run: they are older than the horizon, and pruned.
    third = run()
    assert third["query_since"] > first["last_sync_time"]
    assert len(ledger.load("with_lookback", "cio")) == 0


def test_the_ledger_outlives_the_process(tmp_path, people, customerio):
    """Two `reverse-etl run` processes: the second re-reads what the first sent, and sends none."""
    people.execute("UPDATE people SET updated_at = NOW(6) - INTERVAL 5 SECOND")  # inside the lookback
    config(tmp_path, people, customerio, lookback=60)
    env = {"REVERSE_ETL_STATE_URL": ""}  # the default store, in the project's .dagster

    first = reverse_etl("run", "with_lookback", "--destination", "cio", cwd=tmp_path, env=env)
    assert first.returncode == 0 and "20 rows read, 20 calls sent" in first.stdout, (
        first.stdout + first.stderr
    )
    second = reverse_etl("run", "with_lookback", "--destination", "cio", cwd=tmp_path, env=env)
    assert second.returncode == 0 and "20 rows read, 0 calls sent" in second.stdout, (
        second.stdout + second.stderr
    )
    assert len(customerio.accepted) == 20
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / ".dagster"))) as instance:
        [latest] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("with_lookback"), asset_partitions=["cio"]), limit=1
        ).records
        assert latest.asset_materialization.metadata["calls_skipped_already_delivered"].value == 20

    # A reset means "send it all again": the ledger forgets, the next run sends every row.
    reset = reverse_etl(
        "cursor", "reset", "with_lookback", "--destination", "cio", "--yes", cwd=tmp_path, env=env
    )
    assert reset.returncode == 0 and "forgot 20 deliveries" in reset.stdout
    third = reverse_etl("run", "with_lookback", "--destination", "cio", cwd=tmp_path, env=env)
    assert "20 rows read, 20 calls sent" in third.stdout, third.stdout + third.stderr
    assert len(customerio.accepted) == 40


def test_a_lookback_sync_whose_events_could_look_alike_is_warned_about(
    tmp_path, mysql_db, customerio, instance
):
    """Two logins of one user with the same values are one call: with a lookback, one would be sent.
    validate, the preview and the query_guards check say so, until the query selects a timestamp."""
    mysql_db.execute("CREATE TABLE logins (user_id INT, at DATETIME, updated_at DATETIME DEFAULT NOW())")
    mysql_db.execute("INSERT INTO logins (user_id, at) VALUES (1, NOW()), (1, NOW() - INTERVAL 1 MINUTE)")
    alike = (
        "SELECT 'Logged In' AS event, user_id AS userId FROM logins "
        "WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})"
    )
    apart = alike.replace("user_id AS userId", "user_id AS userId, at AS timestamp")
    path = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": mysql_db.config()},
            "destinations": {"cio": customerio_destination(customerio)},
            "syncs": [
                sync_entry("alike", alike, ["cio"], type="track", lookback_seconds=60),
                sync_entry("apart", apart, ["cio"], type="track", lookback_seconds=60),
                sync_entry("no_lookback", alike, ["cio"], type="track"),
            ],
        },
    )
    env = {"DAGSTER_HOME": str(tmp_path / ".dagster")}
    validated = reverse_etl("validate", cwd=tmp_path, env=env)
    warning = "lookback_seconds is set and this track query selects neither timestamp nor messageId"
    assert f"sync 'alike': {warning}" in validated.stderr, validated.stderr
    assert f"sync 'apart': {warning}" not in validated.stderr
    assert f"sync 'no_lookback': {warning}" not in validated.stderr
    assert warning in reverse_etl("preview", "alike", cwd=tmp_path, env=env).stdout

    for sync, warned in (("alike", True), ("apart", False)):
        result = materialize_sync(path, sync, "cio", instance)
        [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "query_guards"]
        assert (warning in (check.description or "")) is warned, check.description
