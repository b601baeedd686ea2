"""The dashboard in a real headless browser (Debian's chromium driven by playwright): log in, see a
decision, see the chart drawn, replay a dead letter; undo a write-off and see the chart net of it;
release a held write-off; and the Quick start's dashboard, opened with the
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

from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.local.redis_server import free_port
from reactor.local.supervisor import DEV_WEBHOOK_PASSWORD, DEV_WEBHOOK_USER
from tests.helpers import REPO, WebServer, wait_for
from tests.integration.helpers import make_event, outcomes
from tests.integration.ops_helpers import (
    kill_run,
    listening,
    make_dead_letter,
    printed_dashboard,
    reactor_process,
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


def log_in(page, admin_web: WebServer) -> None:
    page.goto(f"{admin_web.url}/admin/")
    page.fill("input[name=user]", "oncall")
    page.fill("input[name=password]", "night-shift-password")
    page.click("button[type=submit]")
    sync_api.expect(page.locator("h2", has_text="Recent decisions")).to_be_visible()


def test_on_call_undoes_a_write_off_and_the_chart_shows_the_money_net_of_it(admin_web, page, our_write_off):
    invoice_id = our_write_off["id"]
    log_in(page, admin_web)
    usd = page.locator('svg[data-currency="USD"]')
    assert usd.locator("rect.bar").count() == 1 and usd.locator("rect.undone").count() == 0

    decision = page.locator("tr.decision", has_text=invoice_id, has=page.locator(".o-written_off"))
    decision.get_by_role("link", name=f"Undo the write-off of {invoice_id}").click()
    sync_api.expect(page.locator("#undo-amount")).to_have_text("12.50 USD")
    page.fill("textarea[name=reason]", "customer disputes the charge")
    page.get_by_role("button", name="Undo the write-off of 12.50 USD in Chargebee").click()

    sync_api.expect(page.locator(".flash.ok")).to_contain_text("write-off undone")
    sync_api.expect(usd.locator("rect.bar")).to_have_count(0)
    sync_api.expect(usd.locator("rect.undone")).to_have_count(1)
    box = usd.locator("rect.undone").bounding_box()
    assert box is not None and box["height"] > 50  # the undone amount drawn where the write-off stood
    caption = page.locator("#chart figcaption", has_text="USD")
    sync_api.expect(caption).to_contain_text("net 0.00 USD (12.50 USD written off, 12.50 USD undone since")
    sync_api.expect(decision).to_contain_text("undone by admin:oncall")
    assert decision.get_by_role("link", name=f"Undo the write-off of {invoice_id}").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-after-undo.png"), full_page=True)


def test_on_call_releases_a_held_write_off_from_the_dashboard(admin_web, page, our_write_off, redis_conn, settings):
    invoice_id = our_write_off["id"]
    undone = reactor_process(settings, "undo", invoice_id, "--reason", "customer disputes the charge")
    assert undone.returncode == 0, undone.stderr
    log_in(page, admin_web)

    held = page.locator("tr.held", has_text=invoice_id)
    sync_api.expect(held).to_contain_text("undone")
    held.get_by_role("link", name=f"Release the held write-off of {invoice_id}").click()
    sync_api.expect(page.locator("#held-amount")).to_have_text("12.50 USD")
    page.fill("textarea[name=reason]", "dispute settled in our favour")
    page.get_by_role("button", name="Release to a worker").click()

    sync_api.expect(page.locator(".flash.ok")).to_contain_text(f"Released {invoice_id}")
    sync_api.expect(page.locator("tr.held", has_text=invoice_id)).to_have_count(0)
    [record] = [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id)) if r.outcome == "released"]
    assert record.reason == "by admin:oncall: dispute settled in our favour"
    wait_for(lambda: outcomes(redis_conn, invoice_id).count("written_off") == 2, what="the released write-off")
    page.reload()
    caption = page.locator("#chart figcaption", has_text="USD")
    sync_api.expect(caption).to_contain_text("net 12.50 USD (25.00 USD written off, 12.50 USD undone since")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-after-release.png"), full_page=True)


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
