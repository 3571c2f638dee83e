"""Shared fixtures: a real MariaDB/MySQL database per test, a real local Customer.io-compatible
HTTP server, a real Dagster instance, and a helper that writes a configuration file."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pymysql
import pytest
import yaml
from hypothesis import HealthCheck, Phase, settings

from reverse_etl_tests.fake_customerio import FakeCustomerIo

MYSQL_HOST = os.environ.get("REVERSE_ETL_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("REVERSE_ETL_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("REVERSE_ETL_TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("REVERSE_ETL_TEST_MYSQL_PASSWORD", "")
API_KEY_ENV = "REVERSE_ETL_TEST_CIO_API_KEY"

# Hypothesis profiles (test_fidelity_oracle.py builds a table and runs every driver per example).
# `ci` is the default everywhere: a fixed seed and a fixed number of examples, so that a run takes
# the same (bounded: about three minutes on two cores) time and finds the same failures; it does
# not shrink (each shrink step is a database round trip). `deep` is a long randomized local search
# that shrinks what it finds: `pytest reverse_etl_tests/test_fidelity_oracle.py
# --hypothesis-profile=deep` (Hypothesis's own pytest option, which overrides the default here).
_SLOW_EXAMPLES = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=120,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=_SLOW_EXAMPLES,
)
settings.register_profile("deep", max_examples=2000, deadline=None, suppress_health_check=_SLOW_EXAMPLES)
settings.load_profile("ci")


def admin_connection(database: str | None = None) -> pymysql.connections.Connection:
    try:
        return pymysql.connect(
            host=MYSQL_HOST,
            port=MYSQL_PORT,
            user=MYSQL_USER,
            password=MYSQL_PASSWORD,
            database=database,
            charset="utf8mb4",
            autocommit=True,
        )
    except pymysql.err.OperationalError as error:
        pytest.fail(
            f"these tests need MySQL or MariaDB on {MYSQL_HOST}:{MYSQL_PORT} "
            f"(user {MYSQL_USER}); .ci/run starts it. Connecting failed: {error}"
        )


@dataclass
class ScratchDatabase:
    """A database of its own for one test, dropped afterwards."""

    name: str

    def execute(self, sql: str, args: Any = None) -> int:
        with admin_connection(self.name) as connection, connection.cursor() as cursor:
            return cursor.execute(sql, args)

    def executemany(self, sql: str, rows: list[Any]) -> int:
        with admin_connection(self.name) as connection, connection.cursor() as cursor:
            return cursor.executemany(sql, rows)

    def query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with admin_connection(self.name) as connection, connection.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def server_time(self) -> int:
        return int(self.query("SELECT UNIX_TIMESTAMP()")[0][0])

    def config(self, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "host": MYSQL_HOST,
            "port": MYSQL_PORT,
            "database": self.name,
            "user": MYSQL_USER,
            "ssl": {"mode": "disabled"},
        }
        if MYSQL_PASSWORD:
            config["password_env"] = "REVERSE_ETL_TEST_MYSQL_PASSWORD"
        config.update(overrides)
        return config


@pytest.fixture
def mysql_db() -> Iterator[ScratchDatabase]:
    name = f"retl_test_{uuid.uuid4().hex[:12]}"
    with admin_connection() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield ScratchDatabase(name)
    finally:
        with admin_connection() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def customerio(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCustomerIo]:
    server = FakeCustomerIo().start()
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def customerio_destination(server: FakeCustomerIo, **overrides: Any) -> dict[str, Any]:
    return {"kind": "customerio", "base_url": server.base_url, "api_key_env": API_KEY_ENV, **overrides}


def sync_entry(name: str, query: str, destinations: list[str], **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "identify",
        "database": "app_db",
        "destinations": destinations,
        "frequency": "15m",
        "query": query,
        **overrides,
    }


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def materialize_sync(
    config_path: Path, sync_name: str, destination: str, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """Run one partition of a sync's asset, as the UI's Materialize button and the schedule do."""
    from reverse_etl_assets.config.loading import load_config
    from reverse_etl_assets.defs.build import build_definitions
    from reverse_etl_assets.defs.runs import sync_job_name

    definitions = build_definitions(load_config(config_path))
    job = definitions.resolve_job_def(sync_job_name(sync_name))
    return job.execute_in_process(instance=instance, partition_key=destination, raise_on_error=False)


def run_metadata(result: dg.ExecuteInProcessResult, sync_name: str) -> dict[str, Any]:
    """The materialization's metadata as plain values."""
    assert result.success, failure_message(result)
    [materialization] = result.asset_materializations_for_node(sync_name)
    return {key: value.value for key, value in materialization.metadata.items()}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    errors = [event.step_failure_data.error for event in result.get_step_failure_events()]
    return "; ".join(error.message for error in errors if error)


def cli_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a `reverse-etl` subprocess, without the instance and file
    chosen for this process, plus `env`."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "REVERSE_ETL_CONFIG")}
    environment.update(env or {})
    return environment


def reverse_etl(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`reverse-etl ARGS...` in `cwd`, as a user runs it, on the instance in `cwd/.dagster` unless
    `env` names another."""
    return subprocess.run(
        [sys.executable, "-m", "reverse_etl_assets.cli", *args],
        cwd=cwd,
        env=cli_environment({"DAGSTER_HOME": str(cwd / ".dagster"), **(env or {})}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def started_run(
    instance: dg.DagsterInstance, silent_for: float | None = 0.0, destination: str = "cio"
) -> dg.DagsterRun:
    """A started run of `people` to `destination` whose worker last beat `silent_for` seconds ago
    (None: it never beat, as a run still waiting for its pool slot)."""
    import time

    from dagster._core.test_utils import create_run_for_test

    from reverse_etl_assets.defs.state_store import state_store
    from reverse_etl_assets.state.tables import HEARTBEATS

    run = create_run_for_test(
        instance,
        job_name="people_job",
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": destination},
        asset_selection={dg.AssetKey("people")},
    )
    if silent_for is not None:
        store = state_store(instance)  # SQLite beside the instance: its clock is this machine's
        with store.transaction() as connection:
            beat = {"run_id": run.run_id, "beat_at": time.time() - silent_for}
            connection.execute(store.upsert(HEARTBEATS, ["run_id"], [beat]))
    return run


POSTGRES = "postgresql://postgres@127.0.0.1:5432"
POSTGRES_STORAGE = "postgresql+psycopg2://postgres@127.0.0.1:5432"  # dagster-postgres needs psycopg2


@pytest.fixture
def instance_database() -> Iterator[str]:
    """A new PostgreSQL database for the instance's storage (and so for the state store)."""
    name = f"reverse_etl_{uuid.uuid4().hex[:12]}"
    admin(f'CREATE DATABASE "{name}"')
    yield f"{POSTGRES_STORAGE}/{name}"
    admin(f'DROP DATABASE "{name}" WITH (FORCE)')


def admin(statement: str) -> None:
    connection = psycopg2.connect(f"{POSTGRES}/postgres")
    connection.autocommit = True
    try:
        connection.cursor().execute(statement)
    finally:
        connection.close()
