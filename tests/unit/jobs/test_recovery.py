"""What an event tells of money a customer has unapplied (`payments_seen`, pure)."""

from __future__ import annotations

from reactor.jobs.recovery import EXCESS, PAYMENT_EVENT_TYPES, PaymentSeen, payments_seen
from reactor.rules.event_types import CHARGEBEE_EVENT_TYPES


def txn(**fields) -> dict:
    values = {
        "id": "txn_1",
        "customer_id": "cus_1",
        "type": "payment",
        "status": "success",
        "amount": 1200,
        "amount_unused": 1200,
        "currency_code": "GBP",
        "linked_invoices": [],
    }
    values.update(fields)
    return values


def test_a_successful_payment_is_seen_with_what_it_has_unused():
    assert payments_seen("payment_succeeded", {"transaction": txn(amount_unused=500)}) == [
        PaymentSeen("cus_1", 500, "GBP", "txn_1")
    ]


def test_failed_refunded_used_up_or_other_events_are_not_money_back():
    assert payments_seen("payment_failed", {"transaction": txn()}) == []
    assert payments_seen("payment_succeeded", {"transaction": txn(status="failure")}) == []
    assert payments_seen("payment_refunded", {"transaction": txn(type="refund")}) == []
    assert payments_seen("payment_succeeded", {"transaction": txn(amount_unused=0)}) == []
    assert payments_seen("payment_succeeded", {"transaction": txn(amount_unused="12")}) == []
    assert payments_seen("payment_succeeded", {"transaction": "txn_1"}) == []


def test_a_customer_with_excess_payments_is_seen_without_a_transaction():
    customer = {"id": "cus_1", "excess_payments": 700, "preferred_currency_code": "EUR"}

    assert payments_seen("customer_changed", {"customer": customer}) == [PaymentSeen("cus_1", 700, "EUR", EXCESS)]
    assert payments_seen(None, {"customer": {**customer, "excess_payments": 0}}) == []


def test_a_payment_event_names_its_transaction_not_the_customers_balance_too():
    content = {"transaction": txn(), "customer": {"id": "cus_1", "excess_payments": 1200}}

    assert payments_seen("payment_succeeded", content) == [PaymentSeen("cus_1", 1200, "GBP", "txn_1")]


def test_the_payment_event_types_are_chargebee_event_types():
    assert PAYMENT_EVENT_TYPES <= CHARGEBEE_EVENT_TYPES
