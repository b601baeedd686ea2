"""Time-based rules: a re-check scheduled for the moment a rule can first match, run by a real
worker's scheduler. Real time throughout: the invoice's due date is chosen so that `days_overdue`
reaches 30 a few seconds after the event."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

import pytest
from rq import Queue, Worker
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.jobs.rechecks import recheck_job_id
from reactor.keys import Keys
from tests.helpers import wait_for
from tests.integration.helpers import make_event, post_event

pytestmark = pytest.mark.integration

DAY = 86400
LEAD = 4  # seconds until the invoice is 30 days overdue
PAYMENT_LEAD = 8  # seconds for three events to be decided before the moment, however busy the machine

OVERDUE_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500}
rules:
  - name: thirty-days-overdue
    when:
      - days_overdue: {gte: 30}
      - invoice.status: {in: [not_paid, payment_due]}
    action: write_off
"""


def outcomes(redis_conn, invoice_id: str) -> list[str]:
    return [r.outcome for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id))]


def ready_worker(start_worker, redis_conn) -> None:
    """Start the worker and wait until it has registered to take jobs: a lead that is to cover only
    deciding events must not also cover the interpreter's start, which a busy machine stretches."""
    start_worker()
    wait_for(lambda: Worker.all(connection=redis_conn), timeout=30, what="the worker to start")


def worker_idle(redis_conn, settings) -> bool:
    """No job waiting in the queue and none running."""
    queue = Queue(settings.queue_name, connection=redis_conn)
    return queue.count == 0 and StartedJobRegistry(queue=queue).count == 0


def nearly_overdue_invoice(sandbox, lead: int = LEAD) -> dict:
    """Due 30 days ago minus `lead` seconds: days_overdue is 29 now and 30 in at least `lead` seconds."""
    due = math.ceil(time.time()) - 30 * DAY + lead
    return sandbox.state.add_invoice(
        status="payment_due", currency_code="USD", total=1250, amount_due=1250, date=due, due_date=due
    )


def test_a_rule_on_30_days_overdue_writes_off_once_at_the_scheduled_moment_and_not_before(
    sandbox, web, redis_conn, start_worker, rules_file, settings
):
    rules_file(OVERDUE_RULES)
    ready_worker(start_worker, redis_conn)
    invoice = nearly_overdue_invoice(sandbox)
    moment = invoice["due_date"] + 30 * DAY
    assert post_event(web.webhook_url, make_event(invoice, event_type="invoice_generated")).status_code == 200

    wait_for(lambda: "recheck_scheduled" in outcomes(redis_conn, invoice["id"]), what="recheck_scheduled")
    assert outcomes(redis_conn, invoice["id"])[:2] == ["no_match", "recheck_scheduled"]
    assert sandbox.state.write_off_calls() == []
    assert time.time() < moment, "the test set-up was too slow to observe the time before the moment"

    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="written_off")
    calls = sandbox.state.write_off_calls()
    assert len(calls) == 1
    assert calls[0]["at"] >= moment, "written off before the invoice was 30 days overdue"
    wait_for(lambda: worker_idle(redis_conn, settings), what="the worker to finish its jobs")
    # nothing left to run for it later: no second call, no second record
    assert ScheduledJobRegistry(settings.queue_name, connection=redis_conn).count == 0
    assert not redis_conn.exists(Keys(settings.key_prefix).recheck(invoice["id"]))
    assert len(sandbox.state.write_off_calls()) == 1
    assert outcomes(redis_conn, invoice["id"]).count("written_off") == 1
    record = next(
        r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])) if r.outcome == "written_off"
    )
    assert record.rule == "thirty-days-overdue"


def test_a_payment_before_the_moment_cancels_the_recheck(sandbox, web, redis_conn, start_worker, rules_file, settings):
    """A control invoice, due a second after the paid one and never paid, is written off by its own
    re-check: once it is, the scheduler has run past the paid invoice's moment and the one worker
    has taken every job due by then, so the absence of any call for the paid invoice is a finding,
    not a guess at how long the scheduler and a loaded machine take."""
    rules_file(OVERDUE_RULES)
    ready_worker(start_worker, redis_conn)  # the lead below starts once the worker takes jobs
    invoice = nearly_overdue_invoice(sandbox, lead=PAYMENT_LEAD)
    control = nearly_overdue_invoice(sandbox, lead=PAYMENT_LEAD + 1)
    moment = invoice["due_date"] + 30 * DAY
    control_moment = control["due_date"] + 30 * DAY
    for each in (control, invoice):
        assert post_event(web.webhook_url, make_event(each, event_type="invoice_generated")).status_code == 200
        wait_for(lambda i=each: "recheck_scheduled" in outcomes(redis_conn, i["id"]), what="recheck_scheduled")
    registry = ScheduledJobRegistry(settings.queue_name, connection=redis_conn)
    assert registry.count == 2

    paid = sandbox.state.update_invoice(invoice["id"], status="paid", amount_due=0, amount_paid=1250)
    assert post_event(web.webhook_url, make_event(paid, event_type="payment_succeeded")).status_code == 200
    wait_for(lambda: "recheck_cancelled" in outcomes(redis_conn, invoice["id"]), what="recheck_cancelled")
    assert time.time() < moment, "the payment arrived after the moment; the test proves nothing"
    control_job = recheck_job_id(control["id"], datetime.fromtimestamp(control_moment, tz=timezone.utc))
    assert registry.get_job_ids() == [control_job]

    wait_for(lambda: "written_off" in outcomes(redis_conn, control["id"]), timeout=30, what="the control's write-off")
    assert sandbox.state.write_off_calls()[0]["at"] >= control_moment > moment
    assert [c["path"] for c in sandbox.state.write_off_calls()] == [f"/api/v2/invoices/{control['id']}/write_off"]
    assert sandbox.state.calls(path_contains=f"/invoices/{invoice['id']}") == []
    assert outcomes(redis_conn, invoice["id"])[-1] == "recheck_cancelled"


def test_a_newer_event_replaces_the_pending_recheck(sandbox, web, redis_conn, start_worker, rules_file, settings):
    rules_file(OVERDUE_RULES)
    ready_worker(start_worker, redis_conn)
    invoice = nearly_overdue_invoice(sandbox)
    for event_type in ("invoice_generated", "invoice_updated"):
        assert post_event(web.webhook_url, make_event(invoice, event_type=event_type)).status_code == 200
        wait_for(
            lambda et=event_type: any(
                r.outcome == "recheck_scheduled" and r.event_type == et
                for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"]))
            ),
            what=f"recheck for {event_type}",
        )
    assert ScheduledJobRegistry(settings.queue_name, connection=redis_conn).count == 1
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="written_off")
    record = next(
        r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])) if r.outcome == "written_off"
    )
    assert record.event_type == "invoice_updated"
    assert len(sandbox.state.write_off_calls()) == 1
