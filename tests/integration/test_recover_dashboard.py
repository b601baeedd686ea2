"""The dashboard's Recover over real HTTP: the money-back table lists a payment seen for our
write-off; a confirmation page; a POST that needs the login and the CSRF token; the write-off
reversed and the payment applied in the sandbox."""

from __future__ import annotations

import pytest
import requests

from reactor.jobs.audit import AuditFilter, AuditLog
from tests.helpers import WEBHOOK_PASSWORD, WEBHOOK_USER, wait_for
from tests.integration.helpers import ADMIN_USER, logged_in, make_event, outcomes, post_event, token

pytestmark = pytest.mark.integration

RULES = """\
version: 1
mode: live
limits:
  max_write_off: {GBP: 500}
rules:
  - name: dunning-exhausted
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""


def test_recover_from_the_money_back_table(sandbox, admin_web, redis_conn, start_worker, rules_file):
    rules_file(RULES)
    sandbox.state.add_customer(id="cus_gb", preferred_currency_code="GBP")
    sandbox.state.set_webhook_target(admin_web.webhook_url, WEBHOOK_USER, WEBHOOK_PASSWORD)
    start_worker()
    invoice = sandbox.state.add_invoice(
        status="not_paid", dunning_status="exhausted", currency_code="GBP", total=1200, customer_id="cus_gb"
    )
    assert post_event(admin_web.webhook_url, make_event(invoice)).status_code == 200
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="our write-off")
    _customer, txn, events = sandbox.state.record_excess_payment("cus_gb", 1200, "GBP")
    sandbox.state.deliver_async(events)
    wait_for(lambda: "recovery_candidate" in outcomes(redis_conn, invoice["id"]), what="the candidate")
    browser = logged_in(admin_web)

    page = browser.get(f"{admin_web.url}/admin/", timeout=5)
    link = f"/admin/invoices/{invoice['id']}/recover"
    assert f'href="{link}"' in page.text and txn["id"] in page.text and "12.00 GBP" in page.text
    confirm = browser.get(admin_web.url + link, timeout=5)
    assert confirm.status_code == 200 and txn["id"] in confirm.text

    no_token = browser.post(admin_web.url + link, data={"transaction": txn["id"]}, timeout=5)
    anonymous = requests.post(admin_web.url + link, data={"transaction": txn["id"]}, timeout=5, allow_redirects=False)
    assert no_token.status_code == 400 and anonymous.status_code == 302
    assert sandbox.state.get_invoice(invoice["id"])["write_off_amount"] == 1200

    done = browser.post(admin_web.url + link, data={"csrf": token(confirm.text), "transaction": txn["id"]}, timeout=5)

    assert done.status_code == 200 and "12.00 GBP applied" in done.text, done.text
    assert sandbox.state.get_invoice(invoice["id"])["status"] == "paid"
    [record] = [
        r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])) if r.outcome == "recovered"
    ]
    assert record.reason.startswith(f"by admin:{ADMIN_USER}")
    assert "No money has come back" in browser.get(f"{admin_web.url}/admin/", timeout=5).text

    twice = browser.post(admin_web.url + link, data={"csrf": token(confirm.text)}, timeout=5)
    assert "recovered already" in twice.text
    assert len(sandbox.state.calls(path_contains="/apply_payments")) == 1
