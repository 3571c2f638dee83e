"""The project's persistent Dagster instance (`DAGSTER_HOME`), and files kept beside it."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import dagster as dg
import yaml

DEFAULT_DAGSTER_HOME = ".dagster"
DAGSTER_YAML_TEMPLATE = Path(__file__).with_name("dagster.yaml")


def dagster_home() -> Path:
    """`$DAGSTER_HOME`, else `.dagster` in the working directory."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / DEFAULT_DAGSTER_HOME).resolve()


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


class NoInstance(Exception):
    """There is no instance to use, and creating one was not asked for."""


def open_instance(create: bool = False) -> dg.DagsterInstance:
    """The project's instance. Without `$DAGSTER_HOME`, `./.dagster` must exist unless `create`:
    a new instance has no cursors, so a command run from the wrong folder would send every row
    again. Opening it creates its storage the first time; a lock keeps two commands started at
    once on a new instance from both creating the same tables."""
    home = dagster_home()
    if not create and not os.environ.get("DAGSTER_HOME") and not home.exists():
        raise NoInstance(
            f"DAGSTER_HOME is not set and there is no instance in {home}: a new one would have no "
            "cursors, and every sync would send every row again. Set DAGSTER_HOME to your syncs' "
            "instance, run from the folder that holds its .dagster, or pass --new-instance to start one here"
        )
    home = ensure_dagster_home()
    _check_postgres_driver(home / "dagster.yaml")
    try:
        lock = (home / ".instance.lock").open("a")
    except OSError:  # a read-only folder: the storage is elsewhere (PostgreSQL), nothing to create here
        return dg.DagsterInstance.get()
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return dg.DagsterInstance.get()


def _check_postgres_driver(dagster_yaml: Path) -> None:
    """SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3, on which dagster-postgres fails (its
    NOTIFY takes no bound parameters): say so before Dagster fails somewhere deep."""
    try:
        settings = yaml.safe_load(dagster_yaml.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return  # Dagster itself reports what is wrong with the file
    postgres = (settings.get("storage") or {}).get("postgres") if isinstance(settings, dict) else None
    if not isinstance(postgres, dict):
        return
    url = postgres.get("postgres_url")
    if isinstance(url, dict) and "env" in url:
        url = os.environ.get(str(url["env"]), "")
    db = postgres.get("postgres_db")
    scheme = str(url).split("://", 1)[0] if url else (db or {}).get("scheme", "postgresql")
    if scheme in ("postgresql", "postgres"):
        where = "postgres_url" if url else "postgres_db.scheme"
        raise NoInstance(
            f"{dagster_yaml}: storage.postgres.{where} uses the scheme {scheme!r}, which SQLAlchemy 2.1 "
            "connects with psycopg 3, on which Dagster's PostgreSQL storage fails: write "
            "postgresql+psycopg2:// (postgres_db: scheme: postgresql+psycopg2), the driver "
            "reverse-etl[postgres] installs"
        )
