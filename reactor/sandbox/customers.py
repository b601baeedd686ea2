"""Pure customer and subscription logic: Chargebee-shaped defaults for what the caller left out.

Shapes follow the customer and subscription objects in real events (payment_failed,
subscription_cancelled; API v2). Custom fields (`cf_segment`, `cf_dispute_open`, ...) sit at the top
level of the resource, as Chargebee returns them, and are kept exactly as given.

Ids are not invented where a test could lean on them: a subscription must name its `customer_id`
(Chargebee requires one); only the resource's own id gets a placeholder when none is given.
"""

from __future__ import annotations

import copy
from typing import Any

DAY = 86400
SUBSCRIPTION_STATUSES = ("future", "in_trial", "active", "non_renewing", "paused", "cancelled", "transferred")


def _check_id(resource: str, value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 50:
        raise ValueError(f"{resource} id must be a non-empty string of at most 50 characters, got {value!r}")


def build_customer(fields: dict[str, Any], *, seq: int, resource_version: int, now: int) -> dict[str, Any]:
    """A customer as `GET /customers/{id}` returns it, with `fields` (custom fields included) on top."""
    f = copy.deepcopy(fields)
    customer: dict[str, Any] = {
        "id": f"cus_sb_{seq:05d}",
        "auto_collection": "on",
        "net_term_days": 0,
        "allow_direct_debit": False,
        "created_at": now,
        "taxability": "taxable",
        "updated_at": now,
        "pii_cleared": "active",
        "channel": "web",
        "resource_version": resource_version,
        "deleted": False,
        "object": "customer",
        "card_status": "no_card",
        "promotional_credits": 0,
        "refundable_credits": 0,
        "excess_payments": 0,
        "unbilled_charges": 0,
        "preferred_currency_code": "USD",
    }
    customer.update(f)
    _check_id("customer", customer["id"])
    return customer


def build_subscription(fields: dict[str, Any], *, seq: int, resource_version: int, now: int) -> dict[str, Any]:
    """A subscription as `GET /subscriptions/{id}` returns it; `customer_id` is required."""
    f = copy.deepcopy(fields)
    if "customer_id" not in f:
        raise ValueError("a subscription needs the customer_id it belongs to")
    _check_id("customer", f["customer_id"])
    status = f.get("status", "active")
    if status not in SUBSCRIPTION_STATUSES:
        raise ValueError(f"status must be one of {SUBSCRIPTION_STATUSES}, got {status!r}")
    currency = f.get("currency_code", "USD")
    subscription: dict[str, Any] = {
        "id": f"sub_sb_{seq:05d}",
        "customer_id": f["customer_id"],
        "billing_period": 1,
        "billing_period_unit": "month",
        "status": status,
        "current_term_start": now - 15 * DAY,
        "current_term_end": now + 15 * DAY,
        "next_billing_at": now + 15 * DAY,
        "created_at": now - 200 * DAY,
        "started_at": now - 200 * DAY,
        "activated_at": now - 200 * DAY,
        "updated_at": now,
        "has_scheduled_changes": False,
        "channel": "web",
        "resource_version": resource_version,
        "deleted": False,
        "object": "subscription",
        "currency_code": currency,
        "subscription_items": [
            {
                "item_price_id": f"sandbox-plan-{currency}-monthly",
                "item_type": "plan",
                "quantity": 1,
                "unit_price": 1000,
                "amount": 1000,
                "object": "subscription_item",
            }
        ],
        "due_invoices_count": 0,
        "mrr": 1000,
    }
    if status == "cancelled":
        subscription["cancelled_at"] = now
    subscription.update(f)
    _check_id("subscription", subscription["id"])
    return subscription


def apply_update(resource: dict[str, Any], fields: dict[str, Any], *, resource_version: int, now: int) -> None:
    """Change a customer or subscription in place (the id and owner stay); bumps resource_version."""
    fields = copy.deepcopy(fields)
    fields.pop("id", None)
    if resource.get("object") == "subscription":
        if "customer_id" in fields:
            _check_id("customer", fields["customer_id"])
        if "status" in fields and fields["status"] not in SUBSCRIPTION_STATUSES:
            raise ValueError(f"status must be one of {SUBSCRIPTION_STATUSES}, got {fields['status']!r}")
    resource.update(fields)
    resource["resource_version"] = resource_version
    if "updated_at" not in fields:
        resource["updated_at"] = now
