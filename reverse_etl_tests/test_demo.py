"""The bundled demo works with no MySQL and no Customer.io account."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from reverse_etl_assets.config.loading import DEMO_CONFIG, load_config
from reverse_etl_assets.defs.instance_home import DAGSTER_YAML_TEMPLATE
from reverse_etl_tests.conftest import materialize_sync, run_metadata

PROJECT = Path(__file__).resolve().parent.parent


def test_the_demo_syncs_materialize_into_outbox_files(tmp_path, instance, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(DEMO_CONFIG)
    assert config.warnings == []
    assert [s.name for s in config.project.syncs] == ["demo_identify_users", "demo_track_orders"]

    users = run_metadata(
        materialize_sync(DEMO_CONFIG, "demo_identify_users", "outbox", instance), "demo_identify_users"
    )
    assert users["rows_read"] == users["calls_sent"] == 50
    assert users["previous_last_sync_time"] == 0 and users["last_sync_time"] > 0
    assert "FROM_UNIXTIME(0)" in users["rendered_query"]
    lines = (tmp_path / "outbox" / "outbox" / "demo_identify_users.jsonl").read_text().splitlines()
    calls = [json.loads(line) for line in lines]
    assert len(calls) == 50
    first = calls[0]
    assert first["type"] == "identify" and first["userId"] == "1"
    assert isinstance(first["traits"]["is_active"], bool)
    assert first["context"]["library"] == {"name": "reverse-etl", "version": version("reverse-etl")}
    assert len(first["messageId"]) == 32

    orders = run_metadata(
        materialize_sync(DEMO_CONFIG, "demo_track_orders", "outbox", instance), "demo_track_orders"
    )
    assert orders["calls_sent"] == 120
    order = json.loads(
        (tmp_path / "outbox" / "outbox" / "demo_track_orders.jsonl").read_text().splitlines()[0]
    )
    assert order["event"] == "Order Completed" and order["timestamp"].endswith("Z")

    # The data has not changed: the next run reads nothing and appends nothing.
    again = run_metadata(
        materialize_sync(DEMO_CONFIG, "demo_identify_users", "outbox", instance), "demo_identify_users"
    )
    assert again["rows_read"] == 0 and again["previous_last_sync_time"] == users["last_sync_time"]
    assert len((tmp_path / "outbox" / "outbox" / "demo_identify_users.jsonl").read_text().splitlines()) == 50


def test_the_committed_instance_configuration_is_the_one_reverse_etl_creates():
    assert (PROJECT / ".dagster" / "dagster.yaml").read_text() == DAGSTER_YAML_TEMPLATE.read_text()
