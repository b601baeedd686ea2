"""The dashboard in a real headless browser (Debian's chromium driven by playwright): log in, see a
decision, see the chart drawn, replay a dead letter. Screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from rq.registry import FailedJobRegistry

from reactor.jobs.audit import AuditLog
from tests.helpers import REPO, WebServer
from tests.integration.helpers import make_event
from tests.integration.ops_helpers import make_dead_letter, written_off

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "no chromium at /usr/bin/chromium: apt-get install chromium (scripts/test.sh does it when root)",
        allow_module_level=True,
    )


@pytest.fixture
def admin_web(settings, redis_conn) -> Iterator[WebServer]:
    server = WebServer(replace(settings, admin_user="oncall", admin_password="night-shift-password"))
    yield server
    server.stop()


@pytest.fixture
def page() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def test_on_call_logs_in_sees_a_decision_and_the_chart_and_replays_a_dead_letter(admin_web, page, redis_conn, settings):
    audit = AuditLog(redis_conn)
    for n, (amount, currency) in enumerate([(1250, "USD"), (480, "USD"), (1800, "EUR")]):
        audit.append(written_off(f"inv_browser_{n}", f"ev_browser_{n}", amount, currency))
    event = make_event({"id": "inv_browser_dead", "status": "not_paid", "amount_due": 900, "currency_code": "USD"})
    job = make_dead_letter(redis_conn, settings, event)

    page.goto(f"{admin_web.url}/admin/")
    assert "/admin/login" in page.url
    page.fill("input[name=user]", "oncall")
    page.fill("input[name=password]", "night-shift-password")
    page.click("button[type=submit]")

    decision = page.locator("tr.decision", has_text="inv_browser_0")
    sync_api.expect(decision).to_contain_text("12.50 USD")
    sync_api.expect(decision).to_contain_text("dunning-exhausted-small-balance")
    bars = page.locator('svg[data-currency="USD"] rect.bar')
    assert bars.count() == 1
    box = bars.first.bounding_box()
    assert box is not None and box["height"] > 50 and box["width"] > 5  # drawn, not just present
    assert page.locator('svg[data-currency="EUR"] rect.bar').count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.locator(f'tr[data-job-id="{job.id}"] button', has_text="Replay").click()

    sync_api.expect(page.locator(".flash.ok")).to_contain_text(f"Requeued {job.id}")
    assert page.locator(f'tr[data-job-id="{job.id}"]').count() == 0
    assert job.id not in FailedJobRegistry(settings.queue_name, connection=redis_conn).get_job_ids()
    page.screenshot(path=str(ARTIFACTS / "dashboard-after-replay.png"), full_page=True)
