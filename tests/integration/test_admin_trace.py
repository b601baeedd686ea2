"""`/admin/invoices/<id>`: an invoice's timeline on the dashboard, over real HTTP, from a write-off made
by a real worker; linked from the decisions, behind the login. Its first lines: the reactor's standing
on the invoice and its status at Chargebee now, or why Chargebee could not be asked."""

from __future__ import annotations

import html

import pytest
import requests

from reactor.jobs.audit import AuditFilter, AuditLog
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, logged_in, make_event, post_event
from tests.integration.ops_helpers import written_off

pytestmark = pytest.mark.integration


def test_the_invoice_page_shows_the_timeline_and_every_decision_links_to_it(
    admin_web, sandbox, redis_conn, start_worker
):
    invoice = exhausted_invoice(sandbox)
    event = make_event(invoice)
    assert post_event(admin_web.webhook_url, event).status_code == 200
    start_worker()
    wait_for(
        lambda: any(
            r.outcome == "written_off" for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"]))
        ),
        timeout=30,
        what="written_off",
    )
    page_url = f"{admin_web.url}/admin/invoices/{invoice['id']}"
    anonymous = requests.get(page_url, timeout=5, allow_redirects=False)
    assert anonymous.status_code in (302, 303) and "/admin/login" in anonymous.headers["Location"]

    browser = logged_in(admin_web)
    dashboard = browser.get(f"{admin_web.url}/admin", timeout=5).text
    assert f'href="/admin/invoices/{invoice["id"]}"' in dashboard

    page = browser.get(page_url, timeout=5)
    text = html.unescape(page.text)
    assert page.status_code == 200
    assert f"event {event['id']} payment_failed received: queued" in text
    assert "✔ true: invoice.dunning_status eq exhausted, actual 'exhausted'" in text
    assert f"Chargebee POST /invoices/{invoice['id']}/write_off → 200" in text
    assert "idempotency key reactor-wo-" in text and "credit note CN-" in text

    by_event = browser.get(f"{admin_web.url}/admin/invoices/{event['id']}", timeout=5)
    assert by_event.status_code == 200 and by_event.url == page_url
    assert browser.get(f"{admin_web.url}/admin/invoices/inv_nobody", timeout=5).status_code == 404
    assert browser.get(f"{admin_web.url}/admin/invoices/a%20b", timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("status", "said"),
    [(503, "unknown: Chargebee could not be reached"), (401, "unknown: Chargebee refused the API key")],
)
def test_the_invoice_page_says_when_chargebee_cannot_be_asked_and_still_renders(
    admin_web, sandbox, redis_conn, status, said
):
    invoice = exhausted_invoice(sandbox)
    AuditLog(redis_conn).append(written_off(invoice["id"], "ev_page_1"))
    browser = logged_in(admin_web)
    page_url = f"{admin_web.url}/admin/invoices/{invoice['id']}"
    assert "At Chargebee now: not_paid, 12.50 USD due" in html.unescape(browser.get(page_url, timeout=5).text)

    sandbox.state.add_fault(match="retrieve", status=status, times=None)
    page = browser.get(page_url, timeout=15)

    text = html.unescape(page.text)
    assert page.status_code == 200
    assert f"At Chargebee now: {said}" in text and "not_paid" not in text
    assert "written off 12.50 USD at " in text and "by rule dunning-exhausted-small-balance" in text
    assert "rule dunning-exhausted-small-balance matched" in text  # the timeline is there too


def test_an_invoice_chargebee_does_not_know_is_said_so(admin_web, redis_conn):
    AuditLog(redis_conn).append(written_off("inv_not_at_chargebee", "ev_page_2"))
    page = logged_in(admin_web).get(f"{admin_web.url}/admin/invoices/inv_not_at_chargebee", timeout=5)
    assert page.status_code == 200
    assert "At Chargebee now: Chargebee has no invoice inv_not_at_chargebee (HTTP 404" in html.unescape(page.text)
