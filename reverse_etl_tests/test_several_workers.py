"""Several workers, one truth: an instance on PostgreSQL, and workers whose instance folders are
separate disks at the same path (each command runs in a mount namespace of its own, with its own
folder mounted at that path), as Kubernetes pods or Celery hosts have. What one worker delivered,
rejected, paused or was killed in the middle of, every other worker knows."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reverse_etl_assets.defs.instance_home import DAGSTER_YAML_TEMPLATE
from reverse_etl_tests.conftest import (
    API_KEY_ENV,
    POSTGRES_STORAGE,
    ScratchDatabase,
    cli_environment,
    customerio_destination,
    sync_entry,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIoProcess

# As docs/production.md says: a worker's disk keeps nothing (run logs go to the event log).
NO_LOCAL_COMPUTE_LOGS = """
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""
HOME = Path("/tmp/reverse-etl-worker-home")  # every worker's instance folder, each its own disk
LOOKBACK_QUERY = (
    "SELECT id AS userId, email FROM people WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})"
)


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


class Worker:
    """A machine of its own: its instance folder (the shipped dagster.yaml, storage on PostgreSQL)
    is mounted at HOME for its commands only, read-only when asked."""

    def __init__(
        self,
        root: Path,
        name: str,
        database_url: str,
        read_only: bool = False,
        dagster_yaml: str | None = None,
    ) -> None:
        self.folder = root / f"worker-{name}"
        self.folder.mkdir()
        if dagster_yaml is not None:
            (self.folder / "dagster.yaml").write_text(dagster_yaml)
        else:
            shutil.copyfile(DAGSTER_YAML_TEMPLATE, self.folder / "dagster.yaml")
            with (self.folder / "dagster.yaml").open("a") as yaml:
                # As docs/production.md says: the instance's storage on PostgreSQL.
                yaml.write(f"\nstorage:\n  postgres:\n    postgres_url: {database_url}\n")
                yaml.write(NO_LOCAL_COMPUTE_LOGS)
        self.project = root  # the reverse_etl.yaml every worker deploys
        self.read_only = read_only

    def command(self, *args: str) -> list[str]:
        HOME.mkdir(exist_ok=True)
        remount = f" && mount -o remount,bind,ro {HOME}" if self.read_only else ""
        cli = " ".join(f"'{arg}'" for arg in [sys.executable, "-m", "reverse_etl_assets.cli", *args])
        script = f"mount --bind '{self.folder}' {HOME}{remount} && exec {cli}"
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script]

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.project,
            env=cli_environment({"DAGSTER_HOME": str(HOME), **(env or {})}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, *args: str, env: dict[str, str] | None = None) -> str:
        process = self.start(*args, env=env)
        output = process.communicate(timeout=300)[0]
        assert process.returncode == 0, output
        return output

    def files(self) -> list[Path]:
        return sorted(
            path for path in self.folder.rglob("*") if path.name not in ("dagster.yaml", ".instance.lock")
        )


@pytest.fixture
def workers(tmp_path, instance_database) -> dict[str, Worker]:
    return {name: Worker(tmp_path, name, instance_database) for name in ("a", "b", "c")}


def test_what_one_worker_delivered_no_other_sends_again_and_a_reset_replays_on_any(
    tmp_path, workers, people, customerio, monkeypatch
):
    monkeypatch.setenv(API_KEY_ENV, customerio.api_key)
    people.execute("UPDATE people SET updated_at = NOW(6) - INTERVAL 5 SECOND")  # inside the lookback
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {"cio": customerio_destination(customerio)},
            "syncs": [sync_entry("people", LOOKBACK_QUERY, ["cio"], lookback_seconds=600)],
        },
    )
    a, b, c = workers["a"], workers["b"], workers["c"]
    first = a.run("run", "people")
    assert "20 rows read, 20 calls sent" in first, first
    assert f"state store: {POSTGRES_STORAGE}/reverse_etl_" in first
    # Worker B re-reads the same rows (the lookback) and knows A delivered them.
    second = b.run("run", "people")
    assert "20 rows read, 0 calls sent" in second, second
    assert len(customerio.accepted) == 20

    # An operator resets the cursor from a third machine: every worker forgets what it delivered.
    reset = c.run("cursor", "reset", "people", "--destination", "cio", "--yes")
    assert "forgot 20 deliveries recorded for the lookback" in reset, reset
    replay = a.run("run", "people")
    assert "20 rows read, 20 calls sent" in replay, replay
    assert len(customerio.accepted) == 40
    # Nothing of it was written on the workers' own disks.
    assert [w.files() for w in (a, b, c)] == [[], [], []]


def test_rejected_rows_recorded_on_one_worker_are_listed_on_another(
    tmp_path, workers, people, customerio, monkeypatch
):
    monkeypatch.setenv(API_KEY_ENV, customerio.api_key)
    query = (
        "SELECT IF(id % 5 = 0, NULL, id) AS userId, email AS contact FROM people "
        "WHERE id > {{last_sync_time}} * 0"
    )
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {"cio": customerio_destination(customerio)},
            "syncs": [sync_entry("people", query, ["cio"])],
        },
    )
    ran = workers["b"].run("run", "people")
    assert "4 rejected" in ran, ran
    run_id = ran.split("(run ")[1].split(")")[0]
    listed = workers["a"].run("rejected", "people", "--destination", "cio", "--run", run_id)
    rows = [json.loads(line) for line in listed.splitlines() if line.startswith("{")]
    assert [row["row_number"] for row in rows] == [5, 10, 15, 20]
    assert {(row["destination"], row["run_id"], row["field"]) for row in rows} == {("cio", run_id, "userId")}


def test_two_syncs_on_two_workers_keep_to_one_rate_limit_at_the_destination(
    tmp_path, workers, people, monkeypatch
):
    server = FakeCustomerIoProcess()
    monkeypatch.setenv(API_KEY_ENV, server.api_key)
    people.executemany(
        "INSERT INTO people VALUES (%s, %s, NOW())",
        [(i, f"p{i}@example.com") for i in range(21, 601)],
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
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {"cio": destination},
            "syncs": [sync_entry("people", query, ["cio"]), sync_entry("people_again", query, ["cio"])],
        },
    )
    runs = [workers["a"].start("run", "people"), workers["b"].start("run", "people_again")]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    received, accepted = server.finish()
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert accepted == 1200
    times = sorted(received)
    assert len(times) >= 6 * limit  # several seconds at the limit
    # Per-second counts at the sink: never more than the limit and 10% in any window of a second.
    busiest = max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))
    assert busiest <= limit * 1.1, busiest
    # And the limit is used: the two workers together reach it, they do not each take half.
    seconds = times[-1] - times[0]
    assert len(times) / seconds >= limit * 0.7, (len(times), seconds)


def test_a_worker_killed_mid_run_leaves_nothing_stuck_and_nothing_lost(
    tmp_path, workers, mysql_db, customerio, monkeypatch
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
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": mysql_db.config()},
            "destinations": {
                "cio": customerio_destination(customerio, max_request_bytes=5_000, max_in_flight=2)
            },
            "syncs": [sync_entry("people", LOOKBACK_QUERY, ["cio"])],
        },
    )
    env = {"REVERSE_ETL_DEAD_AFTER_SECONDS": "3"}
    customerio.latency_seconds = 0.05
    killed = workers["a"].start("run", "people", env=env)
    deadline = time.monotonic() + 120
    while len(customerio.accepted) < 1_000 and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.05)
    assert killed.poll() is None, killed.communicate()[0]
    killed.send_signal(signal.SIGKILL)  # the worker's machine is gone: no handler runs
    killed.wait()
    delivered_before = len(customerio.accepted)
    customerio.latency_seconds = 0

    # Worker B runs the sync next, without anyone freeing anything: the dead run is failed once
    # its heartbeat is 3 s old, its pool slot freed, and the sync runs.
    began = time.monotonic()
    recovered = workers["b"].run("run", "people", env=env)
    recovery_seconds = time.monotonic() - began
    assert f"{rows} rows read" in recovered and "last_sync_time 0 → " in recovered, recovered
    # (Whether B waited depends on how long it took to start: the dead run may be over already.)
    assert recovery_seconds < 60, recovery_seconds
    print(f"a dead worker's sync ran again {recovery_seconds:.1f} s after it was killed (dead after 3 s)")
    first_id: dict[str, str] = {}
    for call in customerio.accepted:  # duplicates only with the first delivery's message id
        assert first_id.setdefault(call["userId"], call["messageId"]) == call["messageId"]
    assert set(first_id) == {str(i) for i in range(1, rows + 1)}
    assert len(customerio.accepted) >= rows + delivered_before


def test_a_read_only_instance_folder_is_enough(tmp_path, instance_database, people, customerio, monkeypatch):
    """Only the store's database is written (readOnlyRootFilesystem, say)."""
    monkeypatch.setenv(API_KEY_ENV, customerio.api_key)
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {
                "cio": customerio_destination(customerio, rate_limit={"requests": 5, "per_seconds": 1})
            },
            "syncs": [sync_entry("people", LOOKBACK_QUERY, ["cio"], lookback_seconds=60)],
        },
    )
    worker = Worker(tmp_path, "ro", instance_database, read_only=True)
    ran = worker.run("run", "people")
    assert "OK people → cio" in ran and "20 calls sent" in ran, ran
    assert worker.files() == []


def test_no_new_instance_by_accident(tmp_path, people, customerio):
    """Without DAGSTER_HOME and ./.dagster, a command refuses (a new instance would re-send every
    row); --new-instance starts one; every command says which instance it uses."""
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {"cio": customerio_destination(customerio)},
            "syncs": [sync_entry("people", LOOKBACK_QUERY, ["cio"])],
        },
    )
    environment = cli_environment({API_KEY_ENV: customerio.api_key})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "reverse_etl_assets.cli", *args]
        return subprocess.run(
            command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
        )

    for args in (
        ["run", "people"],
        ["cursor", "show", "people"],
        ["rejected", "people"],
    ):
        refused = cli(*args)
        assert refused.returncode == 1 and "DAGSTER_HOME is not set" in refused.stderr, (args, refused.stderr)
        assert "--new-instance" in refused.stderr
        assert not (tmp_path / ".dagster").exists()
    # The preview needs no instance: it shows the first run, and creates nothing.
    previewed = cli("preview", "people")
    assert previewed.returncode == 0 and "last_sync_time 0" in previewed.stderr, previewed.stderr
    assert not (tmp_path / ".dagster").exists()
    started = cli("run", "people", "--new-instance")
    assert started.returncode == 0, started.stderr
    assert f"instance: {tmp_path / '.dagster'}" in started.stderr
    shown = cli("cursor", "show", "people")  # it exists now
    assert shown.returncode == 0 and f"instance: {tmp_path / '.dagster'}" in shown.stderr


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks (USER_HZ 100)


def test_a_run_waiting_for_another_run_of_its_sync_sleeps_and_stops_on_sigterm(
    tmp_path, workers, people, customerio, monkeypatch
):
    monkeypatch.setenv(API_KEY_ENV, customerio.api_key)
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {
                "cio": customerio_destination(customerio, max_calls_per_request=1, max_in_flight=1)
            },
            "syncs": [sync_entry("people", LOOKBACK_QUERY, ["cio"])],
        },
    )
    customerio.latency_seconds = 1.0  # 20 requests one at a time: the first run takes 20 s
    first = workers["a"].start("run", "people")
    deadline = time.monotonic() + 60
    while not customerio.requests and time.monotonic() < deadline:
        time.sleep(0.1)
    assert customerio.requests, "the first run never sent"
    waiting = workers["b"].start("run", "people")
    assert waiting.stdout is not None
    said = ""
    while "waiting for run" not in said and time.monotonic() < deadline:
        said += waiting.stdout.readline()
    assert "waiting for run" in said, said
    before = cpu_seconds(waiting.pid)
    time.sleep(3)
    assert cpu_seconds(waiting.pid) - before < 0.3  # asleep, not spinning
    waiting.send_signal(signal.SIGTERM)
    began = time.monotonic()
    waiting.wait(timeout=10)
    assert time.monotonic() - began < 5
    assert first.poll() is None  # the first run goes on
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)


def test_the_production_dagster_yaml_works_as_copied(
    tmp_path, instance_database, people, customerio, monkeypatch
):
    """docs/production.md's dagster.yaml, with its environment variables set, on a read-only folder."""
    from reverse_etl_tests.test_docs import INSTANCE_BLOCKS

    [block] = [block for block in INSTANCE_BLOCKS if block.path.name == "production.md"]
    database = instance_database.rsplit("/", 1)[1]
    assert "db_name: dagster" in block.body
    for name, value in {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_USER": "postgres",
        "DAGSTER_PG_PASSWORD": "x",
    }.items():
        monkeypatch.setenv(name, value)  # (the test server trusts local connections: any password)
    monkeypatch.setenv(API_KEY_ENV, customerio.api_key)
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {"cio": customerio_destination(customerio)},
            "syncs": [sync_entry("people", LOOKBACK_QUERY, ["cio"])],
        },
    )
    text = block.body.replace("db_name: dagster", f"db_name: {database}")
    worker = Worker(tmp_path, "docs", instance_database, read_only=True, dagster_yaml=text)
    ran = worker.run("run", "people")
    assert (
        "20 calls sent" in ran
        and f"state store: postgresql+psycopg2://postgres:***@127.0.0.1:5432/{database}" in ran
    ), ran
    assert worker.files() == []
