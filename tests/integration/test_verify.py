"""Event verification (REACTOR_VERIFY_EVENTS=1), end to end: webhook → real worker process → GET
/events/{id} at the sandbox → act only on Chargebee's copy. The events below are recorded in the
sandbox as Chargebee would have them; the copies posted to the webhook are forged or altered."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import requests
from rq import Queue
from rq.registry import FailedJobRegistry

from reactor.jobs.audit import AuditFilter, AuditLog, AuditRecord
from tests.helpers import wait_for, wait_settled
from tests.integration.helpers import exhausted_invoice, make_event, post_event

pytestmark = pytest.mark.integration


@pytest.fixture
def verifying(settings, start_worker):
    """Start workers with REACTOR_VERIFY_EVENTS=1."""
    return lambda: start_worker(replace(settings, verify_events=True))


def records(redis_conn, invoice_id: str) -> list[AuditRecord]:
    return list(AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id)))


def final_record(redis_conn, invoice_id: str, outcomes: set[str]) -> AuditRecord:
    return wait_for(
        lambda: next((r for r in records(redis_conn, invoice_id) if r.outcome in outcomes), None),
        20,
        what=f"one of {outcomes} for {invoice_id}",
    )  # type: ignore[return-value]


def genuine_event(sandbox, invoice: dict, event_type: str = "payment_failed") -> dict:
    """Recorded at the sandbox through its control API, as an event that happened on the site."""
    response = requests.post(
        f"{sandbox.url}/_sandbox/events", json={"event_type": event_type, "content": {"invoice": invoice}}, timeout=5
    )
    assert response.status_code == 201
    return response.json()["event"]


def test_a_forged_event_is_recorded_rejected_and_never_acted_on(verifying, sandbox, web, redis_conn, settings) -> None:
    invoice = exhausted_invoice(sandbox)  # a real invoice the forged event would have written off
    forged = make_event(invoice, event_id="ev_forged_1")
    assert post_event(web.webhook_url, forged).json()["status"] == "queued"
    verifying()

    record = final_record(redis_conn, invoice["id"], {"rejected", "written_off", "failed"})
    assert record.outcome == "rejected" and record.event_id == "ev_forged_1"
    assert sandbox.state.calls(path_contains="/events/ev_forged_1")[0]["status"] == 404
    assert sandbox.state.write_off_calls() == []
    assert sandbox.state.calls(path_contains="/invoices/") == []  # not even looked at
    assert FailedJobRegistry(settings.queue_name, connection=redis_conn).get_job_ids() == []
    wait_settled(redis_conn)  # no retry is scheduled or running
    assert [r.outcome for r in records(redis_conn, invoice["id"])] == ["rejected"]
    # It succeeded (the rejection is its outcome, in the audit): RQ keeps no finished job (result_ttl 0).
    assert Queue(settings.queue_name, connection=redis_conn).fetch_job("evaluate-ev_forged_1") is None


def test_without_verification_the_same_forgery_would_be_written_off(sandbox, web, redis_conn, start_worker) -> None:
    """The control for the test above: the forgery is dangerous, so its rejection is evidence."""
    invoice = exhausted_invoice(sandbox)
    post_event(web.webhook_url, make_event(invoice, event_id="ev_forged_2"))
    start_worker()
    assert final_record(redis_conn, invoice["id"], {"written_off", "failed"}).outcome == "written_off"


def test_a_genuine_event_posted_with_an_altered_amount_is_decided_on_chargebees_copy(
    verifying, sandbox, web, redis_conn
) -> None:
    invoice = exhausted_invoice(sandbox)  # 12.50 USD due: the rule writes it off
    genuine = genuine_event(sandbox, invoice)
    altered = copy.deepcopy(genuine)
    altered["content"]["invoice"]["amount_due"] = 99_999_00  # posted: over every threshold, so left alone
    post_event(web.webhook_url, altered)
    worker = verifying()

    record = final_record(redis_conn, invoice["id"], {"written_off", "no_match", "skipped", "failed"})
    assert record.outcome == "written_off" and record.event_id == genuine["id"]
    assert len(sandbox.state.write_off_calls()) == 1
    wait_for(lambda: "invoice.amount_due" in worker.output(), 5, what="the warning naming the altered field")
    assert "9999900" not in worker.output()  # names of fields, never the posted values


def test_a_genuine_event_posted_as_another_event_type_is_decided_on_chargebees_type(
    verifying, sandbox, web, redis_conn
) -> None:
    invoice = exhausted_invoice(sandbox)
    genuine = genuine_event(sandbox, invoice, event_type="invoice_generated")  # no rule acts on this type
    post_event(web.webhook_url, {**genuine, "event_type": "payment_failed"})
    verifying()

    record = final_record(redis_conn, invoice["id"], {"written_off", "no_match", "skipped", "failed"})
    assert (record.outcome, record.event_type) == ("no_match", "invoice_generated")
    assert sandbox.state.write_off_calls() == []


def test_a_chargebee_error_while_verifying_is_retried_not_rejected(verifying, sandbox, web, redis_conn) -> None:
    invoice = exhausted_invoice(sandbox)
    genuine = genuine_event(sandbox, invoice)
    sandbox.state.add_fault("events", 503, times=1)
    post_event(web.webhook_url, genuine)
    verifying()

    assert final_record(redis_conn, invoice["id"], {"written_off", "rejected", "failed"}).outcome == "written_off"
    assert [r.outcome for r in records(redis_conn, invoice["id"])][:1] == ["retrying"]
    assert [c["status"] for c in sandbox.state.calls(path_contains="/events/")] == [503, 200]
