"""The YAML configuration: the documented shape loads; every mistake names file, line, sync, field."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
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


# --- Names are whole strings, short enough for every place that uses them ---------------------------

FROM_LINE_24 = "    enabled: true\n"  # line 23 of VALID: a line inserted after it is line 24


@pytest.mark.parametrize(
    ("change", "where", "line"),
    [
        (("name: identify_users", 'name: "identify_users\\n"'), "sync 'identify_users\\n', field 'name'", 16),
        (("  app_db:", '  "app_db\\n":'), "database 'app_db\\n'", 2),
        (("  customerio:\n    kind", '  "customerio\\n":\n    kind'), "destination 'customerio\\n'", 11),
        (
            (FROM_LINE_24, FROM_LINE_24 + '    group: "marketing\\n"\n'),
            "sync 'identify_users', field 'group'",
            24,
        ),
        (
            (FROM_LINE_24, FROM_LINE_24 + '    owners: ["growth@example.com\\n"]\n'),
            "sync 'identify_users', field 'owners'",
            24,
        ),
        (
            (FROM_LINE_24, FROM_LINE_24 + '    owners: ["team:growth\\n"]\n'),
            "sync 'identify_users', field 'owners'",
            24,
        ),
        (
            (FROM_LINE_24, FROM_LINE_24 + '    after_assets: ["dbt/orders\\n"]\n'),
            "sync 'identify_users', field 'after_assets'",
            24,
        ),
        (("APP_DB_PASSWORD", '"APP_DB_PASSWORD\\n"'), "database 'app_db', field 'password_env'", 7),
        (
            ("CUSTOMERIO_API_KEY", '"CUSTOMERIO_API_KEY\\n"'),
            "destination 'customerio', field 'api_key_env'",
            14,
        ),
        (('time_zone: "+00:00"', 'time_zone: "+00:00\\n"'), "database 'app_db', field 'time_zone'", 9),
        (
            ("region: us", 'base_url: "https://cdp.customer.io/v1\\n"'),
            "destination 'customerio', field 'base_url'",
            13,
        ),
    ],
)
def test_names_and_identifiers_are_matched_whole(tmp_path, change, where, line):
    """`^...$` accepts a value ending in a newline (`$` matches before it), which then fails later:
    a Dagster name, a file name, an environment variable that is never found."""
    [problem] = problems(tmp_path, VALID.replace(*change))
    assert problem.startswith(f"reverse_etl.yaml, line {line}: {where}"), problem


def _named(kind: str, name: str) -> str:
    if kind == "sync":
        return VALID.replace("name: identify_users", f"name: {name}")
    if kind == "database":
        return VALID.replace("  app_db:", f"  {name}:").replace("database: app_db", f"database: {name}")
    if kind == "destination":
        return VALID.replace("customerio:\n    kind", f"{name}:\n    kind").replace(
            "[customerio]", f"[{name}]"
        )
    return VALID.replace(FROM_LINE_24, FROM_LINE_24 + f"    group: {name}\n")


@pytest.mark.parametrize("kind", ["sync", "database", "destination", "group"])
def test_names_hold_at_most_64_characters(tmp_path, kind):
    load_config(write(tmp_path, _named(kind, "n" * 64)))
    [problem] = problems(tmp_path, _named(kind, "n" * 65))
    assert f"a {kind} name must be at most 64 characters long" in problem, problem


def test_the_longest_names_make_a_valid_dagster_project(tmp_path):
    """Jobs, schedules, partitions and the instance's files are all built from 64-character names."""
    import dagster as dg

    from reverse_etl_assets.defs.build import build_definitions
    from reverse_etl_assets.state.rejected_rows import RejectedRowStore
    from reverse_etl_assets.state.store import StateStore

    sync, destination = "s" * 64, "d" * 64
    text = _named("sync", sync).replace("customerio:\n    kind", f"{destination}:\n    kind")
    config = load_config(write(tmp_path, text.replace("[customerio]", f"[{destination}]")))
    dg.Definitions.validate_loadable(build_definitions(config))
    store = RejectedRowStore(StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    store.record(sync, destination, "0" * 36, [{"row_number": 1}])
    assert list(store.rows(sync, destination)) == [(destination, "0" * 36, b'{"row_number":1}')]


@pytest.mark.parametrize("name", ["type", "input", "class", "None", "config"])
def test_names_dagster_reserves_are_refused(tmp_path, name):
    [problem] = problems(tmp_path, VALID.replace("name: identify_users", f"name: {name}"))
    assert problem.startswith("reverse_etl.yaml, line 16: ") and "Dagster reserves this name" in problem


def test_the_reserved_names_are_dagsters():
    from dagster._core.definitions.utils import DISALLOWED_NAMES

    from reverse_etl_assets.config.models import DAGSTER_RESERVED_NAMES

    assert set(DISALLOWED_NAMES) == DAGSTER_RESERVED_NAMES


def test_the_definition_names_a_sync_becomes_are_the_built_ones(tmp_path):
    """loading.definition_names() predicts the names defs/ gives, to refuse two syncs whose
    definitions would clash; this keeps the prediction honest."""
    import dagster as dg

    from reverse_etl_assets.config.loading import _DAGSTER_OWN_NAMES, definition_names
    from reverse_etl_assets.defs.build import build_definitions

    text = VALID.replace("[customerio]", "[customerio, dry_run]").replace(
        "syncs:\n", "  dry_run: {kind: outbox}\nsyncs:\n"
    )
    second = text[text.index("  - name:") :].replace("identify_users", "after_orders")
    text += second.replace("    frequency: 15m\n", "    after_assets: [dbt/orders]\n")
    config = load_config(write(tmp_path, text))
    repository = build_definitions(config).get_repository_def()
    jobs = repository.get_all_jobs()
    built = {
        "op": {job.name for job in jobs} | {node.name for job in jobs for node in job.all_node_defs},
        "instigator": {s.name for s in repository.schedule_defs} | {s.name for s in repository.sensor_defs},
    }
    predicted: dict[str, set[str]] = {"op": set(), "instigator": set()}
    for sync in config.project.syncs:
        for namespace, name, _ in definition_names(sync):
            predicted[namespace].add(name)
    for namespace, name in _DAGSTER_OWN_NAMES:
        predicted[namespace].add(name)
    assert predicted == built
    assert isinstance(repository, dg.RepositoryDefinition)


# --- Hostile files: a located error, never a traceback or a hang ---------------------------------------

BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9 if previous else ['lol'] * 9)}]\n"
    for previous, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)
_SYNC_BLOCK = VALID[VALID.index("  - name:") :]  # lines 16 to 26


def _query(query: str) -> str:
    return VALID[: VALID.index("    query: |")] + f"    query: {query}\n"


# (id, the file, what the problem says, the line it names: None for the whole file)
HOSTILE = [
    (
        "name ending in a newline",
        VALID.replace("name: identify_users", 'name: "identify_users\\n"'),
        "a sync name",
        16,
    ),
    (
        "300-character name",
        VALID.replace("name: identify_users", "name: " + "u" * 300),
        "at most 64 characters",
        16,
    ),
    ("alias bomb", BOMB, "YAML anchors and aliases (&x, *x) are not supported", 1),
    ("anchor and alias", VALID.replace("ssl: {mode: disabled}", "ssl: &tls {mode: disabled}"), "anchors", 8),
    ("merge of an alias", VALID + "x: &d {a: 1}\ny: {<<: *d}\n", "anchors and aliases", 27),
    ("10,000 nested lists", "[" * 10_000 + "]" * 10_000 + "\n", "nested more than 20 deep", 1),
    ("5,000 nested mappings", "a: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n", "nested more than 20", 1),
    ("200 nested block mappings", "".join("  " * i + f"k{i}:\n" for i in range(200)), "nested more than", 20),
    ("100,001 values", "syncs: [" + "1," * 100_001 + "1]\n", "more than 100,000 keys and values", 1),
    ("larger than 1 MiB", VALID + "# " + "x" * (1 << 20) + "\n", "larger than 1024 KiB", None),
    ("a number of 5,000 digits", VALID.replace("port: 3306", "port: " + "9" * 5_000), "5,000 characters", 4),
    ("a sexagesimal number", VALID.replace("port: 3306", "port: 1" + ":1" * 50_000), "a number of", 4),
    ("impossible date", VALID.replace("2026-12-01T00:00:00Z", "2026-13-01"), "month must be in 1..12", 22),
    (
        "!!bool maybe",
        VALID.replace("enabled: true", "enabled: !!bool maybe"),
        "cannot read 'maybe' as a bool",
        23,
    ),
    ("!!timestamp nope", VALID.replace("2026-12-01T00:00:00Z", "!!timestamp nope"), "as a timestamp", 22),
    ("!!int x", VALID.replace("port: 3306", "port: !!int x"), "cannot read 'x' as a int", 4),
    ("Python tag", VALID.replace("host: db.internal", "host: !!python/name:os.system"), "not valid YAML", 3),
    ("not UTF-8", VALID.replace("People", "Pëople").encode("latin-1"), "not UTF-8 text (byte 0xeb)", 17),
    ("UTF-16", VALID.encode("utf-16"), "the file is UTF-16 text; save it as UTF-8", 1),
    ("binary", bytes(range(256)), "not UTF-8 text (byte 0x80)", 2),
    ("control character", VALID.replace("People and", "People\x07and"), "U+0007 is not allowed", 17),
    ("tab indentation", VALID.replace("    type: identify", "\ttype: identify"), "indent with spaces", 18),
    ("empty", "", "the file holds no configuration", 1),
    ("only a comment", "# to do: declare the syncs\n", "the file holds no configuration", 1),
    ("only a document marker", "---\n", "the file holds no configuration", 1),
    ("a list", "- databases\n- syncs\n", "expected a mapping with databases, destinations and syncs", 1),
    ("two documents", VALID + "---\n" + VALID, "expected a single document", 27),
    ("a sync that is a list", VALID.replace("syncs:\n", "syncs:\n  - [identify, users]\n"), "sync #1", 16),
    ("a sync that is text", VALID.replace("syncs:\n", "syncs:\n  - identify_users\n"), "sync #1", 16),
    ("a query that is a number", _query("42"), "field 'query': Input should be a valid string (got 42)", 24),
    ("a query that is a list", _query("[SELECT 1]"), "field 'query': Input should be a valid string", 24),
    (
        "a key that is a number",
        VALID.replace(FROM_LINE_24, FROM_LINE_24 + "    3: x\n"),
        "Keys should be",
        24,
    ),
    (
        "a key that is a list",
        VALID.replace(FROM_LINE_24, FROM_LINE_24 + "    [a]: x\n"),
        "unhashable key",
        24,
    ),
    ("frequency that is a number", VALID.replace("frequency: 15m", "frequency: 15"), "(got 15)", 21),
    (
        "frequency of 100,000 characters",
        VALID.replace("15m", '"' + ",0-59" * 20_000 + '"'),
        "longer than",
        21,
    ),
    ("a NUL in a path", VALID.replace("mode: disabled}", 'mode: disabled, ca: "a\\0b"}'), "embedded null", 8),
    ("a folder of time zones", VALID.replace('"+00:00"', "America"), "is not an offset such as +00:00", 9),
    (
        "an owner Dagster refuses",
        VALID.replace(FROM_LINE_24, FROM_LINE_24 + "    owners: [a@b.c]\n"),
        "owner",
        24,
    ),
    ("a name Dagster reserves", VALID.replace("name: identify_users", "name: class"), "Dagster reserves", 16),
    (
        "definitions that clash",
        VALID + _SYNC_BLOCK.replace("identify_users", "preview_identify_users"),
        "its asset would be named 'preview_identify_users', as is the preview job of sync 'identify_users'",
        27,
    ),
    (
        "a sync that runs after itself",
        VALID.replace(FROM_LINE_24, FROM_LINE_24 + "    after_assets: [identify_users]\n"),
        "in a loop (identify_users → identify_users)",
        24,
    ),
    (
        "a destination listed 40,000 times",
        VALID.replace("[customerio]", "[" + ", ".join(["customerio"] * 40_000) + "]"),
        "listed more than once: customerio",
        20,
    ),
]


def write_bytes(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "reverse_etl.yaml"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("content", "expected", "line"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_a_hostile_file_is_a_located_problem(tmp_path, content, expected, line):
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        load_config(write_bytes(tmp_path, content))
    assert time.monotonic() - started < 5
    where = "reverse_etl.yaml: " if line is None else f"reverse_etl.yaml, line {line}"
    assert any(p.startswith(where) and expected in p for p in raised.value.problems), raised.value.problems


def test_so_many_problems_are_counted_not_listed(tmp_path):
    """30,000 broken destinations: 50 problems, and how many more, in moments (not an hour of lookups)."""
    destinations = "".join(f"  d{i}: 1\n" for i in range(30_000))
    started = time.monotonic()
    found = problems(tmp_path, VALID.replace("destinations:\n", "destinations:\n" + destinations, 1))
    assert time.monotonic() - started < 10
    assert (
        len(found) == 51
        and found[-1] == "reverse_etl.yaml: 29950 more problem(s) not listed; fix these first"
    )


def test_a_byte_order_mark_and_windows_line_ends_are_fine(tmp_path):
    for text in ["\ufeff" + VALID, VALID.replace("\n", "\r\n")]:
        assert load_config(write_bytes(tmp_path, text)).project.syncs[0].name == "identify_users"


@pytest.mark.timeout(300)
def test_reverse_etl_validate_fails_cleanly_and_quickly_on_every_hostile_file(tmp_path):
    """Exit code 1, a located message, no traceback, and done within seconds (of which starting
    Python and importing Dagster take about two)."""
    from concurrent.futures import ThreadPoolExecutor

    from reverse_etl_tests.conftest import cli_environment

    def validate(index: int) -> tuple[str, subprocess.CompletedProcess[str], float]:
        name, content = HOSTILE[index][:2]
        folder = tmp_path / str(index)
        folder.mkdir()
        path = write_bytes(folder, content)
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "reverse_etl_assets.cli", "validate", "--config", str(path)],
            cwd=folder,
            env=cli_environment(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        return name, result, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(validate, range(len(HOSTILE))))
    for (name, result, seconds), (_, _, expected, line) in zip(results, HOSTILE, strict=True):
        output = result.stdout + result.stderr
        assert result.returncode == 1, (name, output[-2000:])
        assert "Traceback" not in output, (name, output[-2000:])
        assert expected in output and ("reverse_etl.yaml" + (f", line {line}" if line else "")) in output, (
            name,
            output[-2000:],
        )
        assert seconds < 15, (name, seconds)


def test_credentials_in_a_url_are_refused_without_being_printed_and_plain_http_is_warned(tmp_path):
    def load(url: str) -> list[str]:
        path = write(
            tmp_path, f"destinations:\n  cio: {{kind: customerio, api_key_env: CIO_KEY, base_url: '{url}'}}\n"
        )
        try:
            return load_config(path).warnings
        except ConfigError as error:
            return [str(error)]

    [refused] = load("https://user:hunter2-s3cret@cdp.example.com/v1")
    assert "field 'base_url': the URL holds credentials (user:password@)" in refused
    assert "hunter2-s3cret" not in refused
    warned = load("http://cdp.example.com/v1")
    assert any("the API key would travel unencrypted to cdp.example.com" in w for w in warned), warned
    for local in (
        "http://127.0.0.1:8080/v1",
        "http://localhost/v1",
        "http://[::1]:9/v1",
        "https://cdp.example.com/v1",
    ):
        assert not any("unencrypted" in w for w in load(local)), local
