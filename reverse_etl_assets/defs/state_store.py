"""The state store of an instance: the Dagster instance's own PostgreSQL or MySQL database when its
storage is there, so every worker of the instance shares one truth; SQLite in the instance's
folder otherwise. `$REVERSE_ETL_STATE_URL` overrides the choice."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from reverse_etl_assets.defs.instance_home import dagster_home
from reverse_etl_assets.state.store import StateStore

STATE_URL_ENV = "REVERSE_ETL_STATE_URL"


def state_url(instance: dg.DagsterInstance) -> sa.URL:
    override = os.environ.get(STATE_URL_ENV)
    if override:
        return sa.make_url(override)
    storage = instance.run_storage
    # dagster-postgres and dagster-mysql keep the URL they connect with. PyMySQL is in the base
    # install, where dagster-mysql's mysql-connector may not be.
    postgres_url = getattr(storage, "postgres_url", None)
    if postgres_url:
        return sa.make_url(postgres_url)  # with its driver: open_instance made sure it names one
    mysql_url = getattr(storage, "mysql_url", None)
    if mysql_url:
        return sa.make_url(mysql_url).set(drivername="mysql+pymysql")
    root = Path(instance.root_directory) if instance.root_directory else dagster_home()
    folder = root / "reverse_etl"
    folder.mkdir(parents=True, exist_ok=True)
    return sa.make_url(f"sqlite:///{folder / 'state.sqlite'}")


def state_store(instance: dg.DagsterInstance) -> StateStore:
    return _store(state_url(instance).render_as_string(hide_password=False))


@functools.cache
def _store(url: str) -> StateStore:
    """One store (one connection pool) per database, for the life of the process."""
    return StateStore(url)
