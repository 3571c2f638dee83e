"""Alerts reach the webhook however the run was started (the CLI, the UI, a schedule, a sensor), a
post that fails is retried, and the webhook's URL (a Slack webhook's path is its key) never appears
in an error."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from reverse_etl_assets.defs.alerts import WEBHOOK_ENV, Alert, AlertNotSent, send_alert
from reverse_etl_tests.conftest import (
    API_KEY_ENV,
    customerio_destination,
    reverse_etl,
    sync_entry,
    write_config,
)
from reverse_etl_tests.dagster_dev import DagsterDev
from reverse_etl_tests.webhook import Webhook

QUERY = "SELECT id AS userId, email FROM people WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})"
SECRET_PATH = "SeCrEtPaTh0123456789"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


@pytest.fixture
def people(mysql_db):
    mysql_db.execute("CREATE TABLE people (id INT, email VARCHAR(50), updated_at DATETIME DEFAULT NOW())")
    mysql_db.executemany(
        "INSERT INTO people (id, email) VALUES (%s, %s)", [(i, f"{i}@x.io") for i in range(5)]
    )
    return mysql_db


ALERT = Alert("FAILED", "people", "cio", "run-1", "answered 500", {"rows_read": 5})


def test_a_failed_post_is_retried_with_backoff(webhook):
    webhook.failures.extend([500, 503, 429])
    send_alert(ALERT, webhook.url, wait_max_seconds=0.2)
    assert webhook.attempts == 4 and len(webhook.posts) == 1
    assert webhook.posts[0]["text"].startswith("reverse-etl: FAILED: sync people → cio")


def test_an_alert_that_never_goes_out_names_the_host_not_the_url(webhook):
    webhook.always_fail = 500
    with pytest.raises(AlertNotSent) as failed:
        send_alert(ALERT, webhook.url, wait_max_seconds=0.2)
    assert webhook.attempts == 5
    assert "127.0.0.1" in str(failed.value) and SECRET_PATH not in str(failed.value)
    webhook.always_fail = 404  # refused: not retried
    with pytest.raises(AlertNotSent, match="refused the alert: answered 404"):
        send_alert(ALERT, webhook.url)
    assert webhook.attempts == 6


def test_a_run_from_the_cli_raises_an_alert(tmp_path, people, customerio, webhook):
    write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {"cio": customerio_destination(customerio)},
            "syncs": [sync_entry("people", QUERY, ["cio"])],
        },
    )
    env = {WEBHOOK_ENV: webhook.url, API_KEY_ENV: "a-wrong-key", "DAGSTER_HOME": str(tmp_path / ".dagster")}
    webhook.failures.append(502)  # the first post fails: retried
    done = reverse_etl("run", "people", cwd=tmp_path, env=env)
    assert done.returncode == 1 and "FAILED people → cio" in done.stdout
    [post] = webhook.posts
    assert post["sync"] == "people" and post["destination"] == "cio" and "answered 401" in post["text"]
    run_id = post["run_id"]
    assert f"(run {run_id})" in done.stdout

    webhook.always_fail = 500  # an alert that cannot go out is a warning, never the URL
    done = reverse_etl("run", "people", cwd=tmp_path, env=env)
    assert "warning: the alert webhook (127.0.0.1" in done.stderr
    assert SECRET_PATH not in done.stdout + done.stderr


@pytest.mark.timeout(600)
def test_runs_from_the_ui_a_schedule_and_a_sensor_raise_alerts(tmp_path, people, customerio, webhook):
    """With the daemon: a sync whose destination refuses the API key, launched three ways."""
    config = write_config(
        tmp_path / "reverse_etl.yaml",
        {
            "databases": {"app_db": people.config()},
            "destinations": {"cio": customerio_destination(customerio)},
            "syncs": [sync_entry("people", QUERY, ["cio"], frequency="1m", after_assets=["upstream"])],
        },
    )
    customerio.api_key = "another-key"  # every run fails with 401
    webhook.failures.append(503)  # and the first alert post needs a retry
    server = DagsterDev(
        tmp_path,
        env={"REVERSE_ETL_CONFIG": str(config), WEBHOOK_ENV: webhook.url, API_KEY_ENV: "a-wrong-key"},
    )
    try:
        server.wait_until_ready()
        ui_run = server.materialize("people", "cio")
        assert server.wait_for_run(ui_run) == "FAILURE"
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / ".dagster"))) as instance:
            instance.report_runless_asset_event(dg.AssetMaterialization("upstream"))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not _alerted_every_way(tmp_path, webhook, ui_run):
            time.sleep(2)
        assert _alerted_every_way(tmp_path, webhook, ui_run), (webhook.posts, server.output())
    finally:
        server.stop()
    text = json.dumps(webhook.posts)
    assert "a-wrong-key" not in text


def _alerted_every_way(project: Path, webhook: Webhook, ui_run: str) -> bool:
    """An alert for the UI's run, for a run of the schedule and for a run of the upstream sensor."""
    alerted = {post["run_id"] for post in webhook.posts}
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(project / ".dagster"))) as instance:
        runs = [instance.get_run_by_id(run_id) for run_id in alerted]
    launched_by = {
        "ui" if run.run_id == ui_run else "schedule" if "dagster/schedule_name" in run.tags else "sensor"
        for run in runs
        if run is not None
        and (run.run_id == ui_run or {"dagster/schedule_name", "dagster/sensor_name"} & set(run.tags))
    }
    return launched_by == {"ui", "schedule", "sensor"}
