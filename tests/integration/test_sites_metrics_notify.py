"""/metrics and the digest of a two-site deployment: every per-site family has a sample per site,
labelled `site`, read from that site's keys; one sender reads every site's notices and dead
letters into one message whose lines name their site, under one lock under the deployment's prefix."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests

from reactor.chargebee.ratelimit import ChargebeeRateLimit
from reactor.config import load_settings
from reactor.console.notify import Notifier
from reactor.jobs.audit import AuditLog
from reactor.jobs.held import HeldWriteOff, hold
from reactor.keys import Keys
from reactor.notices import Notices
from tests.helpers import WebServer, wait_for
from tests.integration.ops_helpers import make_dead_letter, written_off
from tests.integration.sites_helpers import HOME, OTHER, TwoSites, load_two_sites, other_sandbox  # noqa: F401
from tests.integration.test_metrics import sample
from tests.integration.test_notify import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def sites(settings, other_sandbox, redis_conn, receiver) -> TwoSites:  # noqa: F811
    return load_two_sites(replace(settings, notify_url=receiver.url, notify_interval=1), other_sandbox)


def seed(sites: TwoSites, redis_conn) -> None:
    """acme-eu: a held write-off, a dead letter, a write-off and two 429s; acme: a held write-off."""
    for site in (HOME, OTHER):
        item = HeldWriteOff("inv_same", rule="r", amount_due=500, currency="USD", reason="budget", event={})
        hold(redis_conn, item, sites.site(site).key_prefix)
    other = sites.site(OTHER)
    event = {"id": "ev_dead_eu", "event_type": "payment_failed", "content": {"invoice": {"id": "inv_d"}}}
    make_dead_letter(redis_conn, other, event, store=False)
    AuditLog(redis_conn, Keys(other.key_prefix).audit()).append(written_off("inv_w", "ev_w", amount=1250))
    limit = ChargebeeRateLimit(redis_conn, 150, scope=OTHER, key_prefix=other.key_prefix)
    limit.pause(0.01)
    limit.pause(0.01)


def test_every_per_site_family_carries_the_site(sites, redis_conn):
    seed(sites, redis_conn)
    server = WebServer(sites.settings)
    try:
        text = requests.get(f"{server.url}/metrics", timeout=5).text
    finally:
        server.stop()

    assert sample(text, "reactor_held_write_offs", site=HOME) == 1
    assert sample(text, "reactor_held_write_offs", site=OTHER) == 1
    assert sample(text, "reactor_dead_letters", site=HOME) == 0
    assert sample(text, "reactor_dead_letters", site=OTHER) == 1
    assert sample(text, "reactor_write_offs_total", site=OTHER, currency="USD") == 1
    assert sample(text, "reactor_write_off_amount_total", site=OTHER, currency="USD") == 12.5
    assert sample(text, "reactor_write_offs_total", site=HOME, currency="USD") is None
    assert sample(text, "reactor_chargebee_429s_total", site=OTHER) == 2
    assert sample(text, "reactor_chargebee_429s_total", site=HOME) == 0
    assert sample(text, "reactor_queue_jobs", site=OTHER, state="queued") == 0
    assert sample(text, "reactor_inbox_events", site=HOME, state="waiting") == 0
    assert sample(text, "reactor_job_seconds_count", site=OTHER) is not None
    assert sample(text, "reactor_redis_up") == 1  # the deployment's: no site label
    unlabelled = [
        line
        for line in text.splitlines()
        if line.startswith(("reactor_held", "reactor_dead", "reactor_queue", "reactor_write_off", "reactor_decisions"))
        and 'site="' not in line
    ]
    assert unlabelled == []


def test_one_digest_names_the_site_of_each_line(sites, redis_conn, receiver):
    seed(sites, redis_conn)
    Notices(redis_conn, sites.site(HOME).key_prefix).add("held", "inv_same held: max_per_day reached")
    Notices(redis_conn, sites.site(OTHER).key_prefix).add("held", "inv_same held: max_per_day reached")
    notifier = Notifier(sites.settings, redis_conn)

    assert notifier.round() is True
    assert notifier.round() is None, "every site's notices were sent: no second message"

    [text] = receiver.texts()
    assert text.startswith(f"chargebee-reactor (2 sites: {HOME}, {OTHER}): 3 things need a person")
    assert f"• [{HOME}] inv_same held: max_per_day reached" in text
    assert f"• [{OTHER}] inv_same held: max_per_day reached" in text
    assert f"• [{OTHER}] evaluate-ev_dead_eu (invoice inv_d)" in text
    assert f"• [{OTHER}] 12.50 USD" in text
    assert "held release --site SITE INVOICE_ID" in text and "dlq replay --site SITE JOB_ID" in text
    for site in (HOME, OTHER):
        assert redis_conn.xlen(Keys(sites.site(site).key_prefix).notices()) == 0


def test_one_sender_lock_for_the_deployment(sites, redis_conn, receiver):
    seed(sites, redis_conn)
    held = redis_conn.lock(Keys("reactor").notify_lock(), timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert Notifier(sites.settings, redis_conn).round() is None, "another sender holds the lock"
    finally:
        held.release()
    assert receiver.texts() == []
    assert not redis_conn.keys("reactor:site:*lock:notify*")


def test_a_single_site_digest_names_no_site(settings, redis_conn, receiver):
    Notices(redis_conn, settings.key_prefix).add("held", "inv_one held: budget")
    assert Notifier(replace(settings, notify_url=receiver.url), redis_conn).round() is True
    [text] = receiver.texts()
    assert "• inv_one held: budget" in text and "[" not in text.split("\n", 1)[1]


def test_the_sender_thread_reads_the_other_sites_notices(sites, redis_conn, receiver):
    Notices(redis_conn, sites.site(OTHER).key_prefix).add("budget", "max_per_day USD used up")
    notifier = Notifier(sites.settings, redis_conn)
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: receiver.texts(), timeout=10, what="the digest")
    finally:
        stop.set()
        thread.join(5)
    assert f"[{OTHER}] max_per_day USD used up" in receiver.texts()[0]


def test_without_a_home_site_the_deployments_own_notices_are_sent_too(settings, redis_conn, receiver):
    env = {
        "REDIS_URL": settings.redis_url or "",
        "REACTOR_SITES": "eu1,eu2",
        "REACTOR_NOTIFY_URL": receiver.url,
        **{f"REACTOR_SITE_EU{n}_{k}": f"{k.lower()}-{n}" for n in (1, 2) for k in ("API_KEY", "WEBHOOK_USER")},
        **{f"REACTOR_SITE_EU{n}_WEBHOOK_PASSWORD": f"s3cret-password-{n}" for n in (1, 2)},
    }
    deployment = load_settings(env, dotenv=False)
    assert deployment.home_site is None
    Notices(redis_conn, deployment.deployment_key_prefix).add("rules_refused", "rules.yaml:3:1: refused")
    Notices(redis_conn, deployment.for_site("eu2").key_prefix).add("held", "inv_9 held: budget")

    assert Notifier(deployment, redis_conn).round() is True
    [text] = receiver.texts()
    assert "• rules.yaml:3:1: refused" in text and "• [eu2] inv_9 held: budget" in text
