"""Realistic Chargebee events for the benchmarks, generated from a seed so every run sees the same mix.

The mix is that of a billing run plus a dunning cycle: mostly `payment_failed` and
`invoice_updated`, some `invoice_generated`, `payment_succeeded`, cancellations and reminders;
USD, EUR, GBP, JPY, CAD and AUD; amounts from cents to thousands (log-uniform); due dates from
next week to two years ago; dunning in progress, exhausted or stopped; a few enterprise, partner,
disputed and test customers. Against bench/rules_50.yaml some events are decided by the first
rules (protective skips), some by the last ones, and many by none.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

DAY = 86400
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z: fixed, so days_overdue is reproducible

EVENT_TYPES = (
    ("payment_failed", 40),
    ("invoice_updated", 22),
    ("invoice_generated", 12),
    ("payment_succeeded", 8),
    ("subscription_cancelled", 5),
    ("payment_due_reminder", 7),
    ("dunning_updated", 3),
    ("subscription_changed", 3),
)
CURRENCIES = (("USD", 50), ("EUR", 22), ("GBP", 12), ("JPY", 6), ("CAD", 5), ("AUD", 5))
SEGMENTS = (("smb", 30), ("self_serve", 30), ("mid_market", 20), ("nonprofit", 5), ("enterprise", 3), (None, 12))
COUNTRIES = ("US", "US", "US", "DE", "FR", "GB", "GB", "JP", "CA", "AU", "BR", "MX", "IN", "PH", "NL", "ES", "IR")
PLANS = ("starter-monthly", "starter-annual", "pro-monthly", "legacy-basic-2019", "legacy-pro-2020", "team-annual")
ERROR_CODES = ("card_declined", "insufficient_funds", "do_not_honor", "expired_card", "processing_error", "fraudulent")


def _pick(rng: random.Random, weighted: tuple[tuple[Any, int], ...]) -> Any:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights)[0]


def _amount(rng: random.Random, currency: str) -> int:
    """Minor units, log-uniform from 0.10 to 3000 major units (JPY: 10 to 300,000 yen)."""
    major = math.exp(rng.uniform(math.log(0.1), math.log(3000)))
    return max(1, round(major * 100))


def make_event(rng: random.Random, n: int, now: int = NOW) -> dict[str, Any]:
    """One event with invoice, customer, subscription, transaction and card, as Chargebee sends them."""
    event_type = _pick(rng, EVENT_TYPES)
    currency = _pick(rng, CURRENCIES)
    segment = _pick(rng, SEGMENTS)
    kind = rng.random()
    customer_id = f"cus_{n:06d}"
    if kind < 0.04:
        customer_id = f"ent_{n:06d}"
    elif kind < 0.06:
        customer_id = f"cus_test_{n:06d}"
    total = _amount(rng, currency)
    paid = 0 if rng.random() < 0.85 else rng.randint(0, total)
    due = total - paid
    overdue_days = rng.randint(-10, 700) if rng.random() < 0.7 else rng.randint(-10, 60)
    due_date = now - overdue_days * DAY
    dunning = rng.choice(("exhausted", "exhausted", "in_progress", "stopped", "exhausted", None))
    status = rng.choice(("not_paid", "payment_due", "payment_due", "posted")) if due > 0 else "paid"
    invoice_id = f"inv_{n:07d}"
    attempts = [
        {
            "attempt": i,
            "created_at": due_date + (i * 3 + 1) * DAY,
            "dunning_type": "auto_collect",
            "transaction_id": f"txn_{invoice_id}_{i}",
            "txn_status": "failure",
            "txn_amount": due,
        }
        for i in range(4 if dunning == "exhausted" else rng.randint(0, 3))
    ]
    invoice: dict[str, Any] = {
        "id": invoice_id,
        "customer_id": customer_id,
        "subscription_id": f"sub_{n:06d}",
        "recurring": rng.random() < 0.9,
        "status": status,
        "price_type": "tax_exclusive",
        "date": due_date - 30 * DAY,
        "due_date": due_date,
        "net_term_days": 30,
        "exchange_rate": 1.0,
        "currency_code": currency,
        "total": total,
        "amount_paid": paid,
        "amount_adjusted": 0,
        "write_off_amount": 0,
        "credits_applied": 0 if rng.random() < 0.95 else rng.randint(1, 500),
        "amount_due": due,
        "amount_to_collect": due,
        "round_off_amount": 0,
        "sub_total": total,
        "tax": 0,
        "first_invoice": False,
        "has_advance_charges": False,
        "term_finalized": True,
        "is_gifted": False,
        "generated_at": due_date - 30 * DAY,
        "updated_at": now,
        "resource_version": now * 1000 + n,
        "deleted": False,
        "object": "invoice",
        "channel": rng.choice(("web", "web", "web", "web", "web", "web", "app_store")),
        "base_currency_code": currency,
        "billing_address": {"country": rng.choice(COUNTRIES), "object": "billing_address"},
        "line_items": [
            {
                "id": f"li_{invoice_id}",
                "date_from": due_date - 60 * DAY,
                "date_to": due_date - 30 * DAY,
                "unit_amount": total,
                "quantity": 1,
                "amount": total,
                "pricing_model": "flat_fee",
                "is_taxed": False,
                "tax_amount": 0,
                "object": "line_item",
                "entity_type": "plan_item_price",
                "entity_id": rng.choice(PLANS),
            }
        ],
        "linked_payments": [
            {
                "txn_id": a["transaction_id"],
                "applied_amount": 0,
                "applied_at": a["created_at"],
                "txn_status": "failure",
                "txn_date": a["created_at"],
                "txn_amount": due,
            }
            for a in attempts
        ],
        "dunning_attempts": attempts,
    }
    if dunning is not None:
        invoice["dunning_status"] = dunning
    customer: dict[str, Any] = {
        "id": customer_id,
        "email": f"user{n}@" + rng.choice(("example.com", "example.org", "uni.edu", "college.ac.uk", "corp.io")),
        "auto_collection": "on" if rng.random() < 0.9 else "off",
        "net_term_days": 30,
        "preferred_currency_code": currency,
        "object": "customer",
    }
    if segment is not None:
        customer["cf_segment"] = segment
    if rng.random() < 0.02:
        customer["cf_dispute_open"] = True
    if rng.random() < 0.03:
        customer["cf_channel_partner"] = "reseller-a"
    if rng.random() < 0.05:
        customer["cf_sales_owner"] = "sam@example.com"
    content: dict[str, Any] = {
        "invoice": invoice,
        "customer": customer,
        "subscription": {
            "id": f"sub_{n:06d}",
            "customer_id": customer_id,
            "plan_id": rng.choice(PLANS),
            "status": rng.choice(("active", "active", "active", "cancelled", "in_trial", "non_renewing")),
            "currency_code": currency,
            "mrr": total,
            "object": "subscription",
        },
    }
    if event_type == "subscription_cancelled":
        content["subscription"]["status"] = "cancelled"
        content["subscription"]["cancel_reason"] = rng.choice(("not_paid", "no_card", "other"))
    if event_type in ("payment_failed", "payment_succeeded"):
        content["transaction"] = {
            "id": f"txn_{invoice_id}_x",
            "customer_id": customer_id,
            "type": "payment",
            "amount": due,
            "currency_code": currency,
            "status": "failure" if event_type == "payment_failed" else "success",
            "error_code": rng.choice(ERROR_CODES) if event_type == "payment_failed" else None,
            "object": "transaction",
        }
        content["card"] = {
            "status": rng.choice(("valid", "valid", "valid", "expiring", "expired")),
            "card_type": "visa",
            "last4": "4242",
            "customer_id": customer_id,
            "object": "card",
        }
    return {
        "id": f"ev_bench_{n:08d}",
        "occurred_at": now,
        "source": "scheduled_job",
        "object": "event",
        "api_version": "v2",
        "event_type": event_type,
        "webhook_status": "scheduled",
        "content": content,
    }


def make_events(count: int, seed: int = 20260101, now: int = NOW) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [make_event(rng, n, now) for n in range(count)]


def event_body(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()
