"""The dashboard of a two-site deployment over real HTTP: `?site=` picks the site a page shows and
acts on (held, release, trace, undo), the front page shows every site's budgets and Chargebee calls,
and what belongs to the deployment (sessions, the signing key, failed logins) stays under its own
prefix, never a site's."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone

import pytest
import requests
from rq import Queue

from reactor.jobs.audit import AuditLog
from reactor.jobs.budget import budget_keys
from reactor.jobs.context import build_rate_limit
from reactor.jobs.held import HeldWriteOff, hold, list_held
from reactor.keys import Keys
from tests.helpers import WebServer
from tests.integration.helpers import ADMIN_PASSWORD, ADMIN_USER, exhausted_invoice, logged_in, token
from tests.integration.ops_helpers import make_dead_letter, written_off
from tests.integration.sites_helpers import HOME, OTHER, TwoSites, load_two_sites, other_sandbox  # noqa: F401

pytestmark = pytest.mark.integration

BUDGET_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500, EUR: 450}
  max_per_day: {USD: 1000, EUR: 900}
rules:
  - name: dunning-exhausted
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""


@pytest.fixture
def sites(settings, other_sandbox, redis_conn, rules_file) -> TwoSites:  # noqa: F811
    rules_file(BUDGET_RULES)
    admin = replace(settings, admin_user=ADMIN_USER, admin_password=ADMIN_PASSWORD, admin_insecure_cookie=True)
    return load_two_sites(admin, other_sandbox)


@pytest.fixture
def site_web(sites: TwoSites, redis_conn) -> Iterator[WebServer]:
    server = WebServer(sites.settings)
    yield server
    server.stop()


def held_rows(page: str) -> list[str]:
    return re.findall(r'<tr class="held" data-invoice-id="[^"]*">(.*?)</tr>', page, re.S)


def test_the_site_filter_shows_and_releases_the_named_sites_hold(sites, site_web, redis_conn):
    for site, amount in ((HOME, 500), (OTHER, 700)):
        item = HeldWriteOff("inv_same", rule="r", amount_due=amount, currency="EUR", reason=f"budget {site}", event={})
        hold(redis_conn, item, sites.site(site).key_prefix)
    browser = logged_in(site_web)

    home = browser.get(f"{site_web.url}/admin/", timeout=5).text
    [row] = held_rows(home)
    assert "5.00 EUR" in row and f'<span id="current-site">{HOME}</span>' in home
    assert f'<option value="{OTHER}">' in home
    other = browser.get(f"{site_web.url}/admin/?site={OTHER}", timeout=5).text
    [row] = held_rows(other)
    assert "7.00 EUR" in row
    link = f"/admin/held/inv_same/release?site={OTHER}"
    assert f'href="{link}"' in html.unescape(row).replace("&amp;", "&")

    confirm = browser.get(site_web.url + link, timeout=5)
    assert re.search(r'id="held-amount">7\.00 EUR<', confirm.text)
    done = browser.post(site_web.url + link, data={"csrf": token(confirm.text), "reason": "raised"}, timeout=5)
    assert done.status_code == 200 and "Released inv_same" in html.unescape(done.text)
    assert f'<span id="current-site">{OTHER}</span>' in done.text  # back on the same site's page
    assert list_held(redis_conn, sites.site(OTHER).key_prefix) == []
    assert [h.amount_due for h in list_held(redis_conn, sites.site(HOME).key_prefix)] == [500]
    assert Queue(f"reactor:{OTHER}", connection=redis_conn).count == 1
    assert Queue("reactor", connection=redis_conn).count == 0


def test_an_unknown_site_is_a_404_once_logged_in_and_names_nothing_before(sites, site_web):
    anonymous = requests.get(f"{site_web.url}/admin/?site=acme-us", timeout=5, allow_redirects=False)
    assert anonymous.status_code == 302 and "/admin/login" in anonymous.headers["Location"]
    assert OTHER not in anonymous.text
    browser = logged_in(site_web)
    refused = browser.get(f"{site_web.url}/admin/?site=acme-us", timeout=5)
    assert refused.status_code == 404
    assert f"no Chargebee site named &#39;acme-us&#39; is configured (sites: {HOME}, {OTHER})" in refused.text


def test_sessions_and_login_counters_are_the_deployments(sites, site_web, redis_conn):
    failed = requests.Session()
    page = failed.get(f"{site_web.url}/admin/login", timeout=5).text
    failed.post(f"{site_web.url}/admin/login", data={"csrf": token(page), "user": ADMIN_USER, "password": "no"})
    browser = logged_in(site_web)
    assert browser.get(f"{site_web.url}/admin/?site={OTHER}", timeout=5).status_code == 200

    keys = sorted(key.decode() for key in redis_conn.keys("*admin*"))
    assert any(key.startswith("reactor:admin:session:") for key in keys), keys
    assert "reactor:admin:secret_key" in keys
    assert any(key.startswith("reactor:admin:") and "login" in key for key in keys), keys
    assert not [key for key in keys if key.startswith("reactor:site:")]


def test_the_trace_page_reads_the_named_site(sites, site_web, redis_conn):
    AuditLog(redis_conn, Keys(sites.site(OTHER).key_prefix).audit()).append(written_off("inv_t", "ev_eu"))
    browser = logged_in(site_web)

    other = browser.get(f"{site_web.url}/admin/invoices/inv_t?site={OTHER}", timeout=5)
    assert other.status_code == 200 and "ev_eu" in other.text
    home = browser.get(f"{site_web.url}/admin/invoices/inv_t?site={HOME}", timeout=5)
    assert home.status_code == 404 and "ev_eu" not in home.text
    by_event = browser.get(f"{site_web.url}/admin/invoices/ev_eu?site={OTHER}", timeout=5)
    assert by_event.url.endswith(f"/admin/invoices/inv_t?site={OTHER}")


def test_the_front_page_shows_each_sites_budgets_and_calls(sites, site_web, redis_conn):
    now = datetime.now(timezone.utc)
    day_key, _hour = budget_keys(sites.site(OTHER).key_prefix, now)
    redis_conn.hset(day_key, "EUR", 12345)
    limit = build_rate_limit(sites.site(OTHER), redis_conn)
    for _ in range(3):
        limit.acquire()
    limit.pause(30)
    browser = logged_in(site_web)

    page = browser.get(f"{site_web.url}/admin/", timeout=5).text
    rows = dict(re.findall(r'<tr class="site" data-site="([^"]+)">(.*?)</tr>', page, re.S))
    assert set(rows) == {HOME, OTHER}
    assert "EUR 123.45 of 900 used today" in rows[OTHER] and "EUR 0.00 of 900 used today" in rows[HOME]
    assert "3 of 150 per 60 s" in rows[OTHER] and "0 of 150 per 60 s" in rows[HOME]
    assert re.search(r'class="num throttled">1<', rows[OTHER]) and re.search(r'class="num throttled">0<', rows[HOME])


def test_undo_acts_on_the_pages_site(sites, our_write_off, redis_conn, sandbox, rules_file):
    """`our_write_off` is the home site's; acme-eu holds an unpaid invoice of the same id."""
    invoice_id = our_write_off["id"]
    exhausted_invoice(sites.other_sandbox, id=invoice_id)
    server = WebServer(sites.settings)
    try:
        browser = logged_in(server)
        confirm = browser.get(f"{server.url}/admin/invoices/{invoice_id}/undo?site={OTHER}", timeout=5)
        refused = browser.post(
            confirm.url, data={"csrf": token(confirm.text), "reason": "dispute"}, timeout=5, allow_redirects=True
        )
        assert "Not undone" in html.unescape(refused.text)
        assert sites.other_sandbox.state.write_off_calls() == []
        assert sandbox.state.get_invoice(invoice_id)["status"] == "paid"

        confirm = browser.get(f"{server.url}/admin/invoices/{invoice_id}/undo?site={HOME}", timeout=5)
        done = browser.post(confirm.url, data={"csrf": token(confirm.text), "reason": "dispute"}, timeout=5)
        assert f"reactor held release --site {HOME} {invoice_id}" in html.unescape(done.text)
        assert sandbox.state.get_invoice(invoice_id)["status"] != "paid"
    finally:
        server.stop()


def test_a_dead_letter_is_replayed_on_its_sites_queue(sites, site_web, redis_conn):
    other = sites.site(OTHER)
    event = {"id": "ev_dash_eu", "event_type": "payment_failed", "content": {"invoice": {"id": "inv_q"}}}
    redis_conn.set(Keys(other.key_prefix).event(event["id"]), json.dumps(event))
    job = make_dead_letter(redis_conn, other, event, store=False)
    browser = logged_in(site_web)
    home = browser.get(f"{site_web.url}/admin/", timeout=5).text
    assert f'data-job-id="{job.id}"' not in home  # acme's page: acme's dead letters only
    page = browser.get(f"{site_web.url}/admin/?site={OTHER}", timeout=5).text
    assert f'data-job-id="{job.id}"' in page
    assert f'<input type="hidden" name="site" value="{OTHER}">' in page  # the filters keep the site

    done = browser.post(
        f"{site_web.url}/admin/dead-letters/{job.id}/replay?site={OTHER}", data={"csrf": token(page)}, timeout=5
    )
    assert f"Requeued {job.id}" in done.text
    assert Queue(f"reactor:{OTHER}", connection=redis_conn).count == 1
    assert Queue("reactor", connection=redis_conn).count == 0


def test_the_rules_diff_page_lists_the_sites_invoices(sites, site_web, redis_conn, sandbox):
    exhausted_invoice(sites.other_sandbox, id="inv_diff_eu", currency_code="EUR", amount_due=1500)
    browser = logged_in(site_web)
    form = browser.get(f"{site_web.url}/admin/rules/diff?site={OTHER}", timeout=5).text
    new_rules = BUDGET_RULES.replace("action: write_off", "action: skip")

    other = browser.post(
        f"{site_web.url}/admin/rules/diff?site={OTHER}", data={"csrf": token(form), "rules": new_rules}, timeout=5
    )
    home = browser.post(
        f"{site_web.url}/admin/rules/diff?site={HOME}", data={"csrf": token(form), "rules": new_rules}, timeout=5
    )
    assert other.status_code == 200 and "inv_diff_eu" in other.text
    assert home.status_code == 200 and "inv_diff_eu" not in home.text
    assert sites.other_sandbox.state.calls(path_contains="/invoices") and not sandbox.state.write_off_calls()
