"""`reverse-etl dev` starts `dagster dev` headless: it answers, lists the demo syncs, runs each demo
sync at once (the start-now sensor), and a demo sync materialized the way the UI's button does it
shows its metadata."""

from __future__ import annotations

import json
import time

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
          ... on PathMetadataEntry { path }
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

    nodes = dagster_dev.graphql("{ assetNodes { assetKey { path } groupName partitionKeys description } }")[
        "assetNodes"
    ]
    by_name = {node["assetKey"]["path"][-1]: node for node in nodes}
    assert {"demo_identify_users", "demo_track_orders"} <= set(by_name)
    assert by_name["demo_identify_users"]["partitionKeys"] == ["outbox"]
    # The asset list shows the description as written; the SQL is in the metadata.
    assert by_name["demo_identify_users"]["description"] == (
        "Demo people and their traits, from the bundled SQLite database"
    )

    repositories = dagster_dev.graphql(
        "{ repositoriesOrError { ... on RepositoryConnection "
        "{ nodes { schedules { name cronSchedule } } } } }"
    )["repositoriesOrError"]["nodes"]
    schedules = [schedule for repository in repositories for schedule in repository["schedules"]]
    assert {"name": "demo_identify_users__outbox_schedule", "cronSchedule": "*/15 * * * *"} in schedules

    # The schedules are on, and a destination that never ran starts at once: no click needed.
    first = _wait_for_materialization(dagster_dev)
    tags = dagster_dev.graphql(
        "query Run($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }",
        {"id": first["runId"]},
    )["runOrError"]["tags"]
    assert {"key": "dagster/sensor_name", "value": "reverse_etl_start_now"} in tags
    metadata = _metadata(first)
    assert metadata["rows_read"] == 50 and metadata["calls_sent"] == 50
    assert metadata["previous_last_sync_time"] == 0 and metadata["last_sync_time"] > 0
    assert "FROM_UNIXTIME(0)" in metadata["rendered_query"]
    outbox = tmp_path / "outbox" / "outbox" / "demo_identify_users.jsonl"
    assert metadata["outbox_file"] == str(outbox)

    # Materialized again the way the UI's button does it: nothing changed, nothing sent.
    run_id = dagster_dev.materialize("demo_identify_users", "outbox")
    assert dagster_dev.wait_for_run(run_id) == "SUCCESS", dagster_dev.output()
    latest = _wait_for_materialization(dagster_dev, after=first["runId"])
    assert latest["runId"] == run_id and latest["partition"] == "outbox"
    again = _metadata(latest)
    assert again["rows_read"] == 0 and again["calls_sent"] == 0
    assert again["previous_last_sync_time"] == metadata["last_sync_time"]
    assert f"FROM_UNIXTIME({metadata['last_sync_time']})" in again["rendered_query"]

    # The persistent instance is ./.dagster, and the calls went to ./outbox.
    assert (tmp_path / ".dagster" / "dagster.yaml").exists()
    lines = outbox.read_text().splitlines()
    assert len(lines) == 50 and json.loads(lines[0])["type"] == "identify"


def _wait_for_materialization(server: DagsterDev, after: str | None = None, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = server.graphql(ASSET_METADATA, {"path": ["demo_identify_users"]})["assetOrError"]
        latest = (found or {}).get("assetMaterializations") or []
        if latest and latest[0]["runId"] != after:
            return latest[0]
        time.sleep(1)
    raise AssertionError(f"no materialization of demo_identify_users in {timeout} s:\n{server.output()}")


def _metadata(materialization: dict) -> dict:
    return {
        entry["label"]: entry.get("intValue", entry.get("mdStr", entry.get("path")))
        for entry in materialization["metadataEntries"]
    }
