"""The dashboard's Release of a held write-off over real HTTP: a link on each held row, a confirmation
page, a POST that needs the login, the CSRF token and a reason; then the code `reactor held release`
runs: the hold gone, the `released` record with who and why, and a real worker deciding again."""

from __future__ import annotations

import html
import re

import pytest
import requests

from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.jobs.held import HeldWriteOff, hold, list_held
from tests.helpers import wait_for
from tests.integration.helpers import ADMIN_USER, logged_in, outcomes, token
from tests.integration.ops_helpers import reactor_process

pytestmark = pytest.mark.integration


def test_release_a_held_write_off_after_confirming_with_a_reason(
    sandbox, our_write_off, admin_web, redis_conn, settings
):
    invoice_id = our_write_off["id"]
    undone = reactor_process(settings, "undo", invoice_id, "--reason", "customer disputes the charge")
    assert undone.returncode == 0, undone.stderr
    browser = logged_in(admin_web)

    page = browser.get(f"{admin_web.url}/admin/", timeout=5).text
    [row] = re.findall(r'<tr class="held" data-invoice-id="[^"]*">(.*?)</tr>', page, re.S)
    link = f"/admin/held/{invoice_id}/release"
    assert f'href="{link}"' in row and f'href="/admin/invoices/{invoice_id}"' in row
    confirm = browser.get(admin_web.url + link, timeout=5)
    assert confirm.status_code == 200
    assert re.search(r'id="held-amount">12\.50 USD<', confirm.text) and "<strong>undone</strong>" in confirm.text

    no_token = browser.post(admin_web.url + link, data={"reason": "settled"}, timeout=5)
    no_reason = browser.post(admin_web.url + link, data={"csrf": token(confirm.text), "reason": " "}, timeout=5)
    anonymous = requests.post(admin_web.url + link, data={"reason": "x"}, timeout=5, allow_redirects=False)
    assert no_token.status_code == 400 and "form token" in no_token.text
    assert "Give a reason" in no_reason.text
    assert anonymous.status_code == 302 and "/admin/login" in anonymous.headers["Location"]
    assert [h.invoice_id for h in list_held(redis_conn, settings.key_prefix)] == [invoice_id]
    assert "released" not in outcomes(redis_conn, invoice_id)

    done = browser.post(
        admin_web.url + link, data={"csrf": token(confirm.text), "reason": "dispute settled in our favour"}, timeout=5
    )

    assert done.status_code == 200 and f"Released {invoice_id}" in html.unescape(done.text)
    assert list_held(redis_conn, settings.key_prefix) == []
    [record] = [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id)) if r.outcome == "released"]
    assert record.reason == f"by admin:{ADMIN_USER}: dispute settled in our favour"
    wait_for(lambda: outcomes(redis_conn, invoice_id).count("written_off") == 2, what="the release written off")
    assert len(sandbox.state.write_off_calls()) == 2

    twice = browser.post(admin_web.url + link, data={"csrf": token(confirm.text), "reason": "again"}, timeout=5)
    assert "Not released" in twice.text and "not held" in twice.text
    assert [r.outcome for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id))].count("released") == 1


def test_a_release_records_what_the_command_records(redis_conn, settings, admin_web):
    """Both go through reactor/jobs/held.py `release`: the same record, `by <who>: <why>`."""
    for invoice_id in ("inv_rel_cli", "inv_rel_web"):
        hold(redis_conn, HeldWriteOff(invoice_id, rule="r", amount_due=500, currency="USD", reason="budget", event={}))
    by_command = reactor_process(settings, "held", "release", "inv_rel_cli", "--reason", "budget raised")
    assert by_command.returncode == 0, by_command.stderr
    browser = logged_in(admin_web)
    confirm = browser.get(f"{admin_web.url}/admin/held/inv_rel_web/release", timeout=5)
    browser.post(confirm.url, data={"csrf": token(confirm.text), "reason": "budget raised"}, timeout=5)

    cli, web = (list(AuditLog(redis_conn).query(AuditFilter(invoice_id=i))) for i in ("inv_rel_cli", "inv_rel_web"))
    assert [(r.outcome, r.event_id, r.rule, r.amount_due) for r in cli + web] == [("released", None, None, None)] * 2
    assert re.fullmatch(r"by \S+@\S+: budget raised", cli[0].reason or "")
    assert web[0].reason == f"by admin:{ADMIN_USER}: budget raised"
