"""The pure part of re-checks: when the rules would first decide write_off if only time passed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from reactor.ingest.envelope import Event
from reactor.jobs.rechecks import is_settled, next_write_off_moment, recheck_job_id
from reactor.rules import parse_rules

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
RULES = """\
version: 1
mode: live
rules:
  - name: protect-enterprise
    when: [{invoice.customer_id: {starts_with: "ent_"}}]
    action: skip
  - name: thirty-days
    when: [{days_overdue: {gte: 30}}]
    action: write_off
"""


def event(due: datetime, customer: str = "cus_1") -> Event:
    invoice = {
        "id": "inv_1",
        "status": "payment_due",
        "amount_due": 500,
        "currency_code": "USD",
        "customer_id": customer,
        "due_date": int(due.timestamp()),
    }
    return Event.from_data({"id": "ev_1", "event_type": "payment_failed", "content": {"invoice": invoice}})


def test_the_moment_is_when_days_overdue_reaches_the_rules_threshold() -> None:
    due = NOW - timedelta(days=12)
    assert next_write_off_moment(parse_rules(RULES), event(due), NOW) == due + timedelta(days=30)


def test_no_moment_when_a_skip_rule_before_it_would_decide() -> None:
    assert next_write_off_moment(parse_rules(RULES), event(NOW - timedelta(days=12), "ent_big"), NOW) is None


def test_settled_invoices_and_job_ids() -> None:
    assert is_settled({"status": "paid"}) and is_settled({"status": "payment_due", "write_off_amount": 5})
    assert not is_settled({"status": "payment_due", "write_off_amount": 0})
    assert recheck_job_id("inv 1/ä", NOW).startswith("recheck-x") and " " not in recheck_job_id("inv 1/ä", NOW)
