"""Redis with AOF: a restart (clean or a crash) loses no queued job and no stored event, and an
outage while events arrive loses nothing that was acknowledged."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from rq import Queue, Worker

from reactor.ingest.events import EventStore
from reactor.jobs.audit import AuditLog
from reactor.keys import Keys
from reactor.local.redis_server import EmbeddedRedis
from tests.helpers import WebServer, wait_for, wait_settled
from tests.integration.helpers import exhausted_invoice, make_event, post_event

pytestmark = pytest.mark.integration


def written_off_invoices(connection) -> set[str]:
    return {r.invoice_id for r in AuditLog(connection).query() if r.outcome == "written_off"}


def accept_events(sandbox, server: WebServer, count: int) -> list[dict]:
    events = [make_event(exhausted_invoice(sandbox)) for _ in range(count)]
    for event in events:
        response = post_event(server.webhook_url, event)
        assert response.status_code == 200 and response.json()["status"] == "queued"
    return events


@pytest.mark.parametrize("how", ["stop", "kill"], ids=["sigterm", "sigkill"])
def test_queued_jobs_and_stored_events_survive_a_redis_restart(sandbox, settings, tmp_path, start_worker, how):
    with EmbeddedRedis(tmp_path / "redis-restarts") as own_redis:
        own_settings = replace(settings, redis_url=own_redis.url)
        server = WebServer(own_settings)
        try:
            events = accept_events(sandbox, server, 20)
            getattr(own_redis, how)()  # right after the last 200: no time for an fsync to help
            own_redis.start()
            connection = own_redis.client()
            assert connection.llen(Keys().inbox()) == 20  # each waits for triage
            assert Queue(settings.queue_name, connection=connection).count == 1  # the triage job
            store = EventStore(connection, Queue(settings.queue_name, connection=connection), Keys())
            assert all(store.load(e["id"]).data == e for e in events)

            start_worker(own_settings)
            wanted = {e["content"]["invoice"]["id"] for e in events}
            wait_for(lambda: written_off_invoices(connection) == wanted, timeout=60, what="20 write-offs")
        finally:
            server.stop()


def test_redis_stopped_while_events_arrive_gives_503_or_2xx_and_every_2xx_event_is_processed(
    sandbox, settings, tmp_path, start_worker
):
    with EmbeddedRedis(tmp_path / "redis-outage") as own_redis:
        # A job cut off mid-way by the outage is recovered as an abandoned one: make that quick
        # (for a simple worker that takes the job timeout too, see docs/guarantees.md).
        own_settings = replace(
            settings,
            redis_url=own_redis.url,
            abandoned_after=3,
            maintenance_interval=1,
            job_timeout=30,
            http_timeout=3.0,
            rate_limit_max_wait=1.0,
        )
        server = WebServer(own_settings)
        start_worker(own_settings)
        wait_for(lambda: Worker.all(connection=own_redis.client()), what="the worker to start")
        answers: list[tuple[dict, int]] = []

        def chargebee() -> None:
            for _ in range(60):
                event = make_event(exhausted_invoice(sandbox))
                answers.append((event, post_event(server.webhook_url, event).status_code))
                time.sleep(0.05)

        try:
            sender = threading.Thread(target=chargebee)
            sender.start()
            wait_for(lambda: len(answers) >= 15, what="deliveries before the outage")
            own_redis.stop()
            wait_for(lambda: any(status == 503 for _, status in answers), what="a delivery refused in the outage")
            own_redis.start()
            sender.join(60)

            statuses = [status for _, status in answers]
            assert set(statuses) <= {200, 503}
            assert 503 in statuses, "the outage should have refused some deliveries"
            acknowledged = {event["content"]["invoice"]["id"] for event, status in answers if status == 200}
            connection = own_redis.client()
            wait_for(
                lambda: acknowledged <= written_off_invoices(connection),
                timeout=90,
                what="every acknowledged event processed",
            )
            # Chargebee redelivers what got 503. A refused event may have been stored all the same:
            # Redis ran the accept and stopped before its reply reached us (redis-py's retry then
            # met a refused connection). Its redelivery is then a duplicate; either way it is
            # written off once.
            refused = [event for event, status in answers if status == 503]
            for event in refused:
                assert post_event(server.webhook_url, event).json()["status"] in ("queued", "duplicate")
            everyone = {event["content"]["invoice"]["id"] for event, _status in answers}
            wait_for(lambda: everyone <= written_off_invoices(connection), timeout=90, what="every event processed")
            # a job dequeued as Redis stopped waits in RQ's intermediate queue until a worker's
            # maintenance puts it back, a minute after it is first seen there: more than 30 s
            wait_settled(connection, timeout=150)
            calls = [call["path"].split("/")[-2] for call in sandbox.state.write_off_calls()]
            assert sorted(calls) == sorted(everyone), "each invoice written off once"
        finally:
            server.stop()
