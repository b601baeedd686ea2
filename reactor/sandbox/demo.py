"""Demo data: a handful of invoices covering each rule path, and the webhook that starts the demo.

`inv_demo_1001` is the one the README curls a `payment_failed` event for; the others exercise the
amount threshold, the enterprise exclusion, a zero-decimal currency and an already-paid invoice.
"""

from __future__ import annotations

import time
from typing import Any

from .invoices import DAY
from .state import SandboxState


def _dunning(invoice_id: str, amount: int, due_date: int, attempts: int) -> list[dict[str, Any]]:
    return [
        {
            "attempt": n,
            "created_at": due_date + (n * 3 + 1) * DAY,
            "dunning_type": "auto_collect",
            "transaction_id": f"txn_{invoice_id}_{n}",
            "txn_status": "failure",
            "txn_amount": amount,
        }
        for n in range(attempts)
    ]


def _exhausted(
    number: int, customer_id: str, amount: int, currency: str, now: int, overdue_days: int
) -> dict[str, Any]:
    """An unpaid invoice whose dunning ran out: the shape Chargebee leaves behind."""
    invoice_id = f"inv_demo_{number}"
    due_date = now - overdue_days * DAY
    attempts = _dunning(invoice_id, amount, due_date, 4)
    return {
        "id": invoice_id,
        "customer_id": customer_id,
        "subscription_id": customer_id.replace("cus_", "sub_").replace("ent_", "sub_"),
        "status": "not_paid",
        "dunning_status": "exhausted",
        "currency_code": currency,
        "base_currency_code": currency,
        "total": amount,
        "amount_due": amount,
        "net_term_days": 30,
        "date": due_date - 30 * DAY,
        "generated_at": due_date - 30 * DAY,
        "due_date": due_date,
        "updated_at": attempts[-1]["created_at"],
        "dunning_attempts": attempts,
        "linked_payments": [
            {
                "txn_id": a["transaction_id"],
                "applied_amount": 0,
                "applied_at": a["created_at"],
                "txn_status": "failure",
                "txn_date": a["created_at"],
                "txn_amount": amount,
            }
            for a in attempts
        ],
    }


def demo_invoices(now: int | None = None) -> list[dict[str, Any]]:
    now = int(time.time()) if now is None else now
    paid = _exhausted(1005, "cus_demo_linus", 1900, "USD", now, 20)
    paid.update(status="paid", dunning_status="success", amount_due=0, amount_paid=1900, paid_at=now - 15 * DAY)
    paid["linked_payments"][-1].update(txn_status="success", applied_amount=1900)
    retrying = _exhausted(1006, "cus_demo_margaret", 2000, "USD", now, 3)
    retrying.update(status="payment_due", dunning_status="in_progress", next_retry_at=now + 2 * DAY)
    retrying["dunning_attempts"] = retrying["dunning_attempts"][:1]
    retrying["linked_payments"] = retrying["linked_payments"][:1]
    return [
        _exhausted(1001, "cus_demo_ada", 1250, "USD", now, 40),  # small, exhausted: written off
        _exhausted(1002, "cus_demo_grace", 4999, "USD", now, 45),  # $49.99: over the threshold
        _exhausted(1003, "ent_acme", 800, "USD", now, 50),  # enterprise customer: excluded
        _exhausted(1004, "cus_demo_kenji", 2500, "JPY", now, 42),  # ¥2500 (zero-decimal currency)
        paid,
        retrying,
    ]


def seed_demo(state: SandboxState, now: int | None = None) -> list[dict[str, Any]]:
    """Add the demo invoices (those not already present), with the customer and subscription each
    one's demo event carries, and return the invoices as stored."""
    seeded = []
    for fields in demo_invoices(now):
        existing = [inv for inv in state.invoices() if inv["id"] == fields["id"]]
        seeded.append(existing[0] if existing else state.add_invoice(**fields))
    customers = {customer["id"] for customer in state.customers()}
    subscriptions = {sub["id"] for sub in state.subscriptions()}
    for invoice in seeded:
        if invoice["customer_id"] not in customers:
            state.add_customer(**_without_version(_demo_customer(invoice)))
        if invoice.get("subscription_id") and invoice["subscription_id"] not in subscriptions:
            state.add_subscription(**_without_version(_demo_subscription(invoice)))
    return seeded


def _without_version(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource for the state to store: its resource_version is the state's to stamp."""
    return {key: value for key, value in resource.items() if key != "resource_version"}


def demo_payment_failed_event(invoice: dict[str, Any], occurred_at: int | None = None) -> dict[str, Any]:
    """The `payment_failed` event Chargebee sends on the last dunning attempt (dunning_status exhausted)."""
    occurred_at = int(time.time()) if occurred_at is None else occurred_at
    customer_id = invoice["customer_id"]
    return {
        "id": f"ev_demo_payment_failed_{invoice['id'].rsplit('_', 1)[-1]}",
        "occurred_at": occurred_at,
        "source": "scheduled_job",
        "object": "event",
        "api_version": "v2",
        "event_type": "payment_failed",
        "webhook_status": "scheduled",
        "content": {
            "transaction": _failed_transaction(invoice, occurred_at),
            "invoice": invoice,
            "customer": _demo_customer(invoice),
            "subscription": _demo_subscription(invoice),
            "card": _demo_card(customer_id),
        },
    }


def _failed_transaction(invoice: dict[str, Any], occurred_at: int) -> dict[str, Any]:
    """The declined card payment of the last dunning attempt, linked to the invoice."""
    last = invoice["dunning_attempts"][-1] if invoice.get("dunning_attempts") else {}
    customer_id, sub_id, amount = invoice["customer_id"], invoice.get("subscription_id"), invoice["amount_due"]
    return {
        "id": last.get("transaction_id", f"txn_{invoice['id']}"),
        "customer_id": customer_id,
        "subscription_id": sub_id,
        "gateway_account_id": "gw_demo_stripe",
        "payment_source_id": f"pm_{customer_id}",
        "payment_method": "card",
        "gateway": "stripe",
        "type": "payment",
        "date": occurred_at,
        "exchange_rate": 1.0,
        "amount": amount,
        "id_at_gateway": "ch_demo_declined",
        "status": "failure",
        "error_code": "card_declined",
        "error_text": "Your card was declined.",
        "updated_at": occurred_at,
        "resource_version": occurred_at * 1000,
        "deleted": False,
        "object": "transaction",
        "masked_card_number": "************0341",
        "currency_code": invoice["currency_code"],
        "base_currency_code": invoice["currency_code"],
        "amount_unused": 0,
        "linked_invoices": [
            {
                "invoice_id": invoice["id"],
                "applied_amount": amount,
                "applied_at": occurred_at,
                "invoice_date": invoice["date"],
                "invoice_total": invoice["total"],
                "invoice_status": invoice["status"],
            }
        ],
    }


def _demo_customer(invoice: dict[str, Any]) -> dict[str, Any]:
    """The invoice's customer, paying by card with auto collection on."""
    customer_id = invoice["customer_id"]
    return {
        "id": customer_id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "auto_collection": "on",
        "net_term_days": 30,
        "allow_direct_debit": False,
        "created_at": invoice["date"] - 200 * DAY,
        "taxability": "taxable",
        "updated_at": invoice["date"],
        "pii_cleared": "active",
        "channel": "web",
        "resource_version": invoice["date"] * 1000,
        "deleted": False,
        "object": "customer",
        "card_status": "valid",
        "promotional_credits": 0,
        "refundable_credits": 0,
        "excess_payments": 0,
        "unbilled_charges": 0,
        "preferred_currency_code": invoice["currency_code"],
        "primary_payment_source_id": f"pm_{customer_id}",
        "payment_method": {
            "object": "payment_method",
            "type": "card",
            "reference_id": "cus_stripe_demo/card_demo",
            "gateway": "stripe",
            "gateway_account_id": "gw_demo_stripe",
            "status": "valid",
        },
    }


def _demo_subscription(invoice: dict[str, Any]) -> dict[str, Any]:
    """The invoice's active monthly subscription, with this invoice its one due invoice."""
    sub_id, amount = invoice.get("subscription_id"), invoice["amount_due"]
    customer_id = invoice["customer_id"]
    return {
        "id": sub_id,
        "billing_period": 1,
        "billing_period_unit": "month",
        "customer_id": customer_id,
        "status": "active",
        "current_term_start": invoice["date"],
        "current_term_end": invoice["date"] + 30 * DAY,
        "next_billing_at": invoice["date"] + 30 * DAY,
        "created_at": invoice["date"] - 200 * DAY,
        "started_at": invoice["date"] - 200 * DAY,
        "activated_at": invoice["date"] - 200 * DAY,
        "updated_at": invoice["date"],
        "has_scheduled_changes": False,
        "channel": "web",
        "resource_version": invoice["date"] * 1000,
        "deleted": False,
        "object": "subscription",
        "currency_code": invoice["currency_code"],
        "subscription_items": [
            {
                "item_price_id": "starter-USD-monthly",
                "item_type": "plan",
                "quantity": 1,
                "unit_price": invoice["total"],
                "amount": invoice["total"],
                "object": "subscription_item",
            }
        ],
        "due_invoices_count": 1,
        "due_since": invoice["due_date"],
        "total_dues": amount,
        "mrr": invoice["total"],
    }


def _demo_card(customer_id: str) -> dict[str, Any]:
    """The card Chargebee attaches to a card payment's event."""
    return {
        "status": "valid",
        "gateway": "stripe",
        "gateway_account_id": "gw_demo_stripe",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "iin": "400000",
        "last4": "0341",
        "card_type": "visa",
        "funding_type": "credit",
        "expiry_month": 12,
        "expiry_year": 2030,
        "object": "card",
        "masked_number": "************0341",
        "customer_id": customer_id,
        "payment_source_id": f"pm_{customer_id}",
    }
