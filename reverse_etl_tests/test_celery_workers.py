"""Sync runs whose steps execute on two `dagster-celery` workers (RabbitMQ as the broker), each in a
mount namespace of its own with its own instance folder at the same path, the instance's storage
on PostgreSQL; the executor is chosen in reverse_etl.yaml (`executor: {kind: celery}`), no code.
The run's coordinator is `dagster job execute`; the daemon runs the dead-run sensor."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reverse_etl_assets.defs.instance_home import DAGSTER_YAML_TEMPLATE
from reverse_etl_tests.conftest import (
    API_KEY_ENV,
    ScratchDatabase,
    cli_environment,
    customerio_destination,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIoProcess
from reverse_etl_tests.test_several_workers import HOME, LOOKBACK_QUERY, NO_LOCAL_COMPUTE_LOGS

BROKER_ENV = "REVERSE_ETL_TEST_CELERY_BROKER"
BIN = Path(sys.executable).parent


@pytest.fixture
def people(mysql_db: ScratchDatabase) -> ScratchDatabase:
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), updated_at DATETIME(6) NOT NULL)"
    )
    mysql_db.executemany(
        "INSERT INTO people VALUES (%s, %s, NOW(6) - INTERVAL 1 HOUR)",
        [(i, f"p{i}@example.com") for i in range(1, 21)],
    )
    return mysql_db


@pytest.fixture
def broker() -> Iterator[str]:
    """A RabbitMQ virtual host of its own: no task of another test is ever picked up."""
    vhost = f"reverse_etl_{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    yield f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)


class Machine:
    """A host of its own: its instance folder (storage on PostgreSQL) mounted at HOME for the
    processes it starts, which run in a new session so that the whole host can be killed."""

    def __init__(self, root: Path, name: str, database_url: str, broker: str) -> None:
        self.name = name
        self.folder = root / f"machine-{name}"
        self.folder.mkdir()
        shutil.copyfile(DAGSTER_YAML_TEMPLATE, self.folder / "dagster.yaml")
        with (self.folder / "dagster.yaml").open("a") as yaml:
            yaml.write(f"\nstorage:\n  postgres:\n    postgres_url: {database_url}\n{NO_LOCAL_COMPUTE_LOGS}")
        (self.folder / "celery.yaml").write_text(f"execution:\n  config:\n    broker: {broker}\n")
        self.root = root
        self.env = {
            "DAGSTER_HOME": str(HOME),
            "REVERSE_ETL_CONFIG": str(root / "reverse_etl.yaml"),
            BROKER_ENV: broker,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "REVERSE_ETL_DEAD_AFTER_SECONDS": "3",
        }
        self.log = self.folder.parent / f"{name}.log"
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, *command: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        HOME.mkdir(exist_ok=True)
        quoted = " ".join(f"'{part}'" for part in command)
        script = f"mount --bind '{self.folder}' {HOME} && exec {quoted}"
        process = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            cwd=self.root,
            env=cli_environment({**self.env, **(extra_env or {})}),
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def start_worker(self) -> None:
        worker = f"{BIN / 'dagster-celery'} worker start -A dagster_celery.app -y {HOME}/celery.yaml"
        self.start(*worker.split(), "-n", f"{self.name}@%h", "--", "--concurrency=1")
        deadline = time.monotonic() + 60
        while "ready." not in self.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "ready." in self.log.read_text(), self.log.read_text()[-3000:]

    def execute(self, sync: str, destination: str = "cio") -> subprocess.Popen[str]:
        """A run of the sync's job: this machine coordinates, the Celery workers execute its step."""
        tags = f'{{"dagster/partition": "{destination}"}}'
        return self.start(
            str(BIN / "dagster"), "job", "execute", "-m", "reverse_etl_assets.definitions",
            "-j", f"{sync}_job", "--tags", tags,
        )  # fmt: skip

    def kill(self) -> None:
        """The machine is gone: every process it started, at once."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def machines(tmp_path, instance_database, broker) -> Iterator[dict[str, Machine]]:
    made = {name: Machine(tmp_path, name, instance_database, broker) for name in ("coordinator", "a", "b")}
    yield made
    for machine in made.values():
        machine.stop()


def project(tmp_path: Path, database, destination: dict, syncs: list[dict]) -> None:
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "executor": {"kind": "celery", "broker_env": BROKER_ENV},
            "databases": {"app_db": database.config()},
            "destinations": {"cio": destination},
            "syncs": syncs,
        },
    )


def finished(process: subprocess.Popen[str], machine: Machine) -> str:
    process.wait(timeout=300)
    log = machine.log.read_text()
    assert process.returncode == 0, log[-5000:]
    return log


def test_a_lookback_sync_on_celery_worker_a_then_b_sends_nothing_twice(
    tmp_path, machines, people, customerio, monkeypatch
):
    monkeypatch.setenv(API_KEY_ENV, customerio.api_key)
    people.execute("UPDATE people SET updated_at = NOW(6) - INTERVAL 5 SECOND")  # inside the lookback
    project(
        tmp_path,
        people,
        customerio_destination(customerio),
        [sync_entry("people", LOOKBACK_QUERY, ["cio"], lookback_seconds=600)],
    )
    coordinator, a, b = machines["coordinator"], machines["a"], machines["b"]
    a.start_worker()
    finished(coordinator.execute("people"), coordinator)
    assert len(customerio.accepted) == 20
    a.stop()
    b.start_worker()
    log = finished(coordinator.execute("people"), coordinator)
    assert "RUN_SUCCESS" in log
    assert len(customerio.accepted) == 20  # worker B knew what worker A delivered
    assert "Task execute_plan" in a.log.read_text() and "Task execute_plan" in b.log.read_text()


def test_two_syncs_on_two_celery_workers_keep_to_one_rate_limit(tmp_path, machines, people, monkeypatch):
    server = FakeCustomerIoProcess()
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    people.executemany(
        "INSERT INTO people VALUES (%s, %s, NOW())", [(i, f"p{i}@example.com") for i in range(21, 601)]
    )
    limit = 10
    destination = {
        "kind": "customerio",
        "base_url": server.base_url,
        "api_key_env": API_KEY_ENV,
        "max_request_bytes": 3_000,
        "rate_limit": {"requests": limit, "per_seconds": 1},
    }
    query = "SELECT id AS userId, email FROM people WHERE id > {{last_sync_time}} * 0"
    project(tmp_path, people, destination, [sync_entry(name, query, ["cio"]) for name in ("people", "again")])
    coordinator, a, b = machines["coordinator"], machines["a"], machines["b"]
    a.start_worker()
    b.start_worker()
    runs = [coordinator.execute("people"), coordinator.execute("again")]
    for run in runs:
        finished(run, coordinator)
    received, accepted = server.finish()
    assert accepted == 1200
    # Each worker executed one of the two steps (one at a time each: --concurrency=1).
    assert "succeeded in" in a.log.read_text() and "succeeded in" in b.log.read_text()
    times = sorted(received)
    busiest = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    assert busiest <= limit * 1.1, busiest


def test_a_celery_worker_killed_mid_run_holds_nothing_up(
    tmp_path, machines, mysql_db, customerio, monkeypatch
):
    monkeypatch.setenv(API_KEY_ENV, customerio.api_key)
    rows = 10_000
    mysql_db.execute(
        "CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), updated_at DATETIME NOT NULL)"
    )
    mysql_db.execute(
        "INSERT INTO people SELECT seq, CONCAT('p', seq, '@example.com'), NOW() - INTERVAL 1 HOUR "
        f"FROM seq_1_to_{rows}"
    )
    project(
        tmp_path,
        mysql_db,
        customerio_destination(customerio, max_request_bytes=5_000, max_in_flight=2),
        [sync_entry("people", LOOKBACK_QUERY, ["cio"])],
    )
    coordinator, a, b = machines["coordinator"], machines["a"], machines["b"]
    # The daemon: its dead-run sensor fails a run whose worker stopped beating and frees its slot.
    coordinator.start(str(BIN / "dagster-daemon"), "run", "-w", str(Path.cwd() / "workspace.yaml"))
    a.start_worker()
    customerio.latency_seconds = 0.05
    stuck = coordinator.execute("people")
    deadline = time.monotonic() + 120
    while len(customerio.accepted) < 1_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(customerio.accepted) >= 1_000, coordinator.log.read_text()[-3000:]
    a.kill()  # the worker's machine is gone, in the middle of the step
    delivered_before = len(customerio.accepted)
    customerio.latency_seconds = 0
    b.start_worker()
    began = time.monotonic()
    rerun = coordinator.execute("people")  # waits for the pool slot the dead run holds
    rerun.wait(timeout=240)
    recovery = time.monotonic() - began
    assert rerun.returncode == 0, coordinator.log.read_text()[-5000:]
    print(f"a killed Celery worker's sync ran again {recovery:.1f} s later (dead after 3 s)")
    first_id: dict[str, str] = {}
    for call in customerio.accepted:  # duplicates only with the first delivery's message id
        assert first_id.setdefault(call["userId"], call["messageId"]) == call["messageId"]
    assert set(first_id) == {str(i) for i in range(1, rows + 1)}
    assert len(customerio.accepted) >= rows + delivered_before
    assert stuck.poll() is None or stuck.returncode != 0  # the dead run never succeeded
