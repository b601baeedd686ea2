"""/metrics as Prometheus scrapes it: web counters plus the facts workers leave in Redis (decisions,
write-offs and their undos, job latency), RQ's queue and dead letters, held write-offs; and the JSON
log lines."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue

from reactor.chargebee.ratelimit import ChargebeeRateLimit
from reactor.ingest.inbox import Inbox
from reactor.jobs.held import HeldWriteOff, hold
from reactor.keys import Keys
from reactor.local.redis_server import free_port
from tests.helpers import WEBHOOK_PASSWORD, WEBHOOK_USER, WebServer, wait_for
from tests.integration.helpers import exhausted_invoice, make_event, post_event
from tests.integration.ops_helpers import make_dead_letter, reactor_process

pytestmark = pytest.mark.integration

SITE = "default"  # the home site's name without CHARGEBEE_SITE: every per-site family carries it


def scrape(web) -> str:
    response = requests.get(f"{web.url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample, labels in any order; None when absent."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if found == labels:
            return float(match.group(2))
    return None


def test_a_write_off_by_a_worker_shows_up_in_the_web_metrics(sandbox, web, redis_conn, start_worker):
    queued_before = sample(
        scrape(web), "reactor_events_received_total", event_type="payment_failed", outcome="queued", site=SITE
    )
    invoice = exhausted_invoice(sandbox)
    post_event(web.webhook_url, make_event(invoice))
    start_worker()

    def counted() -> str | None:
        text = scrape(web)
        return text if sample(text, "reactor_write_offs_total", site=SITE, currency="USD") else None

    text = wait_for(counted, timeout=30, what="the write-off counted")

    queued = sample(text, "reactor_events_received_total", event_type="payment_failed", outcome="queued", site=SITE)
    assert queued == (queued_before or 0) + 1  # a per-process counter: other tests in this process count too
    assert (
        sample(
            text,
            "reactor_decisions_total",
            site=SITE,
            rule="dunning-exhausted-small-balance",
            action="write_off",
            outcome="written_off",
        )
        == 1
    )
    assert sample(text, "reactor_write_offs_total", site=SITE, currency="USD") == 1
    assert sample(text, "reactor_write_off_amount_total", site=SITE, currency="USD") == 12.5
    assert sample(text, "reactor_job_seconds_count", site=SITE) == 1
    assert sample(text, "reactor_job_seconds_bucket", site=SITE, le="+Inf") == 1
    assert sample(text, "reactor_redis_up") == 1


def test_an_undone_write_off_is_its_own_counter_and_the_difference_is_zero(sandbox, web, settings, our_write_off):
    before = scrape(web)
    assert sample(before, "reactor_write_off_amount_total", site=SITE, currency="USD") == 12.5
    assert (
        sample(before, "reactor_write_off_undone_amount_total", site=SITE, currency="USD") == 0
    )  # a series before any undo

    undone = reactor_process(settings, "undo", our_write_off["id"], "--reason", "customer disputes the charge")
    assert undone.returncode == 0, undone.stderr

    text = scrape(web)
    written = sample(text, "reactor_write_off_amount_total", site=SITE, currency="USD")
    taken_back = sample(text, "reactor_write_off_undone_amount_total", site=SITE, currency="USD")
    assert (written, taken_back, written - taken_back) == (12.5, 12.5, 0)
    assert sample(text, "reactor_write_offs_total", site=SITE, currency="USD") == 1
    assert sample(text, "reactor_write_offs_undone_total", site=SITE, currency="USD") == 1
    assert (
        sample(text, "reactor_decisions_total", site=SITE, rule="dunning-exhausted", action="undo", outcome="undone")
        == 1
    )


def test_event_types_chargebee_does_not_list_are_one_other_series(sandbox, web):
    other_before = (
        sample(scrape(web), "reactor_events_received_total", event_type="other", outcome="queued", site=SITE) or 0
    )
    invoice = exhausted_invoice(sandbox)
    made_up = [f"made_up_type_{n}" for n in range(300)]
    with requests.Session() as client:
        for event_type in made_up:
            event = make_event(invoice, event_type=event_type)
            response = client.post(web.webhook_url, json=event, auth=(WEBHOOK_USER, WEBHOOK_PASSWORD), timeout=10)
            assert response.status_code == 200, response.text
    assert post_event(web.webhook_url, make_event(invoice, event_type="invoice_generated")).status_code == 200

    text = scrape(web)
    series = [line for line in text.splitlines() if line.startswith("reactor_events_received_total{")]
    assert not any("made_up_type" in line for line in series), "no series per made-up type"
    assert len([line for line in series if 'event_type="other"' in line]) == 1
    other = sample(text, "reactor_events_received_total", event_type="other", outcome="queued", site=SITE)
    assert other == other_before + len(made_up)
    assert sample(text, "reactor_events_received_total", event_type="invoice_generated", outcome="queued", site=SITE)


def test_queue_depth_dead_letters_and_held_write_offs_are_gauges(web, redis_conn, settings):
    Queue(settings.queue_name, connection=redis_conn).enqueue("reactor.jobs.evaluate", "ev_waiting")
    make_dead_letter(redis_conn, settings, make_event({"id": "inv_m1", "amount_due": 100, "currency_code": "USD"}))
    hold(redis_conn, HeldWriteOff("inv_m2", amount_due=70000, currency="USD"))

    text = scrape(web)

    assert sample(text, "reactor_queue_jobs", site=SITE, state="queued") == 1
    assert sample(text, "reactor_inbox_events", site=SITE, state="waiting") == 0
    assert sample(text, "reactor_dead_letters", site=SITE) == 1
    assert sample(text, "reactor_held_write_offs", site=SITE) == 1


def test_events_waiting_for_triage_and_claimed_are_gauges(web, redis_conn, settings):
    keys = Keys(settings.key_prefix)
    redis_conn.rpush(keys.inbox(), "ev_a", "ev_b", "ev_c")
    Inbox(redis_conn, keys, lease=60).claim(1, time.time())

    text = scrape(web)

    assert sample(text, "reactor_inbox_events", site=SITE, state="waiting") == 2
    assert sample(text, "reactor_inbox_events", site=SITE, state="claimed") == 1


def test_the_oldest_queued_job_and_chargebee_429s_are_reported(web, redis_conn, settings):
    """What deploy/prometheus/alerts.yml alerts on: how long the oldest queued job has waited, and
    Chargebee's 429s counted by whichever worker met them."""
    assert sample(scrape(web), "reactor_queue_oldest_seconds", site=SITE) == 0
    job = Queue(settings.queue_name, connection=redis_conn).enqueue("reactor.jobs.evaluate", "ev_old")
    Queue(settings.queue_name, connection=redis_conn).enqueue("reactor.jobs.evaluate", "ev_new")
    two_minutes_ago = datetime.now(timezone.utc) - timedelta(minutes=2)
    redis_conn.hset(job.key, "enqueued_at", two_minutes_ago.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    budget = ChargebeeRateLimit(redis_conn, 10, 60, scope="acme-test", key_prefix=settings.key_prefix)
    budget.pause(0.01)
    budget.pause(None)

    text = scrape(web)

    assert 120 <= (sample(text, "reactor_queue_oldest_seconds", site=SITE) or 0) < 180
    assert sample(text, "reactor_chargebee_429s_total", site=SITE) == 2


def test_the_oldest_wait_sees_past_triage_jobs_pushed_in_front_of_older_ones(web, redis_conn, settings):
    """With the workers down, each webhook that finds no triage job on its way pushes one to the
    head of the queue: the gauge (and the backlog alert) must still see the jobs waiting behind."""
    queue = Queue(settings.queue_name, connection=redis_conn)
    old = queue.enqueue("reactor.jobs.triage", "ev_first", at_front=True)
    ten_minutes_ago = datetime.now(timezone.utc) - timedelta(minutes=10)
    redis_conn.hset(old.key, "enqueued_at", ten_minutes_ago.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    queue.enqueue("reactor.jobs.triage", "ev_later", at_front=True)  # the head, enqueued just now

    assert 600 <= (sample(scrape(web), "reactor_queue_oldest_seconds", site=SITE) or 0) < 660


def test_metrics_answer_without_redis_and_say_so(settings):
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    server = WebServer(settings, dead)
    try:
        text = scrape(server)
    finally:
        server.stop()
    assert sample(text, "reactor_redis_up") == 0
    assert sample(text, "reactor_rules_refused") == 0


def test_worker_log_lines_about_a_job_carry_its_event_and_invoice(sandbox, web, redis_conn, start_worker):
    invoice = exhausted_invoice(sandbox)
    event = make_event(invoice)
    post_event(web.webhook_url, event)
    worker = start_worker()
    wait_for(
        lambda: sample(scrape(web), "reactor_write_offs_total", site=SITE, currency="USD"), timeout=30, what="write-off"
    )

    lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
    about_job = [line for line in lines if line.get("job_id") == f"evaluate-{event['id']}"]
    assert any(line["logger"] == "reactor.jobs" and "written_off" in line["msg"] for line in about_job)
    assert all(line["event_id"] == event["id"] and line["invoice_id"] == invoice["id"] for line in about_job)
