"""The fast path (`driver: mysqlclient`) reads the same rows into the same Arrow batches as PyMySQL,
so its payloads are identical, byte for byte, including every edge-case type."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pytest

from reverse_etl_assets.config.loading import load_config
from reverse_etl_assets.config.models import MySQLDatabase
from reverse_etl_assets.delivery.destinations import open_destination
from reverse_etl_assets.source.connection import open_read_only_session
from reverse_etl_assets.source.errors import SourceError
from reverse_etl_assets.sync_run import run_sync
from reverse_etl_tests.conftest import ScratchDatabase, sync_entry, write_config
from reverse_etl_tests.test_mapping_types import everything  # noqa: F401 (the fixture)

QUERY = "SELECT id AS userId, e.* FROM everything e ORDER BY id"
# MariaDB sends JSON columns as LONGTEXT; PyMySQL can trace them to their table, mysqlclient cannot,
# so the sync declares it (as the docs tell mysqlclient users on MariaDB to do).
COLUMN_TYPES = {"js": "json"}


def payloads(tmp_path: Path, db: ScratchDatabase, driver: str, time_zone: str) -> list[bytes]:
    out = tmp_path / driver
    config = load_config(
        write_config(
            tmp_path / f"{driver}.yaml",
            {
                "databases": {"app_db": db.config(driver=driver, time_zone=time_zone)},
                "destinations": {"dry_run": {"kind": "outbox", "path": str(out)}},
                "syncs": [sync_entry("everything", QUERY, ["dry_run"], column_types=COLUMN_TYPES)],
            },
        )
    )
    with closing(
        open_destination("dry_run", config.project.destinations["dry_run"], "everything", tmp_path)
    ) as sender:
        result = run_sync(config, "everything", "dry_run", 0, sender)
    assert result.stats.rows_rejected == 0, result.rejected_sample
    return (out / "everything.jsonl").read_bytes().splitlines()


@pytest.mark.parametrize("time_zone", ["+00:00", "-05:30"])
def test_both_drivers_send_identical_payloads(tmp_path, everything, time_zone):  # noqa: F811
    default = payloads(tmp_path, everything, "pymysql", time_zone)
    fast = payloads(tmp_path, everything, "mysqlclient", time_zone)
    assert len(default) == 2
    assert fast == default


def test_both_drivers_build_the_same_arrow_batches(everything):  # noqa: F811
    def batches(driver: str) -> pa.Table:
        config = MySQLDatabase.model_validate(everything.config(driver=driver))
        with open_read_only_session("app_db", config) as session:
            return pa.Table.from_batches(list(session.stream_batches(QUERY, 10)))

    default, fast = batches("pymysql"), batches("mysqlclient")
    assert fast.column_names == default.column_names
    for name in default.column_names:
        if name == "js":  # PyMySQL traced it to a JSON column; mysqlclient leaves it to column_types
            assert default.column(name).to_pylist() == fast.column(name).to_pylist()
            continue
        assert fast.schema.field(name).type == default.schema.field(name).type, name
        assert fast.column(name).to_pylist() == default.column(name).to_pylist(), name


def test_required_tls_is_checked_not_trusted(everything):  # noqa: F811
    """This server offers no TLS: `required` must fail clearly, whichever driver."""
    for driver in ("pymysql", "mysqlclient"):
        config = MySQLDatabase.model_validate(everything.config(driver=driver, ssl={"mode": "required"}))
        with pytest.raises(SourceError, match=r"(not encrypted|SSL is required|TLS/SSL)"):
            with open_read_only_session("app_db", config):
                pass
