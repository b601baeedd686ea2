"""The dashboard's Undo over real HTTP: a link on a written_off row, a confirmation page, a POST
that needs the login, the CSRF token and a reason; our write-off reversed in the sandbox."""

from __future__ import annotations

import pytest
import requests

from reactor.jobs.audit import AuditLog
from reactor.jobs.held import list_held
from tests.integration.helpers import ADMIN_USER, logged_in, outcomes, token

pytestmark = pytest.mark.integration


def test_undo_from_a_written_off_row_after_confirming_with_a_reason(
    sandbox, our_write_off, admin_web, redis_conn, settings
):
    invoice = our_write_off
    browser = logged_in(admin_web)

    page = browser.get(f"{admin_web.url}/admin/", timeout=5)
    link = f"/admin/invoices/{invoice['id']}/undo"
    assert f'href="{link}"' in page.text
    confirm = browser.get(admin_web.url + link, timeout=5)
    [note] = sandbox.state.write_off_notes()
    assert confirm.status_code == 200 and note["id"] in confirm.text and "dunning-exhausted" in confirm.text

    no_token = browser.post(admin_web.url + link, data={"reason": "dispute"}, timeout=5)
    no_reason = browser.post(admin_web.url + link, data={"csrf": token(confirm.text), "reason": "  "}, timeout=5)
    anonymous = requests.post(admin_web.url + link, data={"reason": "x"}, timeout=5, allow_redirects=False)
    assert no_token.status_code == 400 and "form token" in no_token.text
    assert "Give a reason" in no_reason.text
    assert anonymous.status_code == 302 and "/admin/login" in anonymous.headers["Location"]
    assert sandbox.state.get_invoice(invoice["id"])["status"] == "paid" and "undone" not in outcomes(
        redis_conn, invoice["id"]
    )

    done = browser.post(admin_web.url + link, data={"csrf": token(confirm.text), "reason": "goodwill"}, timeout=5)

    assert done.status_code == 200 and "write-off undone" in done.text and "Held (reason undone)" in done.text
    assert sandbox.state.get_invoice(invoice["id"])["status"] == "not_paid"
    [record] = [r for r in AuditLog(redis_conn).query(invoice_id=invoice["id"]) if r.outcome == "undone"]
    assert record.reason == f"by admin:{ADMIN_USER}: goodwill"
    assert [h.reason for h in list_held(redis_conn, settings.key_prefix)] == ["undone"]
    assert 'class="pill o-undone"' in browser.get(f"{admin_web.url}/admin/", timeout=5).text

    twice = browser.post(admin_web.url + link, data={"csrf": token(confirm.text), "reason": "again"}, timeout=5)
    assert "Already undone" in twice.text and "goodwill" in twice.text
    assert len(sandbox.state.calls(path_contains="/remove_credit_note")) == 1


@pytest.mark.parametrize("bad_id", ["x" * 101, "x" * 51, "%2E%2E", "%2E", "inv%201"])
def test_a_bad_invoice_id_is_refused(admin_web, bad_id):
    browser = logged_in(admin_web)
    answer = browser.get(f"{admin_web.url}/admin/invoices/{bad_id}/undo", timeout=5)
    assert answer.status_code == 400 and "not an invoice id" in answer.text
