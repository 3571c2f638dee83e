"""Rejected rows are visible: a count and a sample table in the materialization, the full list in a
JSONL file beside the Dagster instance, and an asset check that warns or errors."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from reverse_etl_tests.conftest import (
    ScratchDatabase,
    customerio_destination,
    materialize_sync,
    reverse_etl,
    sync_entry,
    write_config,
)

QUERY = (
    "SELECT IF(id % 10 = 0, NULL, id) AS userId, email AS contact FROM people "
    "WHERE id >= {{last_sync_time}} * 0"
)


@pytest.fixture
def people(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute("CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(50))")
    return mysql_db


def config(tmp_path: Path, db: ScratchDatabase, server, **sync) -> Path:
    return write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": db.config()},
            "destinations": {"cio": customerio_destination(server)},
            "syncs": [sync_entry("people", QUERY, ["cio"], **sync)],
        },
    )


def check_result(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "rejected_rows"]
    return evaluation


def test_rejected_rows_are_counted_sampled_filed_and_checked(
    tmp_path, people, customerio, instance, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    people.executemany("INSERT INTO people VALUES (%s, %s)", [(i, f"{i}@x.io") for i in range(1, 101)])
    result = materialize_sync(config(tmp_path, people, customerio), "people", "cio", instance)
    assert result.success  # rejected rows never fail the run

    [materialization] = result.asset_materializations_for_node("people")
    metadata = materialization.metadata
    assert metadata["rows_rejected"].value == 10 and metadata["calls_sent"].value == 90
    sample = metadata["rejected_rows_sample"].value
    assert [r.data["row_number"] for r in sample.records] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert sample.records[0].data["field"] == "userId"

    # The full list, one JSON object per rejected row, in the state store, and the command that
    # lists it from any worker.
    command = metadata["rejected_rows_all"].value
    assert command == f"reverse-etl rejected people --destination cio --run {result.run_id}"
    listed = reverse_etl(*command.split()[1:], cwd=tmp_path, env={"DAGSTER_HOME": instance.root_directory})
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {(row.pop("destination"), row.pop("run_id")) for row in rows} == {("cio", result.run_id)}
    assert len(rows) == 10
    assert rows[0] == {
        "row_number": 10,
        "field": "userId",
        "reason": "an identify call needs userId or anonymousId (or traits.email, for Customer.io)",
        "row": {"userId": None, "contact": "10@x.io"},
    }

    # 10% rejected is above the default 5%: the check fails with severity ERROR.
    evaluation = check_result(result)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["rows_rejected"].value == 10


def test_the_check_warns_below_the_share_and_passes_with_no_rejection(
    tmp_path, people, customerio, instance, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    people.executemany("INSERT INTO people VALUES (%s, %s)", [(i, f"{i}@x.io") for i in range(1, 101)])
    warned = materialize_sync(
        config(tmp_path, people, customerio, max_rejected_share=0.2), "people", "cio", instance
    )
    evaluation = check_result(warned)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN

    people.execute("DELETE FROM people WHERE id % 10 = 0")
    clean = materialize_sync(config(tmp_path, people, customerio), "people", "cio", instance)
    assert check_result(clean).passed
