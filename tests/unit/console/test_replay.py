"""The choice of `reactor events replay` by business fields, on records and stored events alone."""

from __future__ import annotations

from datetime import datetime, timezone

from reactor.console.replay import ReplayCandidate, ReplaySelection, matches, select
from reactor.ingest.envelope import Event
from reactor.jobs.audit import AuditRecord


def candidate(event_id: str, customer: str, outcome: str, rule: str | None, currency: str = "USD") -> ReplayCandidate:
    invoice = {"id": f"inv_{event_id}", "customer_id": customer, "currency_code": currency}
    event = {"id": event_id, "event_type": "payment_failed", "content": {"invoice": invoice}}
    record = AuditRecord(event_id=event_id, invoice_id=invoice["id"], outcome=outcome, rule=rule, currency=currency)
    return ReplayCandidate(event_id, [record], Event.from_data(event))


EVENTS = [
    candidate("ev_1", "cus_a", "written_off", "small"),
    candidate("ev_2", "cus_b", "failed", "small", currency="EUR"),
    candidate("ev_3", "cus_a", "no_match", None),
]


def chosen(**fields: object) -> list[str]:
    return [c.event_id for c in select(ReplaySelection(**fields), EVENTS)]  # type: ignore[arg-type]


def test_each_field_narrows():
    assert chosen(customer="cus_a") == ["ev_1", "ev_3"]
    assert chosen(rule="small") == ["ev_1", "ev_2"]
    assert chosen(outcomes=frozenset({"failed", "no_match"})) == ["ev_2", "ev_3"]
    assert chosen(currency="eur") == ["ev_2"]
    assert chosen(invoice="inv_ev_3") == ["ev_3"]
    assert chosen(event_type="invoice_updated") == []
    assert chosen(customer="cus_a", rule="small") == ["ev_1"]


def test_an_empty_selection_chooses_nothing_by_itself():
    assert not ReplaySelection().chooses_anything()
    assert ReplaySelection(since=datetime(2026, 1, 1, tzinfo=timezone.utc)).chooses_anything()


def test_an_expired_event_is_still_known_by_its_records():
    expired = ReplayCandidate("ev_9", [AuditRecord(event_id="ev_9", invoice_id="inv_9", outcome="failed")], None)
    assert matches(ReplaySelection(invoice="inv_9"), expired)
    assert not matches(ReplaySelection(customer="cus_a"), expired)  # the customer is only in the stored event
