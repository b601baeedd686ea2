"""Several Chargebee sites in one deployment, on real processes: two sandboxes (each its own API key,
its own invoices, the same invoice id on both), one Redis, the web app and `reactor worker`
processes. The home site (acme-us) is configured as before several sites (CHARGEBEE_SITE and
CHARGEBEE_API_BASE); acme-eu is named in REACTOR_SITES with its own REACTOR_SITE_ACME_EU_*."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from reactor.config import Settings
from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.keys import Keys
from reactor.sandbox import SandboxServer, SandboxState
from reactor.sites import Site
from tests.helpers import ReactorProcess, WebServer, worker_env
from tests.integration.helpers import EXHAUSTED_RULES, post_event

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "chargebee"
EU = "acme-eu"
US = "acme-us"
EU_KEY = "test_acme_eu_key_7f3a"
EU_USER, EU_PASSWORD = "chargebee-eu", "eu-webhook-password-91c"
EU_PREFIX = f"reactor:site:{EU}"


def real_event(invoice_id: str | None = None) -> dict[str, Any]:
    """Chargebee's sample `payment_failed` (tests/fixtures/chargebee), after the last dunning attempt,
    with a fresh event id (and, if given, another invoice id)."""
    event = json.loads((FIXTURES / "payment_failed.json").read_text())
    event["id"] = f"{event['id']}_{time.time_ns()}"
    invoice = event["content"]["invoice"]
    invoice.update(status="not_paid", dunning_status="exhausted", resource_version=invoice["resource_version"] + 1)
    invoice.pop("next_retry_at", None)
    if invoice_id is not None:
        invoice["id"] = invoice_id
        event["content"]["transaction"]["linked_invoices"][0]["invoice_id"] = invoice_id
    return event


@pytest.fixture
def eu_sandbox() -> Iterator[SandboxServer]:
    """The second site's Chargebee: a sandbox of its own that answers only to EU_KEY."""
    with SandboxServer(SandboxState(api_key=EU_KEY, site=EU)) as server:
        yield server


@pytest.fixture
def two_sites(settings: Settings, eu_sandbox: SandboxServer, rules_file) -> Settings:
    """acme-us (home, the `sandbox` fixture) and acme-eu (eu_sandbox), as load_settings makes them."""
    rules_file(EXHAUSTED_RULES)
    eu = Site(
        name=EU,
        api_base=eu_sandbox.api_base,
        api_key=EU_KEY,
        rate_limit=settings.chargebee_rate_limit,
        webhook_user=EU_USER,
        webhook_password=EU_PASSWORD,
        home=False,
    )
    return replace(settings, chargebee_site=US, other_sites=(eu,))


def sites_env(settings: Settings) -> dict[str, str]:
    """The environment of a `reactor` process for `settings` with REACTOR_SITES."""
    env = worker_env(settings)
    if settings.chargebee_site:
        env["CHARGEBEE_SITE"] = settings.chargebee_site
    if settings.other_sites:
        env["REACTOR_SITES"] = ",".join(site.name for site in settings.other_sites)
    for site in settings.other_sites:
        var = "REACTOR_SITE_" + site.name.upper().replace("-", "_")
        env[f"{var}_API_KEY"] = site.api_key
        env[f"{var}_API_BASE"] = site.api_base or ""
        env[f"{var}_RATE_LIMIT"] = str(site.rate_limit)
        env[f"{var}_WEBHOOK_USER"] = site.webhook_user
        env[f"{var}_WEBHOOK_PASSWORD"] = site.webhook_password
    return env


@pytest.fixture
def sites_web(two_sites: Settings) -> Iterator[WebServer]:
    server = WebServer(two_sites)
    yield server
    server.stop()


@pytest.fixture
def start_sites_worker(tmp_path: Path) -> Iterator[Callable[..., ReactorProcess]]:
    """`reactor worker` processes with REACTOR_SITES in their environment; stopped at the end."""
    started: list[ReactorProcess] = []

    def start(settings: Settings, *args: str) -> ReactorProcess:
        n = len(started) + 1
        name = f"sites-worker-{n}-{time.time_ns()}"
        worker = ReactorProcess(["worker", "--name", name, *args], sites_env(settings), tmp_path / f"worker-{n}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def audit(redis_conn: redis.Redis, prefix: str, invoice_id: str) -> list[str]:
    return [r.outcome for r in AuditLog(redis_conn, Keys(prefix).audit()).query(AuditFilter(invoice_id=invoice_id))]


# -- webhooks ---------------------------------------------------------------------------------------


def test_each_site_has_its_url_and_its_credentials(sites_web: WebServer, redis_conn: redis.Redis) -> None:
    event = real_event()
    eu_url = f"{sites_web.webhook_url}/{EU}"

    refused = post_event(eu_url, event)  # acme-us's credentials on acme-eu's URL
    assert refused.status_code == 401
    assert not redis_conn.exists(Keys(EU_PREFIX).event(event["id"]))

    accepted = post_event(eu_url, event, auth=(EU_USER, EU_PASSWORD))
    assert accepted.status_code == 200, accepted.text
    assert redis_conn.exists(Keys(EU_PREFIX).event(event["id"]))
    assert not redis_conn.exists(Keys("reactor").event(event["id"]))  # not the home site's

    # acme-eu's credentials on the home site's URLs: refused too
    assert post_event(sites_web.webhook_url, event, auth=(EU_USER, EU_PASSWORD)).status_code == 401
    assert post_event(f"{sites_web.webhook_url}/{US}", event, auth=(EU_USER, EU_PASSWORD)).status_code == 401

    # the same event id on the home site is another event: not a duplicate of acme-eu's
    home = post_event(sites_web.webhook_url, event)
    assert (home.status_code, home.json()["status"]) == (200, "queued")
    assert redis_conn.exists(Keys("reactor").event(event["id"]))
    again = post_event(f"{sites_web.webhook_url}/{US}", event)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")


def test_an_unknown_site_is_404_and_nothing_is_stored(sites_web: WebServer, redis_conn: redis.Redis) -> None:
    event = real_event()
    answer = post_event(f"{sites_web.webhook_url}/acme-asia", event, auth=(EU_USER, EU_PASSWORD))
    assert answer.status_code == 404
    assert answer.json()["error"] == "unknown_site"
    assert EU not in answer.text and US not in answer.text  # the public URL does not list the sites
    assert [k for k in redis_conn.scan_iter("*") if b":event:" in k] == []


def test_without_a_home_site_the_plain_url_places_no_event(
    two_sites: Settings, redis_conn: redis.Redis, eu_sandbox: SandboxServer
) -> None:
    only_named = replace(two_sites, chargebee_site=None, chargebee_api_base=None, home_configured=False)
    server = WebServer(only_named)
    try:
        event = real_event()
        answer = post_event(server.webhook_url, event, auth=(EU_USER, EU_PASSWORD))
        assert answer.status_code == 404
        assert "/webhooks/chargebee/<site>" in answer.json()["message"]
        assert [k for k in redis_conn.scan_iter("*") if b":event:" in k] == []
        assert post_event(f"{server.webhook_url}/{EU}", event, auth=(EU_USER, EU_PASSWORD)).status_code == 200
        assert post_event(f"{server.webhook_url}/{US}", event).status_code == 404
    finally:
        server.stop()


def test_a_site_url_keeps_the_webhook_checks(sites_web: WebServer, two_sites: Settings) -> None:
    eu_url = f"{sites_web.webhook_url}/{EU}"
    too_big = b"{" + b" " * two_sites.max_body_bytes + b"}"
    assert post_event(eu_url, too_big, auth=(EU_USER, EU_PASSWORD)).status_code == 413
    assert post_event(eu_url, b"{}", auth=(EU_USER, EU_PASSWORD)).status_code == 400
    bad = copy.deepcopy(real_event())
    answer = post_event(eu_url, bad, auth=(EU_USER, EU_PASSWORD), headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415


def test_a_site_url_answers_503_while_redis_is_down(two_sites: Settings) -> None:
    down = replace(two_sites, redis_url="redis://127.0.0.1:1/0", redis_socket_timeout=0.5)
    server = WebServer(down)
    try:
        answer = post_event(f"{server.webhook_url}/{EU}", real_event(), auth=(EU_USER, EU_PASSWORD))
        assert answer.status_code == 503
    finally:
        server.stop()
