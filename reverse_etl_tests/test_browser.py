"""The UI as a user sees it: `dagster dev` on the demo, a sync materialized, and its asset page
opened in headless Chromium (Debian's package), with screenshots kept in test-artifacts/."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import Page, sync_playwright

from reverse_etl_tests.dagster_dev import PROJECT, DagsterDev

ARTIFACTS = PROJECT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As this machine's notes say: without the background-networking flags Chromium keeps trying to
# reach Google's hosts, which the closed network refuses.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def demo(tmp_path):
    server = DagsterDev(tmp_path)
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


def visible_text(page: Page, url: str, *expected: str, shot: str) -> str:
    page.goto(url)
    for text in expected:
        page.get_by_text(text, exact=False).first.wait_for(timeout=60_000)
    page.wait_for_timeout(500)  # let the last requests settle before the picture
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    return page.inner_text("body")


@pytest.mark.timeout(420)
def test_the_asset_page_shows_the_sync_its_metadata_and_its_checks(demo):
    run_id = demo.materialize("demo_identify_users", "outbox")
    assert demo.wait_for_run(run_id) == "SUCCESS", demo.output()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        try:
            asset = f"{demo.url}/assets/demo_identify_users"
            overview = visible_text(page, asset, "Demo people and their traits", shot="asset-overview.png")
            assert "demo_identify_users" in overview
            assert "FROM_UNIXTIME" in overview  # the query, in the definition's metadata

            events = visible_text(
                page,
                f"{asset}?view=events",
                "rows_read",
                "calls_sent",
                "last_sync_time",
                shot="asset-events.png",
            )
            assert "rendered_query" in events

            checks = visible_text(
                page,
                f"{asset}?view=checks",
                "rejected_rows",
                "sync_frequency",
                "query_guards",
                shot="asset-checks.png",
            )
            assert "rejected_rows" in checks
            # The project's dagster.yaml keeps Dagster's newsletter pop-up off the pages.
            assert "Join the Dagster community" not in overview + events + checks
        finally:
            browser.close()
    assert (ARTIFACTS / "asset-events.png").stat().st_size > 10_000
