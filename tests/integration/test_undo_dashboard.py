"""The dashboard's Undo over real HTTP: a link on a written_off row, a confirmation page with the
amount, a POST that needs the login, the CSRF token and a reason; our write-off reversed in the
sandbox; then the row says it was undone, and the chart and the invoice page show the money net of it."""

from __future__ import annotations

import html
import re

import pytest
import requests

from reactor.jobs.audit import AuditFilter, AuditLog
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
    [record] = [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])) if r.outcome == "undone"]
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


def test_an_undone_write_off_row_says_so_and_the_chart_and_invoice_page_show_money_net_of_it(
    sandbox, our_write_off, admin_web, redis_conn
):
    invoice_id = our_write_off["id"]
    browser = logged_in(admin_web)
    before = browser.get(f"{admin_web.url}/admin/", timeout=5).text
    assert "net 12.50 USD" in caption(before, "USD") and len(rects(before, "USD", "bar")) == 1
    link = f"/admin/invoices/{invoice_id}/undo"
    confirm = browser.get(admin_web.url + link, timeout=5)
    assert re.search(r'id="undo-amount">12\.50 USD<', confirm.text)

    done = browser.post(admin_web.url + link, data={"csrf": token(confirm.text), "reason": "goodwill"}, timeout=5)
    assert "write-off undone" in done.text

    page = browser.get(f"{admin_web.url}/admin/", timeout=5).text
    [row] = [r for r in re.findall(r'<tr class="decision">(.*?)</tr>', page, re.S) if "o-written_off" in r]
    assert f"undone by admin:{ADMIN_USER}" in html.unescape(row) and link not in row and "Undo…" not in row
    assert rects(page, "USD", "bar") == [] and len(rects(page, "USD", "undone")) == 1
    assert "net 0.00 USD (12.50 USD written off, 12.50 USD undone since" in caption(page, "USD")

    invoice_page = html.unescape(browser.get(f"{admin_web.url}/admin/invoices/{invoice_id}", timeout=5).text)
    standing = re.search(r'<p id="standing"><strong>(.*?)</strong>', invoice_page, re.S).group(1)
    at = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"  # as every page and command shows a moment (reactor/timestamps.py)
    assert re.fullmatch(
        rf"written off 12\.50 USD at {at} by rule dunning-exhausted, "
        rf"undone by admin:{ADMIN_USER} at {at} \(goodwill\), held \(undone\) since {at}",
        standing,
    ), standing
    assert "At Chargebee now: not_paid, 12.50 USD due" in invoice_page


def caption(page: str, currency: str) -> str:
    """The caption of the currency's chart, as text."""
    found = re.search(rf"<figcaption><strong>{currency}</strong>(.*?)</figcaption>", page, re.S)
    assert found, f"no {currency} chart"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).split())


def rects(page: str, currency: str, kind: str) -> list[str]:
    """The <title> of each bar of `kind` (`bar`: what stands; `undone`) in the currency's chart."""
    svg = re.search(rf'<svg[^>]*data-currency="{currency}">(.*?)</svg>', page, re.S)
    assert svg, f"no {currency} chart"
    return re.findall(rf'<rect class="{kind}"[^>]*><title>(.*?)</title>', svg.group(1))
