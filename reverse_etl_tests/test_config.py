"""The YAML configuration: the documented shape loads; every mistake names file, line, sync, field."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reverse_etl_assets.config.frequency import frequency_to_cron
from reverse_etl_assets.config.loading import DEMO_CONFIG, ConfigError, config_path, load_config

VALID = """\
databases:
  app_db:
    host: db.internal
    port: 3306
    database: app
    user: reverse_etl_reader
    password_env: APP_DB_PASSWORD
    ssl: {mode: disabled}
    time_zone: "+00:00"
destinations:
  customerio:
    kind: customerio
    region: us
    api_key_env: CUSTOMERIO_API_KEY
syncs:
  - name: identify_users
    description: People and their traits
    type: identify
    database: app_db
    destinations: [customerio]
    frequency: 15m
    start_at: 2026-12-01T00:00:00Z
    enabled: true
    query: |
      SELECT id AS userId, email_address AS email, fname, lname
      FROM users WHERE last_updated >= FROM_UNIXTIME({{last_sync_time}})
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reverse_etl.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text))
    return raised.value.problems


def test_the_documented_shape_loads(tmp_path):
    config = load_config(write(tmp_path, VALID))
    sync = config.project.syncs[0]
    assert sync.name == "identify_users"
    assert sync.cron == "*/15 * * * *"
    assert sync.start_at.isoformat() == "2026-12-01T00:00:00+00:00"
    database = config.project.databases["app_db"]
    assert database.kind == "mysql" and database.password_env == "APP_DB_PASSWORD"
    assert config.project.destinations["customerio"].resolved_base_url() == "https://cdp.customer.io/v1"
    assert config.warnings == []


def test_an_unknown_key_names_file_line_sync_and_field_and_suggests_the_right_one(tmp_path):
    missing, unknown = problems(
        tmp_path, VALID.replace("    destinations: [customerio]", "    destination: [customerio]")
    )
    assert (
        missing
        == "reverse_etl.yaml, line 16: sync 'identify_users', field 'destinations': this field is required"
    )
    assert unknown.startswith("reverse_etl.yaml, line 20: sync 'identify_users', field 'destination': ")
    assert "unknown key 'destination'; did you mean 'destinations'?" in unknown


def test_a_sync_naming_a_missing_database(tmp_path):
    [problem] = problems(tmp_path, VALID.replace("    database: app_db", "    database: app"))
    assert problem == (
        "reverse_etl.yaml, line 19: sync 'identify_users', field 'database': "
        "unknown database 'app' (declared: app_db)"
    )


def test_a_sync_naming_a_missing_destination(tmp_path):
    [problem] = problems(tmp_path, VALID.replace("[customerio]", "[customerio, segment]"))
    assert "sync 'identify_users', field 'destinations[1]': unknown destination 'segment'" in problem


def test_a_bad_type_and_a_bad_frequency_are_both_reported(tmp_path):
    found = problems(
        tmp_path, VALID.replace("type: identify", "type: identfy").replace("frequency: 15m", "frequency: 7m")
    )
    assert len(found) == 2
    assert "sync 'identify_users', field 'type'" in found[0] and "'identfy'" in found[0]
    assert "field 'frequency'" in found[1] and "divide 60" in found[1]


def test_database_and_destination_fields_are_named(tmp_path):
    found = problems(
        tmp_path,
        VALID.replace("port: 3306", "port: not-a-port").replace("region: us", "region: mars"),
    )
    assert any("database 'app_db', field 'port'" in p and "line 4" in p for p in found)
    assert any("destination 'customerio', field 'region'" in p for p in found)


def test_a_secret_written_in_place_of_its_variable_name_is_refused(tmp_path):
    [problem] = problems(tmp_path, VALID.replace("APP_DB_PASSWORD", "hunter2!"))
    assert "field 'password_env'" in problem and "environment variable" in problem


def test_a_query_without_last_sync_time_is_a_warning_not_an_error(tmp_path):
    config = load_config(write(tmp_path, VALID.replace("FROM_UNIXTIME({{last_sync_time}})", "'2020-01-01'")))
    [warning] = config.warnings
    assert "sync 'identify_users', field 'query'" in warning and "{{last_sync_time}}" in warning


def test_yaml_syntax_errors_and_duplicate_keys(tmp_path):
    [syntax] = problems(tmp_path, "syncs:\n  - name: [unclosed\n")
    assert syntax.startswith("reverse_etl.yaml, line ") and "not valid YAML" in syntax
    duplicated = problems(
        tmp_path, VALID.replace("    enabled: true", "    enabled: true\n    enabled: false")
    )
    assert any("line 24" in p and "'enabled' appears twice" in p for p in duplicated)


def test_duplicate_sync_names(tmp_path):
    second = VALID[VALID.index("  - name:") :]
    [problem] = problems(tmp_path, VALID + second)
    assert "field 'name': another sync is named 'identify_users'" in problem


@pytest.mark.parametrize(
    ("frequency", "cron"),
    [
        ("1m", "* * * * *"),
        ("15m", "*/15 * * * *"),
        ("60m", "0 * * * *"),
        ("2h", "0 */2 * * *"),
        ("1d", "0 0 * * *"),
        ("30 6 * * 1-5", "30 6 * * 1-5"),
    ],
)
def test_frequencies(frequency, cron):
    assert frequency_to_cron(frequency) == cron


@pytest.mark.parametrize("frequency", ["0m", "7m", "5h", "2d", "every day", "61 * * * *"])
def test_bad_frequencies(frequency):
    with pytest.raises(ValueError, match=re.escape(repr(frequency))):
        frequency_to_cron(frequency)


def test_which_file_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("REVERSE_ETL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert config_path() == DEMO_CONFIG
    (tmp_path / "reverse_etl.yaml").write_text(VALID)
    assert config_path() == tmp_path / "reverse_etl.yaml"
    other = tmp_path / "elsewhere.yaml"
    monkeypatch.setenv("REVERSE_ETL_CONFIG", str(other))
    assert config_path() == other
    with pytest.raises(ConfigError, match=r"cannot read the file \(set by \$REVERSE_ETL_CONFIG\)"):
        load_config()


def test_relative_paths_are_relative_to_the_file(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """\
            databases: {local: {kind: sqlite, path: data/app.sqlite}}
            destinations: {dry_run: {kind: outbox, path: out}}
            syncs: []
            """,
        )
    )
    assert config.project.databases["local"].path == tmp_path / "data" / "app.sqlite"
    assert config.project.destinations["dry_run"].path == tmp_path / "out"


def cli(*args: str, cwd: Path, env_config: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ}
    if env_config is not None:
        env["REVERSE_ETL_CONFIG"] = str(env_config)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def test_reverse_etl_validate_and_dagster_definitions_validate_reject_an_invalid_file(tmp_path):
    bad = write(tmp_path, VALID.replace("    database: app_db", "    database: app"))
    project = Path(__file__).resolve().parent.parent
    ours = cli(sys.executable, "-m", "reverse_etl_assets.cli", "validate", "--config", str(bad), cwd=tmp_path)
    assert ours.returncode == 1
    assert (
        "reverse_etl.yaml, line 19: sync 'identify_users', field 'database': unknown database 'app'"
        in ours.stderr
    )

    dagster_cli = str(Path(sys.executable).with_name("dagster"))
    dagster = cli(dagster_cli, "definitions", "validate", "-w", "workspace.yaml", cwd=project, env_config=bad)
    assert dagster.returncode != 0
    assert (
        "sync 'identify_users', field 'database': unknown database 'app'" in dagster.stdout + dagster.stderr
    )


def test_reverse_etl_validate_accepts_the_demo_and_prints_warnings(tmp_path):
    ok = cli(sys.executable, "-m", "reverse_etl_assets.cli", "validate", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "demo_identify_users" in ok.stdout
    no_cursor = write(tmp_path, VALID.replace("FROM_UNIXTIME({{last_sync_time}})", "'2020-01-01'"))
    warned = cli(
        sys.executable,
        "-m",
        "reverse_etl_assets.cli",
        "validate",
        "--offline",
        "--config",
        str(no_cursor),
        cwd=tmp_path,
    )
    assert warned.returncode == 0
    assert "warning: reverse_etl.yaml, line 24: sync 'identify_users', field 'query'" in warned.stderr


def test_a_query_that_writes_is_refused_when_the_file_is_loaded(tmp_path):
    [problem] = problems(
        tmp_path,
        VALID.replace(
            "      FROM users WHERE last_updated >= FROM_UNIXTIME({{last_sync_time}})",
            "      FROM users WHERE last_updated >= FROM_UNIXTIME({{last_sync_time}});\n"
            "      DELETE FROM users",
        ),
    )
    assert problem.startswith("reverse_etl.yaml, line 24: sync 'identify_users', field 'query': ")
    assert "not a single read statement" in problem and "line 3" in problem


def test_group_owners_and_kinds_reach_the_asset(tmp_path: Path):
    from reverse_etl_assets.defs.build import build_definitions

    text = VALID.replace(
        "    enabled: true\n",
        "    enabled: true\n    group: marketing\n    owners: [growth@example.com, team:growth]\n",
    ).replace("destinations: [customerio]", "destinations: [customerio, dry_run]")
    text = text.replace("syncs:\n", "  dry_run: {kind: outbox}\nsyncs:\n")
    path = tmp_path / "reverse_etl.yaml"
    path.write_text(text)
    [asset] = build_definitions(load_config(path)).resolve_assets_def("identify_users").specs

    assert asset.group_name == "marketing"
    assert list(asset.owners) == ["growth@example.com", "team:growth"]
    assert set(asset.kinds) == {"mysql", "customerio", "outbox"}  # the database, then the destinations
