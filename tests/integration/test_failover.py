"""A Redis primary killed under load, behind Sentinel, with real processes: a primary, a replica,
three sentinels, the web app and a `reactor worker` (a process of its own), both on a Sentinel URL.
Webhooks flow while the primary is SIGKILLed; the sentinels promote the replica. Every event
answered 200 was confirmed by the replica first (REACTOR_REPLICA_ACK=auto), so it survives the
promotion and is written off once; every other one was answered 503 and is taken on redelivery, as
Chargebee does. Neither the web nor the worker is restarted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from reactor.redis_connect import connect
from tests.helpers import WebServer, wait_for, wait_settled
from tests.integration.helpers import exhausted_invoice, make_event, post_event
from tests.integration.sentinel_helpers import SentinelSet

pytestmark = pytest.mark.integration

PACE = 0.05
"""Seconds between two deliveries: the load's rate (about 20 webhooks/s), not a wait for anything."""


@dataclass
class Deliveries:
    """Chargebee's side: each event sent, and the status of its latest delivery (None: no answer)."""

    answers: dict[str, int | None] = field(default_factory=dict)
    events: dict[str, dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, url: str, event: dict) -> int | None:
        try:
            status: int | None = post_event(url, event).status_code
        except requests.RequestException:
            status = None
        with self.lock:
            self.events[event["id"]] = event
            self.answers[event["id"]] = status
        return status

    def count(self, status: int | None) -> int:
        with self.lock:
            return sum(1 for answer in self.answers.values() if answer == status)

    def unanswered(self) -> list[dict]:
        with self.lock:
            return [self.events[i] for i, answer in self.answers.items() if answer != 200]


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    with SentinelSet(tmp_path / "sentinel-set") as started:
        yield started


@pytest.fixture
def failover_settings(sentinels, short_settings):
    """Short recovery times, as in test_crash_safety.py, and no rate limit in the way of the load."""
    return short_settings(
        redis_url=sentinels.url,
        abandoned_after=3,
        maintenance_interval=1,
        http_timeout=3.0,
        rate_limit_max_wait=1.0,
        job_timeout=30,
        chargebee_rate_limit=10_000,
        replica_ack_timeout=0.5,
    )


@pytest.fixture
def web(failover_settings) -> Iterator[WebServer]:
    server = WebServer(failover_settings)
    yield server
    server.stop()


def test_webhooks_answered_200_survive_a_primary_killed_under_load(
    sentinels, sandbox, web, failover_settings, start_worker
):
    start_worker(failover_settings)
    sent = Deliveries()
    stop = threading.Event()
    invoices: list[str] = []

    def load() -> None:
        while not stop.is_set():
            invoice = exhausted_invoice(sandbox)
            invoices.append(invoice["id"])
            sent.deliver(web.webhook_url, make_event(invoice))
            stop.wait(PACE)

    poster = threading.Thread(target=load, daemon=True)
    poster.start()
    try:
        wait_for(lambda: sent.count(200) >= 20, timeout=30, what="webhooks answered 200 before the kill")
        sentinels.primary.kill()  # SIGKILL: whatever the replica has not confirmed is gone
        wait_for(lambda: sentinels.primary_port() == sentinels.replica.port, timeout=60, what="the promotion")
        accepted = sent.count(200)
        wait_for(lambda: sent.count(200) >= accepted + 20, timeout=60, what="webhooks answered 200 after it")
    finally:
        stop.set()
        poster.join(10)
    refused = sent.unanswered()
    assert refused, "no delivery fell in the failover: the test did not cross it"

    for event in refused:  # Chargebee's redelivery of everything not answered 200
        wait_for(lambda event=event: sent.deliver(web.webhook_url, event) == 200, timeout=30, what="a redelivery")

    new_primary = connect(sentinels.url)
    wait_for(
        lambda: all(sandbox.state.get_invoice(i)["status"] == "paid" for i in invoices),
        timeout=120,
        what="every invoice written off",
    )
    wait_settled(new_primary, timeout=60)
    calls = [call["path"] for call in sandbox.state.write_off_calls()]
    twice = [i for i in invoices if sum(path.endswith(f"/invoices/{i}/write_off") for path in calls) != 1]
    assert twice == [], "invoices not written off exactly once"
