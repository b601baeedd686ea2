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
import requests

from reactor.config import Settings
from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.keys import Keys
from reactor.sandbox import SandboxServer, SandboxState
from reactor.sites import Site
from tests.helpers import ReactorProcess, WebServer, wait_for, worker_env
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
    metrics = requests.get(f"{sites_web.url}/metrics", timeout=5).text  # each delivery counted on its site
    series = 'reactor_events_received_total{{event_type="{}",outcome="{}",site="{}"}} '
    for labels in (("payment_failed", "queued", EU), ("payment_failed", "queued", US), ("unknown", "unauthorized", EU)):
        assert series.format(*labels) in metrics, labels
    assert series.format("payment_failed", "duplicate", US) in metrics


def test_one_sites_failed_logins_do_not_hold_back_another_sites_deliveries(
    two_sites: Settings, redis_conn: redis.Redis
) -> None:
    # Chargebee posts every site's webhooks from the same addresses: acme-eu's webhook set up with
    # wrong credentials must not get acme-us's deliveries refused with 429.
    server = WebServer(replace(two_sites, auth_failure_limit="3/minute"))
    try:
        eu_url = f"{server.webhook_url}/{EU}"
        answers = [post_event(eu_url, real_event(), auth=(EU_USER, "wrong")).status_code for _ in range(5)]
        assert answers[-1] == 429
        assert post_event(server.webhook_url, real_event()).status_code == 200
        assert post_event(eu_url, real_event(), auth=(EU_USER, EU_PASSWORD)).status_code == 429
    finally:
        server.stop()


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


# -- workers ----------------------------------------------------------------------------------------


def written_off(redis_conn: redis.Redis, prefix: str, invoice_id: str) -> bool:
    return "written_off" in audit(redis_conn, prefix, invoice_id)


def test_the_same_invoice_id_on_two_sites_is_written_off_once_on_each(
    sandbox: SandboxServer,
    eu_sandbox: SandboxServer,
    two_sites: Settings,
    sites_web: WebServer,
    redis_conn: redis.Redis,
    start_sites_worker,
) -> None:
    # The same invoice id and the same event id on both sites: ids are unique only within a site.
    us_event = real_event()
    eu_event = copy.deepcopy(us_event)
    invoice_id = us_event["content"]["invoice"]["id"]
    sandbox.state.add_invoice(**us_event["content"]["invoice"])
    eu_sandbox.state.add_invoice(**eu_event["content"]["invoice"])  # the same id, another site's invoice
    start_sites_worker(two_sites)

    assert post_event(sites_web.webhook_url, us_event).status_code == 200
    assert post_event(f"{sites_web.webhook_url}/{EU}", eu_event, auth=(EU_USER, EU_PASSWORD)).status_code == 200
    wait_for(lambda: written_off(redis_conn, "reactor", invoice_id), timeout=30, what="acme-us's write-off")
    wait_for(lambda: written_off(redis_conn, EU_PREFIX, invoice_id), timeout=30, what="acme-eu's write-off")

    # each sandbox answers only to its own API key: a call with the other's would have been 401
    us_calls, eu_calls = sandbox.state.write_off_calls(), eu_sandbox.state.write_off_calls()
    assert [c["status"] for c in us_calls] == [200] and [c["status"] for c in eu_calls] == [200]
    assert all(c["status"] != 401 for c in sandbox.state.calls() + eu_sandbox.state.calls())
    us_key = us_calls[0]["headers"]["chargebee-idempotency-key"]
    eu_key = eu_calls[0]["headers"]["chargebee-idempotency-key"]
    assert us_key != eu_key
    assert sandbox.state.get_invoice(invoice_id)["status"] == "paid"
    assert eu_sandbox.state.get_invoice(invoice_id)["status"] == "paid"
    # each site's records under its own keys, once
    assert audit(redis_conn, "reactor", invoice_id).count("written_off") == 1
    assert audit(redis_conn, EU_PREFIX, invoice_id).count("written_off") == 1


def test_a_worker_can_serve_one_site(
    sandbox: SandboxServer,
    eu_sandbox: SandboxServer,
    two_sites: Settings,
    sites_web: WebServer,
    redis_conn: redis.Redis,
    start_sites_worker,
) -> None:
    us_event, eu_event = real_event("inv_us_only"), real_event("inv_eu_only")
    sandbox.state.add_invoice(**us_event["content"]["invoice"])
    eu_sandbox.state.add_invoice(**eu_event["content"]["invoice"])
    start_sites_worker(two_sites, "--site", EU)
    assert post_event(sites_web.webhook_url, us_event).status_code == 200
    assert post_event(f"{sites_web.webhook_url}/{EU}", eu_event, auth=(EU_USER, EU_PASSWORD)).status_code == 200
    wait_for(lambda: written_off(redis_conn, EU_PREFIX, "inv_eu_only"), timeout=30, what="acme-eu's write-off")
    assert sandbox.state.write_off_calls() == []  # acme-us's queue is nobody's here
    assert redis_conn.llen("rq:queue:reactor") == 1


def test_an_unknown_site_name_stops_the_worker(two_sites: Settings, start_sites_worker) -> None:
    worker = start_sites_worker(two_sites, "--site", "acme-asia")
    assert worker.proc.wait(30) == 78
    assert "acme-asia" in worker.output()


def test_a_429_storm_on_one_site_leaves_the_others_write_offs_on_time(
    sandbox: SandboxServer,
    eu_sandbox: SandboxServer,
    two_sites: Settings,
    sites_web: WebServer,
    redis_conn: redis.Redis,
    start_sites_worker,
) -> None:
    # The storm is on the home site, whose queue the worker lists first.
    sandbox.state.add_fault(match="any", status=429, retry_after=60, times=None)
    post_us_events(sandbox, sites_web, [f"inv_us_{n}" for n in range(30)])
    start_sites_worker(two_sites)  # one worker for both sites: the storm must not hold it
    wait_for(lambda: sandbox.state.calls(), timeout=30, what="acme-us's first call")
    eu_on_time(eu_sandbox, sites_web, redis_conn, within=5)

    assert all(c["status"] == 429 for c in sandbox.state.calls())
    assert redis_conn.pttl(f"reactor:rl:paused:{US}") > 0  # acme-us's calls are paused...
    assert not redis_conn.exists(f"{EU_PREFIX}:rl:paused:{EU}")  # ...acme-eu's are not


def test_a_site_at_its_rate_limit_does_not_hold_back_another(
    sandbox: SandboxServer,
    eu_sandbox: SandboxServer,
    two_sites: Settings,
    sites_web: WebServer,
    redis_conn: redis.Redis,
    start_sites_worker,
) -> None:
    # acme-us: one call every 4 s, so each of its jobs would wait for a slot; acme-eu: plenty.
    eu = replace(two_sites.other_sites[0], rate_limit=1000)
    slow_us = replace(two_sites, chargebee_rate_limit=1, rate_limit_window=4, other_sites=(eu,))
    post_us_events(sandbox, sites_web, [f"inv_us_{n}" for n in range(30)])
    start_sites_worker(slow_us)
    wait_for(lambda: sandbox.state.calls(), timeout=30, what="acme-us's first call")
    eu_on_time(eu_sandbox, sites_web, redis_conn, within=3)


def test_a_slow_site_takes_its_turn_with_the_others(
    sandbox: SandboxServer,
    eu_sandbox: SandboxServer,
    two_sites: Settings,
    sites_web: WebServer,
    redis_conn: redis.Redis,
    start_sites_worker,
) -> None:
    # acme-us answers every call in 0.6 s, and 30 of its events wait: the worker takes the queues in
    # turn, so acme-eu's event waits for one acme-us job at most, not for all 30.
    sandbox.state.add_fault(match="any", latency_ms=600, times=None)
    post_us_events(sandbox, sites_web, [f"inv_us_{n}" for n in range(30)])
    start_sites_worker(two_sites)
    wait_for(lambda: sandbox.state.calls(), timeout=30, what="acme-us's first call")
    eu_on_time(eu_sandbox, sites_web, redis_conn, within=5)


def post_us_events(sandbox: SandboxServer, web: WebServer, invoice_ids: list[str]) -> None:
    """An acme-us write-off candidate for each invoice, in its sandbox and posted to its URL."""
    for invoice_id in invoice_ids:
        event = real_event(invoice_id)
        sandbox.state.add_invoice(**event["content"]["invoice"])
        assert post_event(web.webhook_url, event).status_code == 200


def eu_on_time(eu_sandbox: SandboxServer, web: WebServer, redis_conn: redis.Redis, within: float) -> None:
    """Three acme-eu write-offs, one after the other, each done `within` seconds of its event."""
    for n in range(3):
        event = real_event(f"inv_eu_{n}")
        eu_sandbox.state.add_invoice(**event["content"]["invoice"])
        posted = time.monotonic()
        assert post_event(f"{web.webhook_url}/{EU}", event, auth=(EU_USER, EU_PASSWORD)).status_code == 200
        wait_for(lambda n=n: written_off(redis_conn, EU_PREFIX, f"inv_eu_{n}"), timeout=30, what="acme-eu's write-off")
        took = time.monotonic() - posted
        assert took < within, f"acme-eu's write-off took {took:.1f} s: held back by acme-us"


EU_ONLY_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500}
rules:
  - name: eu-exhausted
    sites: [acme-eu]
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""


def test_a_rule_limited_to_one_site_writes_off_only_there(
    sandbox: SandboxServer,
    eu_sandbox: SandboxServer,
    two_sites: Settings,
    sites_web: WebServer,
    redis_conn: redis.Redis,
    start_sites_worker,
    rules_file,
) -> None:
    rules_file(EU_ONLY_RULES)
    us_event, eu_event = real_event(), real_event()
    invoice_id = us_event["content"]["invoice"]["id"]
    sandbox.state.add_invoice(**us_event["content"]["invoice"])
    eu_sandbox.state.add_invoice(**eu_event["content"]["invoice"])
    start_sites_worker(two_sites)
    assert post_event(sites_web.webhook_url, us_event).status_code == 200
    assert post_event(f"{sites_web.webhook_url}/{EU}", eu_event, auth=(EU_USER, EU_PASSWORD)).status_code == 200
    wait_for(lambda: written_off(redis_conn, EU_PREFIX, invoice_id), timeout=30, what="acme-eu's write-off")
    wait_for(lambda: audit(redis_conn, "reactor", invoice_id), timeout=30, what="acme-us's decision")
    assert audit(redis_conn, "reactor", invoice_id) == ["no_match"] or "written_off" not in audit(
        redis_conn, "reactor", invoice_id
    )
    assert sandbox.state.write_off_calls() == []


# -- upgrade ----------------------------------------------------------------------------------------


def test_a_single_site_deployment_keeps_its_data_when_a_second_site_is_added(
    sandbox: SandboxServer,
    eu_sandbox: SandboxServer,
    settings: Settings,
    two_sites: Settings,
    redis_conn: redis.Redis,
    start_sites_worker,
) -> None:
    # Before: one site, configured as it always was (no REACTOR_SITES, no CHARGEBEE_SITE).
    before = settings
    assert before.other_sites == () and before.chargebee_site is None
    event = real_event()
    invoice_id = event["content"]["invoice"]["id"]
    sandbox.state.add_invoice(**event["content"]["invoice"])
    web = WebServer(before)
    try:
        assert post_event(web.webhook_url, event).status_code == 200
        worker = start_sites_worker(before)
        wait_for(lambda: written_off(redis_conn, "reactor", invoice_id), timeout=30, what="the write-off before")
        worker.stop()
    finally:
        web.stop()
    records_before = audit(redis_conn, "reactor", invoice_id)

    # After: the same home site, and acme-eu added with REACTOR_SITES.
    after = replace(two_sites, chargebee_site=None)
    web = WebServer(after)
    try:
        again = post_event(web.webhook_url, event)  # Chargebee's retry of the same event: still a duplicate
        assert (again.status_code, again.json()["status"]) == (200, "duplicate")
        later = real_event()  # a later event for the invoice already written off
        assert post_event(web.webhook_url, later).status_code == 200
        start_sites_worker(after)
        wait_for(
            lambda: len(audit(redis_conn, "reactor", invoice_id)) > len(records_before),
            timeout=30,
            what="the later event's decision",
        )
    finally:
        web.stop()
    records = audit(redis_conn, "reactor", invoice_id)
    assert records[: len(records_before)] == records_before  # the audit written before is found
    assert records.count("written_off") == 1  # the mark written before is honoured
    assert [c["status"] for c in sandbox.state.write_off_calls()] == [200]
    assert eu_sandbox.state.calls() == []


def test_a_site_at_its_limit_gets_every_write_off_done_at_its_pace(
    sandbox: SandboxServer,
    eu_sandbox: SandboxServer,
    two_sites: Settings,
    sites_web: WebServer,
    redis_conn: redis.Redis,
    start_sites_worker,
) -> None:
    # acme-us: 4 calls every 3 s, 6 write-offs (12 calls) waiting: the shared worker puts back the
    # jobs that find no slot rather than hold them, and none is lost, failed or written off twice.
    slow_us = replace(two_sites, chargebee_rate_limit=4, rate_limit_window=3)
    ids = [f"inv_pace_{n}" for n in range(6)]
    post_us_events(sandbox, sites_web, ids)
    start_sites_worker(slow_us)
    wait_for(lambda: all(written_off(redis_conn, "reactor", i) for i in ids), timeout=60, what="every write-off")
    assert sorted(c["path"].split("/")[-2] for c in sandbox.state.write_off_calls()) == ids
    assert all(c["status"] == 200 for c in sandbox.state.calls())  # never past the limit: no 429
    outcomes = [o for i in ids for o in audit(redis_conn, "reactor", i)]
    assert set(outcomes) == {"written_off"}, outcomes


def test_a_site_whose_calls_hang_leaves_a_worker_for_the_others(
    sandbox: SandboxServer,
    eu_sandbox: SandboxServer,
    two_sites: Settings,
    sites_web: WebServer,
    redis_conn: redis.Redis,
    start_sites_worker,
) -> None:
    # Two workers serve both sites; acme-us's calls hang and four of its write-offs wait. Its jobs
    # run on all but one worker, so the second worker keeps off them and writes off acme-eu's event
    # while acme-us's first call still hangs (round robin alone would let it take acme-us's next job
    # and hang too).
    patient = replace(two_sites, http_timeout=60.0, job_timeout=900)
    sandbox.state.hold("any")
    try:
        post_us_events(sandbox, sites_web, [f"inv_hang_{n}" for n in range(4)])
        start_sites_worker(patient)
        assert sandbox.state.wait_held(1, timeout=30) == 1, "acme-us's first call never came"
        second = start_sites_worker(patient)

        event = real_event("inv_eu_while_us_hangs")
        eu_sandbox.state.add_invoice(**event["content"]["invoice"])
        assert post_event(f"{sites_web.webhook_url}/{EU}", event, auth=(EU_USER, EU_PASSWORD)).status_code == 200
        wait_for(
            lambda: written_off(redis_conn, EU_PREFIX, "inv_eu_while_us_hangs"),
            timeout=60,
            what=f"acme-eu's write-off while acme-us hangs; second worker:\n{second.output()[-3000:]}",
        )
        assert sandbox.state.wait_held(2, timeout=0) == 1  # acme-us: still the one call in flight
    finally:
        sandbox.state.release_held()
    ids = [f"inv_hang_{n}" for n in range(4)]
    wait_for(lambda: all(written_off(redis_conn, "reactor", i) for i in ids), timeout=60, what="acme-us's write-offs")


def test_a_triaged_event_is_evaluated_next_while_another_site_has_jobs_waiting(
    sandbox: SandboxServer,
    eu_sandbox: SandboxServer,
    two_sites: Settings,
    sites_web: WebServer,
    redis_conn: redis.Redis,
    start_sites_worker,
) -> None:
    # One worker; acme-us has evaluations queued (each call takes 0.3 s). acme-eu's event passes two
    # jobs, its triage and its evaluation: the worker takes the second right after the first rather
    # than serving acme-us in between.
    sandbox.state.add_fault(match="any", latency_ms=300, times=None)
    post_us_events(sandbox, sites_web, [f"inv_us_{n}" for n in range(12)])
    worker = start_sites_worker(two_sites)
    wait_for(lambda: redis_conn.llen("rq:queue:reactor") >= 8, timeout=30, what="acme-us's evaluations queued")

    event = real_event("inv_eu_next")
    eu_sandbox.state.add_invoice(**event["content"]["invoice"])
    assert post_event(f"{sites_web.webhook_url}/{EU}", event, auth=(EU_USER, EU_PASSWORD)).status_code == 200
    wait_for(lambda: written_off(redis_conn, EU_PREFIX, "inv_eu_next"), timeout=60, what="acme-eu's write-off")

    def started() -> list[str]:
        lines = [line for line in worker.output().splitlines() if ": reactor" in line and "Worker " in line]
        return [line for line in lines if "Job OK" not in line and "cleaning registries" not in line]

    def after_triage() -> list[str]:
        lines = started()
        triage = next(i for i, line in enumerate(lines) if f"woken by payment_failed {event['id']}," in line)
        return lines[triage + 1 :]

    # acme-us's jobs were waiting: one of them runs after acme-eu's (logged once it starts)
    wait_for(lambda: any(": reactor: evaluate" in line for line in after_triage()[1:]), timeout=60, what="acme-us")
    assert f"evaluate payment_failed {event['id']} " in after_triage()[0], after_triage()[:1]


def test_the_jobs_of_a_site_at_its_limit_wait_in_its_queue(
    sandbox: SandboxServer,
    eu_sandbox: SandboxServer,
    two_sites: Settings,
    sites_web: WebServer,
    redis_conn: redis.Redis,
    start_sites_worker,
) -> None:
    # acme-us may make one call a minute: its first evaluation spends it and is put back for its
    # write-off's slot; the worker then passes acme-us's queue over rather than taking each of its
    # jobs only to put it back, and serves acme-eu meanwhile.
    slow_us = replace(two_sites, chargebee_rate_limit=1, rate_limit_window=60)
    post_us_events(sandbox, sites_web, [f"inv_wait_{n}" for n in range(3)])
    start_sites_worker(slow_us)
    wait_for(lambda: redis_conn.zcard("rq:scheduled:reactor") == 1, timeout=30, what="the first job put back")

    eu_on_time(eu_sandbox, sites_web, redis_conn, within=30)

    assert redis_conn.llen("rq:queue:reactor") == 2  # the other two: still queued, never taken
    assert redis_conn.zcard("rq:scheduled:reactor") == 1
    assert len(sandbox.state.calls()) == 1
    # acme-eu's queue, listened to alone meanwhile, left nothing in RQ's intermediate list (RQ's
    # maintenance would fail what it finds there a minute later as stuck)
    assert redis_conn.llen(f"rq:queue:reactor:{EU}:intermediate") == 0
