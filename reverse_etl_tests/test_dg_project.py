"""The repository is a `dg` project, and ReverseEtlComponent brings syncs into another one: real `dg`
and `dagster` commands in subprocesses, no mocks.

The other project gets an environment of its own with this package *installed* into it (built from
a copy of the source, not editable, so the package data must ship). Its other packages (Dagster,
dg, pandas...) come from this test's environment through a .pth file, so nothing else is
downloaded; pip fetches only the build backend (setuptools), as any install of the package does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from reverse_etl_tests.dagster_dev import free_port
from reverse_etl_tests.test_docs import blocks

PROJECT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DOC = PROJECT / "docs" / "dagster-projects.md"
DEMO = PROJECT / "reverse_etl_assets" / "demo"
COMPONENT = "reverse_etl_assets.component.ReverseEtlComponent"
# The source that is built and installed: the package and what setuptools reads.
SOURCE_IGNORED = shutil.ignore_patterns(
    ".venv", ".git", ".dagster", "__pycache__", "*.egg-info", "build", "dist", "outbox", ".*cache",
    "reverse_etl_tests", "bench", "docs", "reverse_etl.yaml",
)  # fmt: skip
INLINE_SYNC = """\
type: reverse_etl_assets.component.ReverseEtlComponent

attributes:
  databases:
    local_db:
      kind: sqlite
      path: ../../../data/demo.sqlite  # relative to this file
  destinations:
    outbox:
      kind: outbox
  syncs:
    - name: acme_identify_users
      type: identify
      database: local_db
      destinations: [outbox]
      frequency: 1h
      query: |
        SELECT id AS userId, email, plan FROM users
        WHERE last_updated >= FROM_UNIXTIME({{last_sync_time}})
"""
PYPROJECT = """\
[project]
name = "acme-data"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["reverse-etl"]

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "acme_data"
"""
# As `dg scaffold project` writes it.
DEFINITIONS = """\
from pathlib import Path

from dagster import definitions, load_from_defs_folder


@definitions
def defs():
    return load_from_defs_folder(path_within_project=Path(__file__).parent)
"""
LAUNCHER = (
    "#!{python}\nimport sys\nfrom {module} import main\nif __name__ == '__main__':\n    sys.exit(main())\n"
)


def run(
    *command: str | Path, cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def environment(venv: Path, dagster_home: Path) -> dict[str, str]:
    """`venv` active, as `. venv/bin/activate` makes it; the instance in `dagster_home`."""
    env = {k: v for k, v in os.environ.items() if k not in ("REVERSE_ETL_CONFIG", "PYTHONPATH")}
    env.update(
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        DAGSTER_HOME=str(dagster_home),
        NO_COLOR="1",
        COLUMNS="200",
    )
    return env


def instance_home(folder: Path, dagster_yaml: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text(dagster_yaml + "telemetry:\n  enabled: false\n")
    return folder


def asset_keys(listing: subprocess.CompletedProcess) -> set[str]:
    assert listing.returncode == 0, listing.stdout + listing.stderr
    return {asset["asset_key"] for asset in json.loads(listing.stdout)["assets"]}


def test_the_repository_is_a_dg_project(tmp_path):
    home = instance_home(tmp_path / "home", (PROJECT / ".dagster" / "dagster.yaml").read_text())
    env = environment(VENV_BIN.parent, home)
    before = _top_level_names()

    check = run(VENV_BIN / "dg", "check", "defs", cwd=PROJECT, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "All definitions loaded successfully" in check.stdout + check.stderr
    listed = asset_keys(run(VENV_BIN / "dg", "list", "defs", "--json", cwd=PROJECT, env=env))
    assert {"demo_identify_users", "demo_track_orders"} <= listed

    components = run(VENV_BIN / "dg", "list", "components", "--json", cwd=PROJECT, env=env)
    assert components.returncode == 0, components.stdout + components.stderr
    assert COMPONENT in {entry["key"] for entry in json.loads(components.stdout)["items"]}
    assert _top_level_names() == before  # nothing written into the repository


def _top_level_names() -> set[str]:
    return {path.name for path in PROJECT.iterdir()}


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A separate dg project, `acme_data`, with this package installed into its own .venv and three
    defs.yaml files: inline syncs on SQLite, and the documentation's two examples verbatim."""
    root = tmp_path_factory.mktemp("acme")
    venv = root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    # Dagster, dg and the rest from this environment, without downloading them again.
    (purelib(python) / "reverse_etl_test_base.pth").write_text(f"{purelib(Path(sys.executable))}\n")
    # The `dg` command, as pip writes it for dagster-dg-cli (`dagster` runs as `python -m dagster`).
    launcher = venv / "bin" / "dg"
    launcher.write_text(LAUNCHER.format(python=python, module="dagster_dg_cli.cli"))
    launcher.chmod(0o755)
    source = shutil.copytree(
        PROJECT, tmp_path_factory.mktemp("source") / "reverse-etl", ignore=SOURCE_IGNORED
    )
    install = run(
        python, "-m", "pip", "install", "--no-deps", "--quiet", source, cwd=root, env=dict(os.environ)
    )
    assert install.returncode == 0, install.stdout + install.stderr
    shutil.rmtree(source)

    (root / "pyproject.toml").write_text(PYPROJECT)
    package = root / "acme_data"
    (package / "defs").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(DEFINITIONS)
    (root / "data").mkdir()
    shutil.copyfile(DEMO / "demo.sqlite", root / "data" / "demo.sqlite")
    inline_example, file_example = blocks("yaml component", documents=[DOC])
    _write(package / "defs" / "customer_syncs" / "defs.yaml", INLINE_SYNC)
    _write(package / "defs" / "crm_syncs" / "defs.yaml", inline_example.body)
    demo = package / "defs" / "demo_syncs"
    _write(demo / "defs.yaml", file_example.body)
    shutil.copyfile(DEMO / "reverse_etl.yaml", demo / "reverse_etl.yaml")
    shutil.copyfile(DEMO / "demo.sqlite", demo / "demo.sqlite")
    return root


def purelib(python: Path) -> Path:
    """The site-packages folder of `python`'s environment."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(
        subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    )


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _doc_instance_settings() -> str:
    [block] = blocks("yaml dagster.yaml", documents=[DOC])
    return block.body


def test_a_dg_project_loads_syncs_from_defs_yaml(acme, tmp_path):
    env = environment(acme / ".venv", instance_home(tmp_path / "home", _doc_instance_settings()))
    dg, python = acme / ".venv" / "bin" / "dg", acme / ".venv" / "bin" / "python"
    check = run(dg, "check", "defs", cwd=acme, env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    # The installed copy answers, not this checkout.
    where = run(
        python, "-c", "import reverse_etl_assets; print(reverse_etl_assets.__file__)", cwd=tmp_path, env=env
    )
    assert where.stdout.startswith(str(acme / ".venv")), where.stdout + where.stderr

    listing = run(dg, "list", "defs", "--json", cwd=acme, env=env)
    assert asset_keys(listing) == {
        "acme_identify_users",  # inline, SQLite
        "identify_customers",  # the documentation's inline example
        "demo_identify_users",  # the documentation's config_file example, on the demo's file
        "demo_track_orders",
    }
    sensors = [sensor["name"] for sensor in json.loads(listing.stdout)["sensors"]]
    assert sensors.count("reverse_etl_dead_runs") == 1  # once for the three components

    # One run of the inline sync, as a deployment would launch it: the calls land in the outbox.
    command = ["asset", "materialize", "-m", "acme_data.definitions", "--select", "acme_identify_users"]
    materialized = run(python, "-m", "dagster", *command, "--partition", "outbox", cwd=acme, env=env)
    assert materialized.returncode == 0, materialized.stdout + materialized.stderr
    calls = [json.loads(line) for line in (acme / "outbox" / "outbox" / "acme_identify_users.jsonl").open()]
    with sqlite3.connect(acme / "data" / "demo.sqlite") as db:
        [(users,)] = db.execute("SELECT count(*) FROM users").fetchall()
    assert len(calls) == users > 0
    assert {call["type"] for call in calls} == {"identify"}


def test_dg_dev_serves_the_project(acme, tmp_path):
    env = environment(acme / ".venv", instance_home(tmp_path / "home", _doc_instance_settings()))
    port = free_port()
    with (tmp_path / "dg_dev.log").open("wb") as log:
        process = subprocess.Popen(
            [acme / ".venv" / "bin" / "dg", "dev", "--port", str(port), "--host", "127.0.0.1"],
            cwd=acme, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            answer = None
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    answer = requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
                    if answer.ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.5)
            assert answer is not None and answer.ok, (tmp_path / "dg_dev.log").read_text()
            assert answer.json()["dagster_version"]
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_a_broken_inline_sync_names_defs_yaml_and_its_line(acme, tmp_path):
    root = tmp_path / "broken"
    (root / "acme_data" / "defs").mkdir(parents=True)
    for name in (
        "pyproject.toml",
        "acme_data/__init__.py",
        "acme_data/defs/__init__.py",
        "acme_data/definitions.py",
    ):
        shutil.copyfile(acme / name, root / name)
    shutil.copytree(acme / "data", root / "data")
    broken = INLINE_SYNC.replace("type: identify", "type: identfy")
    defs_yaml = _write(root / "acme_data" / "defs" / "customer_syncs" / "defs.yaml", broken)
    line = broken.splitlines().index("      type: identfy") + 1
    env = environment(acme / ".venv", instance_home(tmp_path / "home", _doc_instance_settings()))
    dg = acme / ".venv" / "bin" / "dg"

    check = run(dg, "check", "defs", cwd=root, env=env)
    output = check.stdout + check.stderr
    assert check.returncode != 0, output
    assert str(defs_yaml) in output
    assert re.search(
        rf"defs\.yaml, line {line}: sync 'acme_identify_users', field 'type': .*'identfy'", output
    )

    # Both forms at once: refused, naming the file.
    _write(defs_yaml, INLINE_SYNC.replace("attributes:\n", "attributes:\n  config_file: reverse_etl.yaml\n"))
    check = run(dg, "check", "defs", cwd=root, env=env)
    output = check.stdout + check.stderr
    assert check.returncode != 0, output
    assert "defs.yaml, line 3: attributes: set either config_file or the configuration inline" in output
