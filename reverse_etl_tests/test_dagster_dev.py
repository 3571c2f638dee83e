"""`reverse-etl dev` starts `dagster dev` headless: it answers, lists the demo syncs, and a demo sync
materialized the way the UI's button does it shows its metadata."""

from __future__ import annotations

import json

import pytest

from reverse_etl_tests.dagster_dev import DagsterDev

ASSET_METADATA = """
query Asset($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId partition
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on MarkdownMetadataEntry { mdStr }
        }
      }
    }
  }
}"""


@pytest.fixture
def dagster_dev(tmp_path):
    server = DagsterDev(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_dagster_dev_serves_the_demo_and_materializes_it(dagster_dev, tmp_path):
    info = dagster_dev.wait_until_ready()
    assert "dagster_webserver_version" in info

    nodes = dagster_dev.graphql("{ assetNodes { assetKey { path } groupName partitionKeys } }")["assetNodes"]
    by_name = {node["assetKey"]["path"][-1]: node for node in nodes}
    assert {"demo_identify_users", "demo_track_orders"} <= set(by_name)
    assert by_name["demo_identify_users"]["partitionKeys"] == ["outbox"]

    repositories = dagster_dev.graphql(
        "{ repositoriesOrError { ... on RepositoryConnection "
        "{ nodes { schedules { name cronSchedule } } } } }"
    )["repositoriesOrError"]["nodes"]
    schedules = [schedule for repository in repositories for schedule in repository["schedules"]]
    assert {"name": "demo_identify_users__outbox_schedule", "cronSchedule": "*/15 * * * *"} in schedules

    run_id = dagster_dev.materialize("demo_identify_users", "outbox")
    assert dagster_dev.wait_for_run(run_id) == "SUCCESS", dagster_dev.output()

    materializations = dagster_dev.graphql(ASSET_METADATA, {"path": ["demo_identify_users"]})["assetOrError"][
        "assetMaterializations"
    ]
    [latest] = materializations
    assert latest["runId"] == run_id and latest["partition"] == "outbox"
    metadata = {
        entry["label"]: entry.get("intValue", entry.get("mdStr")) for entry in latest["metadataEntries"]
    }
    assert metadata["rows_read"] == 50 and metadata["calls_sent"] == 50
    assert metadata["previous_last_sync_time"] == 0 and metadata["last_sync_time"] > 0
    assert "FROM_UNIXTIME(0)" in metadata["rendered_query"]

    # The persistent instance is ./.dagster, and the calls went to ./outbox.
    assert (tmp_path / ".dagster" / "dagster.yaml").exists()
    lines = (tmp_path / "outbox" / "outbox" / "demo_identify_users.jsonl").read_text().splitlines()
    assert len(lines) >= 50 and json.loads(lines[0])["type"] == "identify"
