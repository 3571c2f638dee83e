"""The project's persistent Dagster instance (`DAGSTER_HOME`), and files kept beside it."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import dagster as dg

DEFAULT_DAGSTER_HOME = ".dagster"
DAGSTER_YAML_TEMPLATE = Path(__file__).with_name("dagster.yaml")


def dagster_home() -> Path:
    """`$DAGSTER_HOME`, else `.dagster` in the working directory."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / DEFAULT_DAGSTER_HOME).resolve()


def state_dir(instance_root: str | None) -> Path:
    """Where reverse ETL keeps its own files, inside the instance's folder (ledger, rate limits,
    rejected rows). `instance_root` is the instance's `root_directory`."""
    return (Path(instance_root).resolve() if instance_root else dagster_home()) / "reverse_etl"


def ensure_dagster_home() -> Path:
    """Use `$DAGSTER_HOME`, else `.dagster` in the working directory; give it a `dagster.yaml`.

    Without a persistent home, `dagster dev` keeps its instance in a temporary folder deleted on
    exit, and with it every sync's `last_sync_time`: the next run would re-send every row.
    """
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(DAGSTER_YAML_TEMPLATE, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def open_instance() -> dg.DagsterInstance:
    """The project's instance. Opening it creates its storage the first time; a lock keeps two
    commands started at once on a new instance from both creating the same tables."""
    home = ensure_dagster_home()
    with (home / ".instance.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return dg.DagsterInstance.get()


def rejected_rows_path(instance_root: str | None, sync_name: str, destination: str, run_id: str) -> Path:
    """One JSONL file per run: `<DAGSTER_HOME>/reverse_etl/rejected_rows/<sync>/<destination>/<run>.jsonl`."""
    return state_dir(instance_root) / "rejected_rows" / sync_name / destination / f"{run_id}.jsonl"
