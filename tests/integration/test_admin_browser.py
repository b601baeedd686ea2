"""The dashboard in a real headless browser (Debian's chromium driven by playwright): log in, see a
decision, see the chart drawn, replay a dead letter; and the Quick start's dashboard, opened with the
URL and login `reactor run` prints. Screenshots go to test-artifacts/; with REACTOR_SCREENSHOT=PATH
the Quick start's logged-in dashboard is also saved to PATH (the README's docs/dashboard.png:
`REACTOR_SCREENSHOT=docs/dashboard.png scripts/test.sh tests/integration/test_admin_browser.py`)."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from rq.registry import FailedJobRegistry

from reactor.jobs.audit import AuditLog
from reactor.local.redis_server import free_port
from reactor.local.supervisor import DEV_WEBHOOK_PASSWORD, DEV_WEBHOOK_USER
from tests.helpers import REPO, WebServer, wait_for
from tests.integration.helpers import make_event
from tests.integration.ops_helpers import (
    kill_run,
    listening,
    make_dead_letter,
    printed_dashboard,
    reactor_run,
    written_off,
)

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


def test_the_quick_start_dashboard_opens_with_the_url_and_login_reactor_run_prints(tmp_path: Path, page):
    port = free_port()
    proc = reactor_run(tmp_path, port, free_port(), "run")  # nothing configured: sandbox mode
    output = tmp_path / "run.log"
    try:
        wait_for(lambda: "Ready." in output.read_text(), timeout=60, what="`reactor run` to say Ready")
        wait_for(lambda: listening(port), timeout=30, what="gunicorn to listen")
        delivered = requests.post(  # the README's curl
            f"http://127.0.0.1:{port}/webhooks/chargebee",
            data=(REPO / "examples" / "payment_failed_exhausted.json").read_bytes(),
            headers={"Content-Type": "application/json"},
            auth=(DEV_WEBHOOK_USER, DEV_WEBHOOK_PASSWORD),
            timeout=10,
        )
        assert delivered.status_code == 200
        url, user, password = printed_dashboard(output.read_text())

        page.goto(url)
        assert "/admin/login" in page.url
        page.fill("input[name=user]", user)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        sync_api.expect(page.locator("h2", has_text="Recent decisions")).to_be_visible()
        assert page.url == url  # logged in over plain HTTP: the session cookie came back

        decision = page.locator("tr.decision", has_text="inv_demo_1001")

        def written_off_shown() -> bool:
            page.reload()
            return decision.count() == 1

        wait_for(written_off_shown, timeout=30, interval=0.5, what="the dashboard to show the demo write-off")
        sync_api.expect(decision).to_contain_text("12.50 USD")
        sync_api.expect(decision).to_contain_text("dunning-exhausted-small-balance")
        bar = page.locator('svg[data-currency="USD"] rect.bar')
        assert bar.count() == 1
        box = bar.first.bounding_box()
        assert box is not None and box["height"] > 50  # drawn, not just present
        ARTIFACTS.mkdir(exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 400})  # a full-page shot as tall as the content
        page.screenshot(path=str(ARTIFACTS / "quickstart-dashboard.png"), full_page=True)
        if os.environ.get("REACTOR_SCREENSHOT"):
            page.screenshot(path=os.environ["REACTOR_SCREENSHOT"], full_page=True)

        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        kill_run(proc)
