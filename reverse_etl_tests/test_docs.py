"""Every example in README.md and docs/ is run, so the documentation cannot rot.

What each fenced block's language means here:

- `yaml`: a whole configuration file; it must load with no problem and no warning.
- `yaml fragment=sync|destination|database`: one entry, loaded inside a minimal file; sync entries
  are also run end to end against the example schema (docs/example-schema.sql) into an outbox, and
  must reject no row and send at least one call.
- `yaml instance`: a Dagster `dagster.yaml`; it must pass Dagster's own validation.
- `sql`: run against a scratch MariaDB database holding the example schema (`{{last_sync_time}}`
  rendered as 0; user and database names made unique).
- `bash`: every `reverse-etl` command is run, and must succeed: README.md's in a project with its
  example configuration (pointed at the scratch database and a local destination), docs/'s in a
  project on the bundled demo. Installing, `dagster dev` and `export` lines are left to CI and to
  the `dagster dev` tests.
- `text`, `json`: illustrations, not run.
"""

from __future__ import annotations

import re
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from reverse_etl_assets.config import models
from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.sql.placeholders import render_query
from reverse_etl_assets.sync_run import run_sync
from reverse_etl_tests.conftest import (
    API_KEY_ENV,
    ScratchDatabase,
    admin_connection,
    customerio_destination,
    reverse_etl,
    write_config,
)
from reverse_etl_tests.fake_customerio import FakeCustomerIo

PROJECT = Path(__file__).resolve().parent.parent
DOCUMENTS = [PROJECT / "README.md", *sorted((PROJECT / "docs").rglob("*.md"))]
_FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)
_SKIPPED_COMMANDS = ("pip ", "export ", "dagster ", "reverse-etl dev", "bash ", "python ", "mariadb ")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    info: str
    body: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(PROJECT)}:{self.line}"


def blocks(*infos: str, documents: list[Path] = DOCUMENTS) -> list[Block]:
    found = []
    for path in documents:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            if match.group("info").strip() in infos:
                found.append(
                    Block(
                        path,
                        text.count("\n", 0, match.start()) + 1,
                        match.group("info").strip(),
                        match.group("body"),
                    )
                )
    return found


def ids(found: list[Block]) -> list[str]:
    return [block.where for block in found]


@pytest.fixture
def example_db(mysql_db: ScratchDatabase) -> ScratchDatabase:
    with closing(admin_connection(mysql_db.name)) as connection, connection.cursor() as cursor:
        for statement in (PROJECT / "docs" / "example-schema.sql").read_text().split(";"):
            code = [
                line for line in statement.splitlines() if line.strip() and not line.strip().startswith("--")
            ]
            if code:
                cursor.execute("\n".join(code))
    return mysql_db


CONFIG_BLOCKS = blocks("yaml")


@pytest.mark.parametrize("block", CONFIG_BLOCKS, ids=ids(CONFIG_BLOCKS))
def test_configuration_files_load(block, tmp_path):
    config = load_config(write_text(tmp_path / "reverse_etl.yaml", block.body))
    assert config.warnings == [], (block.where, config.warnings)
    assert config.project.syncs


FRAGMENTS = blocks("yaml fragment=sync", "yaml fragment=destination", "yaml fragment=database")
SYNC_FRAGMENTS = [block for block in FRAGMENTS if block.info.endswith("sync")]


@pytest.mark.parametrize("block", FRAGMENTS, ids=ids(FRAGMENTS))
def test_fragments_load(block, tmp_path):
    entry = yaml.safe_load(block.body)
    data: dict[str, Any] = {
        "databases": {"app_db": {"host": "db.internal", "database": "app", "user": "reader"}},
        "destinations": {"customerio": {"kind": "customerio", "api_key_env": "CUSTOMERIO_API_KEY"}},
        "syncs": [],
    }
    kind = block.info.rsplit("=", 1)[1]
    if kind == "sync":
        data["syncs"] = [entry]
    else:
        data[f"{kind}s"]["example"] = entry
    config = load_config(write_config(tmp_path / "reverse_etl.yaml", data))
    warnings = [w for w in config.warnings if kind == "sync" or "no syncs are declared" not in w]
    assert warnings == [], (block.where, warnings)


@pytest.mark.parametrize("block", SYNC_FRAGMENTS, ids=ids(SYNC_FRAGMENTS))
def test_sync_examples_run_against_the_example_schema(block, tmp_path, example_db):
    entry = yaml.safe_load(block.body)
    names = entry["destinations"]
    config = load_config(
        write_config(
            tmp_path / "reverse_etl.yaml",
            {
                "databases": {"app_db": example_db.config()},
                "destinations": {name: {"kind": "outbox", "path": str(tmp_path / name)} for name in names},
                "syncs": [entry],
            },
        )
    )
    destination = names[0]
    with closing(
        open_destination(destination, config.project.destinations[destination], entry["name"], tmp_path)
    ) as sender:
        result = run_sync(config, entry["name"], destination, 0, sender)
    assert result.stats.rows_rejected == 0, (block.where, result.rejected_sample)
    assert result.stats.calls_sent > 0, block.where
    assert result.warnings == [], (block.where, result.warnings)


SQL_BLOCKS = blocks("sql")


@pytest.mark.parametrize("block", SQL_BLOCKS, ids=ids(SQL_BLOCKS))
def test_sql_examples_run(block, example_db):
    user = f"doc_{uuid.uuid4().hex[:8]}"
    sql = render_query(block.body, 0)
    sql = sql.replace("reverse_etl_reader", user).replace(" app.", f" `{example_db.name}`.")
    try:
        for statement in (s for s in sql.split(";") if s.strip()):
            example_db.execute(statement)
        if "GRANT" in sql:
            grants = example_db.query(f"SHOW GRANTS FOR '{user}'@'%'")
            from reverse_etl_assets.source.guards import write_grants

            assert write_grants([row[0] for row in grants], example_db.name) == [], block.where
    finally:
        example_db.execute(f"DROP USER IF EXISTS '{user}'@'%'")


INSTANCE_BLOCKS = blocks("yaml instance")


@pytest.mark.parametrize("block", INSTANCE_BLOCKS, ids=ids(INSTANCE_BLOCKS))
def test_dagster_instance_examples_are_valid(block, tmp_path, monkeypatch):
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(name, "example")
    write_text(tmp_path / "dagster.yaml", block.body)
    config = dagster_instance_config(str(tmp_path))[0]
    assert "storage" in config


def commands(documents: list[Path]) -> list[tuple[str, str]]:
    found = []
    for block in blocks("bash", documents=documents):
        for line in block.body.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command.startswith("reverse-etl") and not command.startswith(_SKIPPED_COMMANDS):
                found.append((block.where, command))
    return found


def test_readme_commands_run_on_its_example_configuration(tmp_path, example_db, customerio: FakeCustomerIo):
    [example] = [block for block in CONFIG_BLOCKS if block.path.name == "README.md"]
    data = yaml.safe_load(example.body)
    data["databases"]["app_db"] = example_db.config()  # the scratch database, not db.internal
    data["destinations"]["customerio"] = customerio_destination(customerio)
    write_config(tmp_path / "reverse_etl.yaml", data)
    found = commands([PROJECT / "README.md"])
    assert len(found) >= 4
    for where, command in found:
        # As a new user runs them: no DAGSTER_HOME, no .dagster yet.
        env = {API_KEY_ENV: customerio.api_key, "DAGSTER_HOME": ""}
        done = reverse_etl(*command.split()[1:], cwd=tmp_path, env=env)
        assert done.returncode == 0, (where, command, done.stdout, done.stderr)
    assert len(customerio.accepted) == 2  # `reverse-etl run identify_users` sent both example users


def test_docs_commands_run_on_the_demo(tmp_path):
    found = commands([path for path in DOCUMENTS if path.name != "README.md"])
    assert len(found) >= 3
    for where, command in found:
        done = reverse_etl(*command.split()[1:], cwd=tmp_path)
        assert done.returncode == 0, (where, command, done.stdout, done.stderr)


def test_the_example_file_is_the_readme_example():
    [example] = [block for block in CONFIG_BLOCKS if block.path.name == "README.md"]
    assert yaml.safe_load((PROJECT / "reverse_etl.example.yaml").read_text()) == yaml.safe_load(example.body)


def test_every_configuration_field_is_documented():
    reference = (PROJECT / "docs" / "configuration.md").read_text()
    classes = [
        models.ProjectConfig, models.MySQLDatabase, models.TlsConfig, models.SQLiteDatabase,
        models.HttpDelivery, models.RateLimit, models.CustomerIoDestination, models.SegmentDestination,
        models.HttpEndpointDestination, models.OutboxDestination, models.SyncConfig, models.ExecutorConfig,
    ]  # fmt: skip
    missing = [
        f"{model.__name__}.{name}"
        for model in classes
        for name in model.model_fields
        if f"`{name}`" not in reference and name not in ("requests", "per_seconds")
    ]
    assert missing == []


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
