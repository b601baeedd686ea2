"""Fail closed in a real worker: an attempt RQ stops for its timeout writes nothing off, leaves an
audit record, and the retry decides again from the start."""

from __future__ import annotations

import pytest
from rq import Queue, Retry

from reactor.ingest.events import evaluation_job_id
from reactor.jobs.audit import AuditLog
from reactor.keys import Keys
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event
from tests.integration.ops_helpers import store_event

pytestmark = pytest.mark.integration


def test_a_job_stopped_by_its_timeout_is_recorded_timed_out_and_its_retry_writes_off_once(
    sandbox, settings, redis_conn, start_worker
):
    invoice = exhausted_invoice(sandbox)
    event = make_event(invoice)
    store_event(redis_conn, event)
    # Another job holds the invoice: this one waits for the lock, and RQ stops it after 2 s.
    lock_key = Keys().lock(invoice["id"])
    redis_conn.set(lock_key, "held-by-another-job", ex=60)
    Queue(settings.queue_name, connection=redis_conn).enqueue(
        "reactor.jobs.evaluate",
        event["id"],
        job_id=evaluation_job_id(event["id"]),
        job_timeout=2,
        retry=Retry(max=3, interval=[3, 3, 3]),  # spare retries: a slow machine may time out twice
    )
    start_worker()

    def records(outcome: str) -> list:
        return [r for r in AuditLog(redis_conn).query(invoice_id=invoice["id"]) if r.outcome == outcome]

    timed_out = wait_for(lambda: records("timed_out"), timeout=30, what="the timed_out record")
    assert timed_out[0].event_id == event["id"]
    assert "ran past its timeout (2 s)" in (timed_out[0].reason or "")
    assert "RQ will run it again" in (timed_out[0].reason or "")
    assert sandbox.state.write_off_calls() == [] and sandbox.state.calls(method="GET") == []

    redis_conn.delete(lock_key)  # the other job is done; the retry takes the lock
    wait_for(lambda: records("written_off"), timeout=30, what="the retry's write-off")
    assert len(sandbox.state.write_off_calls()) == 1
    assert len(records("written_off")) == 1
