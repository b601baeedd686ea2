"""The /admin dashboard over real HTTP: login, decisions, dead letters and replay, held write-offs,
rules, chart; escaping and CSRF. The same pages in a real browser: test_admin_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests
from rq.registry import FailedJobRegistry

from reactor.jobs.audit import AuditFilter, AuditLog, AuditRecord
from reactor.jobs.held import HeldWriteOff, hold
from tests.helpers import WebServer
from tests.integration.helpers import ADMIN_PASSWORD, ADMIN_USER, log_in, make_event, token
from tests.integration.ops_helpers import make_dead_letter

pytestmark = pytest.mark.integration


@pytest.fixture
def secure_admin_web(admin_settings, redis_conn) -> Iterator[WebServer]:
    """The dashboard as deployed: its cookie only ever goes over HTTPS."""
    server = WebServer(replace(admin_settings, admin_insecure_cookie=False))
    yield server
    server.stop()


def written_off(invoice_id: str = "inv_a1", **fields: object) -> AuditRecord:
    values: dict = dict(
        event_id="ev_a1",
        event_type="payment_failed",
        invoice_id=invoice_id,
        outcome="written_off",
        action="write_off",
        rule="dunning-exhausted-small-balance",
        amount_due=1250,
        currency="USD",
        mode="live",
        rules_version="abc123def456",
        reason="rule dunning-exhausted-small-balance matched",
    )
    values.update(fields)
    return AuditRecord(**values)


def test_the_dashboard_does_not_exist_without_admin_credentials(web):
    assert requests.get(f"{web.url}/admin/", timeout=5).status_code == 404
    assert requests.get(f"{web.url}/admin/login", timeout=5).status_code == 404


def test_the_dashboard_sends_a_visitor_without_a_session_to_the_login_form(admin_web):
    response = requests.get(f"{admin_web.url}/admin/", timeout=5, allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")


def test_a_wrong_password_is_refused_and_the_dashboard_stays_closed(admin_web):
    browser, response = log_in(admin_web, password="guess")
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text
    assert browser.get(f"{admin_web.url}/admin/", timeout=5, allow_redirects=False).status_code == 302


def test_repeated_failed_logins_from_one_address_are_stopped(admin_web):
    statuses = [log_in(admin_web, password=f"guess-{n}")[1].status_code for n in range(11)]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429


def test_the_login_429_says_when_to_come_back(admin_web):
    for n in range(10):
        log_in(admin_web, password=f"guess-{n}")
    _, refused = log_in(admin_web)  # the right password too: over the limit it is not even checked
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 15 * 60
    assert f"try again in {refused.headers['Retry-After']} seconds" in refused.text


def set_cookie_of_login(server: WebServer) -> str:
    """The Set-Cookie of a successful login (the form's cookie carried by hand: requests would keep
    a Secure one for HTTPS)."""
    form = requests.get(f"{server.url}/admin/login", timeout=5)
    response = requests.post(
        f"{server.url}/admin/login",
        data={"user": ADMIN_USER, "password": ADMIN_PASSWORD, "csrf": token(form.text)},
        cookies={"reactor_admin": form.cookies["reactor_admin"]},
        timeout=5,
        allow_redirects=False,
    )
    assert response.status_code == 302
    return response.headers["Set-Cookie"]


def test_the_session_cookie_is_secure_by_default(secure_admin_web):
    cookie = set_cookie_of_login(secure_admin_web)
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite"} <= attributes


def test_admin_insecure_cookie_drops_secure_for_plain_http(admin_web):
    cookie = set_cookie_of_login(admin_web)
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert "secure" not in attributes and "httponly" in attributes


def test_after_logout_a_copy_of_the_session_cookie_no_longer_opens_the_dashboard(admin_web):
    browser, page = log_in(admin_web)
    assert page.status_code == 200 and "Dead letters" in page.text
    stolen = requests.Session()
    stolen.cookies.update(browser.cookies)
    assert stolen.get(f"{admin_web.url}/admin/", timeout=5, allow_redirects=False).status_code == 200

    logout = browser.post(f"{admin_web.url}/admin/logout", data={"csrf": token(page.text)}, timeout=5)

    assert logout.status_code == 200 and "/admin/login" in logout.url
    response = stolen.get(f"{admin_web.url}/admin/", timeout=5, allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"].startswith("/admin/login")


def test_a_session_id_removed_from_redis_ends_the_session(admin_web, redis_conn):
    browser, _ = log_in(admin_web)
    keys = redis_conn.keys("reactor:admin:session:*")
    assert len(keys) == 1 and 0 < redis_conn.ttl(keys[0]) <= 12 * 3600
    redis_conn.delete(*keys)
    assert browser.get(f"{admin_web.url}/admin/", timeout=5, allow_redirects=False).status_code == 302


def log_in_with_next(server: WebServer, query: str) -> requests.Response:
    """The login form's POST to /admin/login?`query` (sent as written) with the right password."""
    browser = requests.Session()
    form = browser.get(f"{server.url}/admin/login?{query}", timeout=5)
    assert form.status_code == 200
    return browser.post(
        f"{server.url}/admin/login?{query}",
        data={"user": ADMIN_USER, "password": ADMIN_PASSWORD, "csrf": token(form.text)},
        timeout=5,
        allow_redirects=False,
    )


def test_login_follows_next_to_a_dashboard_page(admin_web):
    response = log_in_with_next(admin_web, "next=%2Fadmin%2Fheld%3Fpage%3D2")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/held?page=2"


@pytest.mark.parametrize(
    "query",
    [
        "next=%2Fadmin%2F%0d%0aSet-Cookie:%20owned=1",
        "next=%2Fadmin%0aX:%20y",
        "next=%2Fadmin%0d",
        "next=%2Fadmin%2F%09x",
        "next=%2Fadmin%2F%00",
        "next=%2Fadmin%2F%250d%250a",
        "next=https://evil.example/admin",
        "next=//evil.example/admin",
        "next=%2Fadmin@evil.example",
        "next=%2Fadmin.evil.example",
        "next=%2Fadmin%5C..%5C..%5Cevil",
        "next=/elsewhere",
        "next=",
    ],
    ids=[
        "crlf",
        "lf",
        "cr",
        "tab",
        "nul",
        "double-encoded-crlf",
        "absolute",
        "scheme-relative",
        "at-host",
        "admin-prefix",
        "backslash",
        "other-path",
        "empty",
    ],
)
def test_login_with_a_next_that_is_not_a_dashboard_page_goes_home(admin_web, query):
    response = log_in_with_next(admin_web, query)
    assert response.status_code == 302, response.text[:300]
    assert response.headers["Location"] == "/admin/"
    assert "owned" not in response.headers.get("Set-Cookie", "")


@pytest.mark.parametrize(
    "job_id",
    ["a b", "caf%C3%A9", "x" * 300, "a.b", "a;b", "job%00id", "a/b", "a%2Fb", "%3Cscript%3E"],
    ids=["space", "non-ascii", "long", "dot", "semicolon", "nul", "slash", "encoded-slash", "markup"],
)
def test_a_malformed_job_id_in_the_replay_url_gets_400(admin_web, job_id):
    browser, page = log_in(admin_web)
    response = browser.post(
        f"{admin_web.url}/admin/dead-letters/{job_id}/replay", data={"csrf": token(page.text)}, timeout=5
    )
    assert response.status_code == 400
    assert "not a job id" in response.text


@pytest.mark.parametrize(
    "query",
    ["invoice=%00", "event=" + "e" * 5000, "outcome=no-such-outcome", "rule=%ff%fe", "limit=1e400", "limit=-1"],
    ids=["nul-invoice", "long-event", "unknown-outcome", "not-utf8-rule", "huge-limit", "negative-limit"],
)
def test_malformed_dashboard_filters_do_not_give_500(admin_web, query):
    browser, _ = log_in(admin_web)
    response = browser.get(f"{admin_web.url}/admin/?{query}", timeout=5)
    assert response.status_code < 500


def test_a_logged_in_operator_sees_a_recent_decision(admin_web, redis_conn):
    AuditLog(redis_conn).append(written_off())
    _, response = log_in(admin_web)
    assert response.status_code == 200
    row = re.search(r'<tr class="decision">(.*?)</tr>', response.text, re.S).group(1)
    assert "inv_a1" in row and "dunning-exhausted-small-balance" in row
    assert "12.50 USD" in row and "abc123def456" in row


def test_decisions_can_be_filtered_by_invoice_and_outcome(admin_web, redis_conn):
    audit = AuditLog(redis_conn)
    audit.append(written_off("inv_keep"))
    audit.append(written_off("inv_other"))
    audit.append(written_off("inv_keep", outcome="no_match", action="none", rule=None, amount_due=None))
    browser, _ = log_in(admin_web)
    page = browser.get(f"{admin_web.url}/admin/", params={"invoice": "inv_keep", "outcome": "written_off"}, timeout=5)
    rows = re.findall(r'<tr class="decision">(.*?)</tr>', page.text, re.S)
    assert len(rows) == 1
    assert "inv_keep" in rows[0] and "written_off" in rows[0]
    assert "inv_other" not in page.text


def test_event_content_is_escaped_on_the_page(admin_web, redis_conn):
    AuditLog(redis_conn).append(written_off("inv_<script>alert(1)</script>", reason='"><img src=x onerror=alert(2)>'))
    _, response = log_in(admin_web)
    assert "<script>alert(1)" not in response.text
    assert "inv_&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "<img src=x" not in response.text


def test_the_replay_button_requeues_a_dead_letter(admin_web, redis_conn, settings):
    event = make_event({"id": "inv_dead_1", "status": "not_paid", "amount_due": 500, "currency_code": "USD"})
    job = make_dead_letter(redis_conn, settings, event)
    registry = FailedJobRegistry(settings.queue_name, connection=redis_conn)
    browser, page = log_in(admin_web)
    assert f'data-job-id="{job.id}"' in page.text

    response = browser.post(
        f"{admin_web.url}/admin/dead-letters/{job.id}/replay", data={"csrf": token(page.text)}, timeout=5
    )

    assert response.status_code == 200
    assert f"Requeued {job.id}" in response.text
    assert job.id not in registry.get_job_ids()
    trail = AuditLog(redis_conn).query(AuditFilter(invoice_id="inv_dead_1"))
    assert [(r.outcome, r.job_id) for r in trail] == [("replayed", job.id)]


def test_a_replay_without_the_form_token_is_refused(admin_web, redis_conn, settings):
    event = make_event({"id": "inv_dead_2", "status": "not_paid", "amount_due": 500, "currency_code": "USD"})
    job = make_dead_letter(redis_conn, settings, event)
    browser, _ = log_in(admin_web)

    response = browser.post(f"{admin_web.url}/admin/dead-letters/{job.id}/replay", data={}, timeout=5)

    assert response.status_code == 400
    assert job.id in FailedJobRegistry(settings.queue_name, connection=redis_conn).get_job_ids()


def test_held_write_offs_are_listed_and_an_empty_list_says_so(admin_web, redis_conn):
    browser, page = log_in(admin_web)
    assert "No write-offs are held." in page.text
    hold(redis_conn, HeldWriteOff("inv_held_1", rule="big", amount_due=30000, currency="EUR", reason="budget spent"))
    page = browser.get(f"{admin_web.url}/admin/", timeout=5)
    assert "Held write-offs (1)" in page.text
    assert "inv_held_1" in page.text and "300.00 EUR" in page.text and "budget spent" in page.text


def test_the_rules_in_force_and_a_refused_edit_are_shown(admin_web, rules_file):
    browser, page = log_in(admin_web)
    version = re.search(r'id="rules-version">([0-9a-f]{12})<', page.text).group(1)
    assert "protect-enterprise" in page.text
    rules_file("version: 1\nmode: live\nrules:\n  - name: broken\n    action: write_of\n    when: []\n")

    page = browser.get(f"{admin_web.url}/admin/", timeout=5)

    assert re.search(r'id="rules-version">([0-9a-f]{12})<', page.text).group(1) == version
    refused = re.search(r'<div class="errors" id="refused-edit">(.*?)</div>', page.text, re.S).group(1)
    assert re.search(r"rules\.yaml:5:13: unknown action", refused)


def test_the_chart_has_one_bar_per_day_with_write_offs_per_currency(admin_web, redis_conn):
    audit = AuditLog(redis_conn)
    audit.append(written_off("inv_c1"))
    audit.append(written_off("inv_c2", amount_due=250))
    audit.append(written_off("inv_c3", amount_due=2000, currency="JPY"))
    _, page = log_in(admin_web)
    svgs = dict(re.findall(r'<svg[^>]*data-currency="([A-Z]{3})">(.*?)</svg>', page.text, re.S))
    assert set(svgs) == {"JPY", "USD"}
    assert len(re.findall(r'<rect class="bar"', svgs["USD"])) == 1
    assert re.search(r"<title>\d{4}-\d\d-\d\d: 15\.00 USD</title>", svgs["USD"])
    assert "2000 JPY" in svgs["JPY"]


def test_held_and_dead_letter_invoices_link_to_their_pages(admin_web, redis_conn, settings):
    hold(redis_conn, HeldWriteOff("inv_held_link", rule="big", amount_due=30000, currency="EUR", reason="budget"))
    make_dead_letter(redis_conn, settings, make_event({"id": "inv_dead_link", "status": "not_paid", "amount_due": 5}))
    _, page = log_in(admin_web)
    held = re.search(r'<section id="held">(.*?)</section>', page.text, re.S).group(1)
    dead = re.search(r'<section id="dead-letters">(.*?)</section>', page.text, re.S).group(1)
    assert 'href="/admin/invoices/inv_held_link"' in held and 'href="/admin/held/inv_held_link/release"' in held
    assert 'href="/admin/invoices/inv_dead_link"' in dead


def header(page: str) -> str:
    found = re.search(r"<header>(.*?)</header>", page, re.S)
    assert found, "no header"
    return found.group(1)


def test_every_page_shows_who_is_logged_in_error_pages_too(admin_web, redis_conn):
    AuditLog(redis_conn).append(written_off("inv_head"))
    browser, _ = log_in(admin_web)
    pages = [
        ("/admin/", 200),
        ("/admin/rules/diff", 200),
        ("/admin/invoices/inv_head", 200),
        ("/admin/invoices/inv_head/undo", 200),
        ("/admin/held/inv_head/release", 200),
        ("/admin/invoices/inv_nobody", 404),
        (f"/admin/invoices/{'x' * 101}/undo", 400),
        ("/admin/held/bad%20id/release", 400),
    ]
    for path, status in pages:
        answer = browser.get(admin_web.url + path, timeout=15)
        assert answer.status_code == status, path
        assert f"<span>{ADMIN_USER}</span>" in header(answer.text) and "Log out" in header(answer.text), path
    refused = browser.post(f"{admin_web.url}/admin/logout", data={}, timeout=5)  # no form token: before any view
    assert refused.status_code == 400 and ADMIN_USER in header(refused.text)

    anonymous = requests.post(f"{admin_web.url}/admin/logout", data={}, timeout=5)
    assert anonymous.status_code == 400 and "Log out" not in header(anonymous.text)
