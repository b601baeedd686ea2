"""The spine, end to end: webhook → Redis → RQ worker (a real process) → write_off at the sandbox."""

from __future__ import annotations

import threading

import pytest
import requests
from rq import Queue
from rq.registry import FailedJobRegistry

from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.sandbox import DEMO_API_KEY
from tests.helpers import WEBHOOK_PASSWORD, WEBHOOK_USER, wait_for, wait_settled
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event

pytestmark = pytest.mark.integration


def wait_outcome(redis_conn, invoice_id: str, outcome: str, timeout: float = 20.0) -> None:
    wait_for(lambda: outcome in outcomes(redis_conn, invoice_id), timeout, what=f"audit outcome {outcome}")


def test_exhausted_dunning_under_threshold_is_written_off_once_without_follow_up_webhooks(
    sandbox, web, redis_conn, start_worker
):
    sandbox.state.set_webhook_target(web.webhook_url, WEBHOOK_USER, WEBHOOK_PASSWORD)
    invoice = exhausted_invoice(sandbox)
    event = make_event(invoice)
    response = post_event(web.webhook_url, event)
    assert response.status_code == 200
    assert response.json() == {"status": "queued", "event_id": event["id"]}

    start_worker()
    wait_outcome(redis_conn, invoice["id"], "written_off")

    calls = sandbox.state.write_off_calls()
    assert len(calls) == 1
    headers = calls[0]["headers"]
    assert headers["chargebee-event-webhook"] == "all-disabled"
    assert headers["chargebee-idempotency-key"].startswith("reactor-wo-")
    assert calls[0]["form"]["comment"].startswith("Auto write-off (dunning-exhausted-small-balance)")
    assert "12.50 USD" in calls[0]["form"]["comment"]
    assert sandbox.state.get_invoice(invoice["id"])["status"] == "paid"
    # The sandbox records the events a write-off makes as it answers, each marked for delivery or
    # not: none is scheduled, so none can arrive later (the test below shows that they would).
    assert {e["webhook_status"] for e in sandbox.state.events()} == {"skipped"}
    assert sandbox.state.deliveries() == []
    assert len(sandbox.state.write_off_calls()) == 1
    record = next(
        r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])) if r.outcome == "written_off"
    )
    assert (record.rule, record.action, record.amount_due, record.currency, record.mode) == (
        "dunning-exhausted-small-balance",
        "write_off",
        1250,
        "USD",
        "live",
    )
    assert record.event_id == event["id"] and record.rules_version


def test_a_write_off_without_the_skip_header_does_come_back_as_webhooks(sandbox, web, redis_conn):
    """The control for the test above: the sandbox really posts follow-ups when not told to skip,
    so their absence there is evidence, not an accident of the set-up."""
    sandbox.state.set_webhook_target(web.webhook_url, WEBHOOK_USER, WEBHOOK_PASSWORD)
    invoice = exhausted_invoice(sandbox)
    response = requests.post(
        f"{sandbox.api_base}/invoices/{invoice['id']}/write_off", auth=(DEMO_API_KEY, ""), timeout=5
    )
    assert response.status_code == 200
    deliveries = wait_for(lambda: len(sandbox.state.deliveries()) >= 2 and sandbox.state.deliveries())
    assert {d["event_type"] for d in deliveries} == {"invoice_updated", "credit_note_created"}
    assert all(d["status_code"] == 200 for d in deliveries)


@pytest.mark.parametrize(
    ("fields", "rules_mode", "outcome", "rule"),
    [
        ({"amount_due": 2600, "total": 2600}, "live", "no_match", None),
        ({"currency_code": "GBP"}, "live", "no_match", None),
        ({"customer_id": "ent_big_corp"}, "live", "skipped", "protect-enterprise"),
        ({}, "dry_run", "dry_run", "dunning-exhausted-small-balance"),
    ],
    ids=["over-threshold", "currency-not-in-rule", "skip-rule-first", "dry-run"],
)
def test_no_write_off_but_the_decision_is_recorded(
    sandbox, web, redis_conn, start_worker, rules_file, fields, rules_mode, outcome, rule
):
    rules_file(mode=rules_mode)
    invoice = exhausted_invoice(sandbox, **fields)
    assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
    start_worker()
    wait_outcome(redis_conn, invoice["id"], outcome)
    records = list(AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])))
    assert [r.rule for r in records] == [rule]
    assert sandbox.state.write_off_calls() == []
    assert sandbox.state.get_invoice(invoice["id"])["status"] == "not_paid"


def test_invoice_paid_between_event_and_processing_is_not_written_off(sandbox, web, redis_conn, start_worker):
    invoice = exhausted_invoice(sandbox)
    assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
    sandbox.state.update_invoice(invoice["id"], status="paid", amount_due=0, amount_paid=1250)
    start_worker()
    wait_outcome(redis_conn, invoice["id"], "changed")
    assert sandbox.state.write_off_calls() == []
    assert len(sandbox.state.calls(path_contains=f"/invoices/{invoice['id']}", method="GET")) == 1


def test_same_event_delivered_ten_times_concurrently_makes_one_job_and_one_write_off(
    sandbox, web, redis_conn, start_worker, settings
):
    invoice = exhausted_invoice(sandbox)
    event = make_event(invoice)
    barrier = threading.Barrier(10)
    statuses: list[str] = []

    def deliver() -> None:
        barrier.wait()
        response = post_event(web.webhook_url, event)
        assert response.status_code == 200
        statuses.append(response.json()["status"])

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(statuses) == ["duplicate"] * 9 + ["queued"]
    assert Queue(settings.queue_name, connection=redis_conn).count == 1

    start_worker()
    wait_outcome(redis_conn, invoice["id"], "written_off")
    wait_settled(redis_conn)
    assert len(sandbox.state.write_off_calls()) == 1
    assert outcomes(redis_conn, invoice["id"]).count("written_off") == 1


def test_rate_limited_write_off_waits_for_retry_after_then_succeeds(sandbox, web, redis_conn, start_worker):
    invoice = exhausted_invoice(sandbox)
    sandbox.state.add_fault(match="write_off", status=429, retry_after=2, times=1)
    assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
    start_worker()
    wait_outcome(redis_conn, invoice["id"], "written_off", timeout=30)
    calls = sandbox.state.write_off_calls()
    assert [c["status"] for c in calls] == [429, 200]
    assert calls[1]["at"] - calls[0]["at"] >= 2.0, "the retry came before Retry-After had passed"
    assert calls[0]["headers"]["chargebee-idempotency-key"] == calls[1]["headers"]["chargebee-idempotency-key"]
    assert outcomes(redis_conn, invoice["id"]).count("retrying") == 1


def test_server_errors_forever_leave_the_job_in_the_failed_registry(
    failed_by_server_errors, sandbox, redis_conn, settings
):
    event, invoice, _ = failed_by_server_errors
    registry = FailedJobRegistry(settings.queue_name, connection=redis_conn)
    assert registry.get_job_ids() == [f"evaluate-{event['id']}"]
    assert len(sandbox.state.write_off_calls()) == 1 + len(settings.retry_intervals)
    assert sandbox.state.get_invoice(invoice["id"])["status"] == "not_paid"
    records = list(AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])))
    assert [r.outcome for r in records][-1] == "failed"
    assert all(r.rules_version for r in records), "every record names the rules it was made under"


def test_invalid_state_from_chargebee_is_recorded_as_settled_not_failed(
    sandbox, web, redis_conn, start_worker, settings
):
    invoice = exhausted_invoice(sandbox)
    # Chargebee settles it between our fetch and our write_off: the sandbox answers 409 once.
    sandbox.state.add_fault(match="write_off", status=409, api_error_code="invalid_state_for_request", times=1)
    assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
    start_worker()
    wait_outcome(redis_conn, invoice["id"], "settled_elsewhere")
    assert FailedJobRegistry(settings.queue_name, connection=redis_conn).count == 0
    assert len(sandbox.state.write_off_calls()) == 1
