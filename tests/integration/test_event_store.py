"""EventStore.accept against a real Redis: one winner per event id, and nothing half-accepted."""

from __future__ import annotations

import json
import threading

import pytest
import redis
from rq import Queue
from rq.registry import FinishedJobRegistry

from reactor.ingest.envelope import parse_event
from reactor.ingest.events import EventStore, StoreOptions, evaluation_job_id, triage_job_id
from tests.helpers import wait_for, wait_settled
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event

pytestmark = pytest.mark.integration


def event(event_id: str = "ev_store_1"):
    body = {"id": event_id, "event_type": "payment_failed", "content": {"invoice": {"id": "inv_store_1"}}}
    return parse_event(json.dumps(body).encode())


def test_the_queued_job_is_the_one_rq_would_enqueue(redis_conn):
    queue = Queue("reactor", connection=redis_conn)
    assert EventStore(redis_conn, queue).accept(event(), "reactor.jobs.evaluate").outcome == "queued"
    job = queue.fetch_job("evaluate-ev_store_1")
    assert (job.func_name, job.args, job.get_status()) == ("reactor.jobs.evaluate", ("ev_store_1",), "queued")
    assert job.meta == {"event_id": "ev_store_1", "event_type": "payment_failed", "invoice_id": "inv_store_1"}
    assert queue.job_ids == ["evaluate-ev_store_1"]


def test_of_twenty_concurrent_deliveries_exactly_one_is_queued(redis_server, redis_conn):
    outcomes: list[str] = []
    barrier = threading.Barrier(20)

    def deliver() -> None:
        connection = redis_server.client()
        store = EventStore(connection, Queue("reactor", connection=connection))
        barrier.wait()
        outcomes.append(store.accept(event(), "reactor.jobs.evaluate").outcome)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(outcomes) == ["duplicate"] * 19 + ["queued"]
    assert Queue("reactor", connection=redis_conn).count == 1
    assert redis_conn.hget("reactor:counters:events", "duplicate") == b"19"


def test_a_failure_inside_the_accept_script_leaves_the_event_unmarked_so_a_retry_is_taken(redis_conn):
    queue = Queue("reactor", connection=redis_conn)
    store = EventStore(redis_conn, queue)
    redis_conn.set("reactor:counters:events", "not a hash")  # makes the script's HINCRBY fail
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        store.accept(event(), "reactor.jobs.evaluate")
    assert not redis_conn.exists("reactor:event:ev_store_1")  # the stored event is the dedupe mark
    assert queue.count == 0

    redis_conn.delete("reactor:counters:events")
    assert store.accept(event(), "reactor.jobs.evaluate").outcome == "queued"
    assert queue.count == 1


def test_an_invoice_trace_that_is_not_a_list_refuses_the_event_with_nothing_queued_and_the_retry_is_taken(
    sandbox, web, redis_conn, start_worker
):
    """The receipt is written after the enqueue, which a failed script does not undo: a trace key that
    is not a list (written by hand, another program) must refuse the event before anything is written,
    not leave it in the inbox without its stored body, where triage would record it missing and every
    retry of Chargebee's would be refused the same way."""
    invoice = exhausted_invoice(sandbox)
    trace = f"reactor:trace:{invoice['id']}"
    redis_conn.set(trace, "not a list")
    event = make_event(invoice)
    assert post_event(web.webhook_url, event).status_code >= 500
    assert not redis_conn.exists(f"reactor:event:{event['id']}")
    assert redis_conn.llen("reactor:inbox") == 0 and Queue("reactor", connection=redis_conn).count == 0

    redis_conn.delete(trace)
    assert post_event(web.webhook_url, event).json()["status"] == "queued"  # Chargebee's retry
    start_worker()
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="the write-off")
    wait_settled(redis_conn)
    assert outcomes(redis_conn, invoice["id"]) == ["written_off"]
    assert len(sandbox.state.write_off_calls()) == 1


def test_a_decided_event_leaves_its_outcome_in_the_audit_and_no_rq_job_or_result(
    sandbox, web, settings, redis_conn, start_worker
):
    """result_ttl 0: RQ's result stream and finished job hash (some 6 kB for 500 s) are not kept for
    a job that succeeds; the audit record says what came of it. A failed job stays (the dead letter)."""
    invoice = exhausted_invoice(sandbox)
    event = make_event(invoice)
    assert post_event(web.webhook_url, event).json()["status"] == "queued"
    triage = triage_job_id(event["id"])  # the event waits in the inbox, and woke a triage job
    assert redis_conn.hget(f"rq:job:{triage}", "result_ttl") == b"0"
    start_worker()
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="written_off")
    job_id = evaluation_job_id(event["id"])  # the job triage handed the write-off to
    wait_settled(redis_conn)
    for ended in (job_id, triage):
        assert not redis_conn.exists(f"rq:job:{ended}")
        assert not redis_conn.exists(f"rq:results:{ended}")
    assert FinishedJobRegistry(settings.queue_name, connection=redis_conn).get_job_ids() == []
    assert redis_conn.exists(f"reactor:event:{event['id']}"), "the stored event stays for replays"


def test_the_stored_event_is_the_dedupe_mark_and_is_kept_as_long_as_the_longer_of_the_two_ttls(redis_conn):
    queue = Queue("reactor", connection=redis_conn)
    long_dedupe = EventStore(redis_conn, queue, options=StoreOptions(dedupe_ttl=9 * 24 * 3600, event_ttl=5 * 24 * 3600))
    assert long_dedupe.accept(event(), "reactor.jobs.evaluate").outcome == "queued"
    assert 8 * 24 * 3600 < redis_conn.ttl("reactor:event:ev_store_1") <= 9 * 24 * 3600
    assert redis_conn.keys("reactor:seen:*") == [], "no mark of its own"
    assert long_dedupe.accept(event(), "reactor.jobs.evaluate").outcome == "duplicate"
    assert queue.job_ids == ["evaluate-ev_store_1"]

    EventStore(redis_conn, queue).accept(event("ev_store_2"), "reactor.jobs.evaluate")  # the defaults: 30 and 4 days
    assert 29 * 24 * 3600 < redis_conn.ttl("reactor:event:ev_store_2") <= 30 * 24 * 3600


@pytest.mark.parametrize("stored", [b"[1, 2]", b'"an event"', b"null"])
def test_a_stored_event_that_is_not_a_json_object_fails_its_load_as_bad_json_does(redis_conn, stored):
    # never written by the webhook (it stores parsed objects): a job that loads it fails into the
    # dead letters rather than deciding an empty event
    store = EventStore(redis_conn, Queue("reactor", connection=redis_conn))
    redis_conn.set("reactor:event:ev_store_odd", stored)
    with pytest.raises(ValueError, match="ev_store_odd"):
        store.load("ev_store_odd")
    redis_conn.set("reactor:event:ev_store_odd", b"{not json")
    with pytest.raises(ValueError):
        store.load("ev_store_odd")
    assert store.load("ev_store_absent") is None
