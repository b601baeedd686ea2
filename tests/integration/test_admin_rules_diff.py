"""/admin/rules/diff over real HTTP, with the sandbox and Redis: login required, the CSRF token
checked, a refused file answered with file:line:col (no traceback), and a pasted or uploaded file
compared with the rules in force on every open invoice."""

from __future__ import annotations

import re

import pytest
import requests

from tests.integration.helpers import logged_in, token
from tests.integration.rules_diff_helpers import BASE, NEW, seed_site

pytestmark = pytest.mark.integration


@pytest.fixture
def admin_settings(admin_settings, rules_file, sandbox):
    """The rules in force (BASE) and the site they are compared on, there before the dashboard starts."""
    rules_file(BASE)
    seed_site(sandbox)
    return admin_settings


def cells(html: str, invoice_id: str) -> list[str]:
    row = re.search(rf"<tr><td><code>{invoice_id}</code></td>(.*?)</tr>", html, re.S)
    assert row, f"no row for {invoice_id}"
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def test_login_and_the_form_token_are_required(admin_web) -> None:
    url = f"{admin_web.url}/admin/rules/diff"
    assert requests.get(url, timeout=5, allow_redirects=False).status_code == 302
    assert requests.post(url, data={"rules": NEW}, timeout=5, allow_redirects=False).status_code == 302
    browser = logged_in(admin_web)
    assert browser.post(url, data={"rules": NEW, "csrf": "stale"}, timeout=5).status_code == 400
    assert 'id="rules-diff-link"' in browser.get(f"{admin_web.url}/admin/", timeout=5).text


def test_a_pasted_file_is_compared_with_the_rules_in_force(admin_web, sandbox) -> None:
    browser = logged_in(admin_web)
    url = f"{admin_web.url}/admin/rules/diff"
    form = browser.get(url, timeout=5)
    answer = browser.post(url, data={"rules": NEW, "csrf": token(form.text)}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert "5 of 7 open invoices change" in answer.text
    assert cells(answer.text, "inv_b")[1:4] == ["newly_written_off", "sweep", "50.00 USD"]
    assert cells(answer.text, "inv_c")[1] == "held"
    assert "would be passed today" in cells(answer.text, "inv_c")[-1]
    assert cells(answer.text, "inv_f")[1:6] == [
        "no_longer_written_off",
        "sweep",
        "20.00 EUR",
        "write_off exhausted-small",
        "skip no-euro",
    ]
    assert "inv_e" not in answer.text  # protected under both: no change
    assert sandbox.state.write_off_calls() == []  # a preview writes nothing off


def test_an_uploaded_file_that_does_not_load_gets_its_problems(admin_web) -> None:
    browser = logged_in(admin_web)
    url = f"{admin_web.url}/admin/rules/diff"
    csrf = token(browser.get(url, timeout=5).text)
    broken = NEW.replace("{lte: 80}", "{lte: nope}")
    answer = browser.post(url, data={"csrf": csrf}, files={"file": ("mine.yaml", broken.encode())}, timeout=30)
    assert answer.status_code == 422
    assert re.search(r"mine\.yaml:\d+:\d+: ", answer.text) and "Traceback" not in answer.text
    uploaded = browser.post(url, data={"csrf": csrf}, files={"file": ("mine.yaml", NEW.encode())}, timeout=30)
    assert uploaded.status_code == 200 and "5 of 7 open invoices change" in uploaded.text
    empty = browser.post(url, data={"csrf": csrf, "rules": "  "}, timeout=5)
    assert empty.status_code == 400 and "paste a rules file" in empty.text
    latin = browser.post(url, data={"csrf": csrf}, files={"file": ("x.yaml", b"\xff\xfe")}, timeout=5)
    assert latin.status_code == 400 and "not UTF-8" in latin.text


def test_a_rule_limited_to_webhooks_is_previewed_on_its_events_on_the_page(admin_web) -> None:
    """`no-euro` limited to payment_failed: on a swept invoice inv_f stays written off, on its next
    payment_failed it would be skipped; the page shows both, each with its trigger."""
    browser = logged_in(admin_web)
    url = f"{admin_web.url}/admin/rules/diff"
    limited = NEW.replace("  - name: no-euro\n", "  - name: no-euro\n    on: [payment_failed]\n")
    answer = browser.post(url, data={"rules": limited, "csrf": token(browser.get(url, timeout=5).text)}, timeout=30)
    assert answer.status_code == 200, answer.text
    triggers = re.search(r'<p class="muted" id="diff-triggers">(.*?)</p>', answer.text, re.S)
    assert triggers and "payment_failed" in triggers.group(1)
    rows = re.findall(r"<tr><td><code>inv_f</code></td>(.*?)</tr>", answer.text, re.S)
    shown = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows]
    assert [(row[1], row[2]) for row in shown] == [("other_rule", "sweep"), ("no_longer_written_off", "payment_failed")]
