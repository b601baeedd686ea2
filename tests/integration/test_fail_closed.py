"""Fail closed in a real worker: an attempt RQ stops for its timeout writes nothing off, leaves an
audit record, and the retry decides again from the start; a protective rule on a long text
protects, and one on a text too long to evaluate blocks the write-off with the reason."""

from __future__ import annotations

import pytest
from rq import Queue, Retry

from reactor.ingest.events import evaluation_job_id
from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.keys import Keys
from reactor.rules.operators import MAX_MATCH_TEXT
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event, post_event
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
        return [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])) if r.outcome == outcome]

    timed_out = wait_for(lambda: records("timed_out"), timeout=30, what="the timed_out record")
    assert timed_out[0].event_id == event["id"]
    assert "ran past its timeout (2 s)" in (timed_out[0].reason or "")
    assert "RQ will run it again" in (timed_out[0].reason or "")
    assert sandbox.state.write_off_calls() == [] and sandbox.state.calls(method="GET") == []

    redis_conn.delete(lock_key)  # the other job is done; the retry takes the lock
    wait_for(lambda: records("written_off"), timeout=30, what="the retry's write-off")
    assert len(sandbox.state.write_off_calls()) == 1
    assert len(records("written_off")) == 1


PROTECT_DISPUTES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500}
rules:
  - name: protect-disputes
    when:
      - customer.cf_note: {matches: dispute}
    action: skip
  - name: dunning-exhausted
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""


def customer_note(length: int) -> str:
    """A note of `length` characters that says "dispute" only at its end."""
    filler = "Called about the renewal; asked for the invoice again. " * (length // 50 + 1)
    return filler[: length - len(" dispute")] + " dispute"


def decided(redis_conn, invoice_id: str, outcome: str) -> list:
    def found() -> list:
        return [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id)) if r.outcome == outcome]

    return wait_for(found, timeout=30, what=f"the {outcome} record")  # type: ignore[return-value]


def test_a_5000_character_note_naming_a_dispute_protects_the_invoice(
    sandbox, rules_file, web, redis_conn, start_worker
):
    rules_file(PROTECT_DISPUTES)
    invoice = exhausted_invoice(sandbox, customer_id="cus_noted")
    customer = sandbox.state.add_customer(id="cus_noted", cf_note=customer_note(5000))
    assert post_event(web.webhook_url, make_event(invoice, "payment_failed", customer=customer)).status_code == 200
    start_worker()
    [record] = decided(redis_conn, invoice["id"], "skipped")
    assert record.rule == "protect-disputes" and record.action == "skip"
    assert sandbox.state.write_off_calls() == []


def test_a_note_longer_than_matches_reads_blocks_the_write_off_with_the_reason(
    sandbox, rules_file, web, redis_conn, start_worker
):
    """An invoice_updated carries no customer: the worker fetches it, note and all, then decides."""
    rules_file(PROTECT_DISPUTES)
    invoice = exhausted_invoice(sandbox, customer_id="cus_noted")
    sandbox.state.add_customer(id="cus_noted", cf_note=customer_note(MAX_MATCH_TEXT + 1))
    assert post_event(web.webhook_url, make_event(invoice, "invoice_updated")).status_code == 200
    start_worker()
    [record] = decided(redis_conn, invoice["id"], "facts_missing")
    assert record.rule == "protect-disputes"
    assert "skip rule protect-disputes might protect this invoice" in (record.reason or "")
    assert f"customer.cf_note matches dispute (line 8) cannot be evaluated: the text is {MAX_MATCH_TEXT + 1:,}" in (
        record.reason or ""
    )
    assert len(sandbox.state.calls(path_contains="/customers/cus_noted", method="GET")) == 1
    assert sandbox.state.write_off_calls() == []
