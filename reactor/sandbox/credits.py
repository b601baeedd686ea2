"""Pure credit logic: a customer's refundable credit notes and what `apply_credits` does with them.

Chargebee's "Apply credits for an invoice"
(https://apidocs.chargebee.com/docs/api/invoices/apply-credits-for-an-invoice) applies the
customer's refundable credits (credit notes with an `amount_available`, status `refund_due`) to an
invoice in status `not_paid`, `payment_due` or `posted`: `amount_due` falls by what is applied, the
invoice is `paid` when it is covered, and a credit note used up becomes `refunded`. Without
`credit_notes[id][i]` Chargebee picks the available ones itself (here: oldest first, the invoice's
currency). The customer's `refundable_credits` is the sum of what is available.

What Chargebee answers when the customer has no credits is UNCONFIRMED; the sandbox answers 400
`invalid_request`, and a test injects the other plausible shape (409 invalid_state_for_request).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ApiError, not_found, wrong_value

APPLICABLE_STATUSES = ("not_paid", "payment_due", "posted")


def build_credit_note(fields: dict[str, Any], *, seq: int, resource_version: int, now: int) -> dict[str, Any]:
    """A refundable credit note with `total` available (minor units); `customer_id` is required."""
    f = copy.deepcopy(fields)
    if not isinstance(f.get("customer_id"), str) or not f["customer_id"]:
        raise ValueError("a credit note needs the customer_id it belongs to")
    total = f.pop("total", f.pop("amount", None))
    if type(total) is not int or total <= 0:
        raise ValueError(f"a credit note needs a positive whole total in minor units, got {total!r}")
    note: dict[str, Any] = {
        "id": f"CN-R{seq:05d}",
        "customer_id": f["customer_id"],
        "type": "refundable",
        "reason_code": "other",
        "status": "refund_due",
        "date": now,
        "currency_code": "USD",
        "total": total,
        "amount_allocated": 0,
        "amount_refunded": 0,
        "amount_available": total,
        "generated_at": now,
        "updated_at": now,
        "resource_version": resource_version,
        "deleted": False,
        "object": "credit_note",
        "allocations": [],
    }
    note.update(f)
    return note


def available(notes: Iterable[Mapping[str, Any]], customer_id: str, currency: str | None = None) -> int:
    """The customer's refundable credits: what its credit notes still have available."""
    return sum(
        n["amount_available"]
        for n in notes
        if n["customer_id"] == customer_id
        and n["status"] == "refund_due"
        and (currency is None or n["currency_code"] == currency)
    )


def usable_notes(
    notes: Mapping[str, dict[str, Any]], invoice: Mapping[str, Any], wanted: list[str], invalid_state_status: int
) -> list[dict[str, Any]]:
    """The credit notes apply_credits would use on `invoice`, oldest first; ApiError as Chargebee's
    prerequisites say (the invoice's status, a note of another customer, no credits at all)."""
    if invoice["status"] not in APPLICABLE_STATUSES:
        raise ApiError(
            invalid_state_status,
            f"Invoice {invoice['id']} is in {invoice['status']} state; credits cannot be applied.",
            "invalid_state_for_request",
        )
    for index, note_id in enumerate(wanted):
        if note_id not in notes:
            raise not_found("credit_note", note_id)
        if notes[note_id]["customer_id"] != invoice["customer_id"]:
            raise wrong_value(f"credit_notes[id][{index}]", f"Credit note {note_id} belongs to another customer.")
    chosen = [notes[i] for i in wanted] if wanted else sorted(notes.values(), key=lambda n: (n["date"], n["id"]))
    usable = [
        n
        for n in chosen
        if n["customer_id"] == invoice["customer_id"]
        and n["status"] == "refund_due"
        and n["amount_available"] > 0
        and n["currency_code"] == invoice["currency_code"]
    ]
    if not usable:
        raise ApiError(400, f"No credits available for customer {invoice['customer_id']}.", "invalid_request")
    return usable


def apply(invoice: dict[str, Any], notes: list[dict[str, Any]], *, resource_version: int, now: int) -> int:
    """Apply `notes` to `invoice` in place, up to its amount due; returns the amount applied."""
    total = 0
    for note in notes:
        amount = min(note["amount_available"], invoice["amount_due"])
        if amount <= 0:
            break
        note["amount_available"] -= amount
        note["amount_allocated"] += amount
        note["allocations"].append({"allocated_amount": amount, "allocated_at": now, "invoice_id": invoice["id"]})
        note.update(status="refunded" if note["amount_available"] == 0 else "refund_due", updated_at=now)
        invoice.setdefault("applied_credits", []).append(
            {"cn_id": note["id"], "applied_amount": amount, "applied_at": now, "cn_date": note["date"]}
            | {"cn_reason_code": note["reason_code"], "cn_status": note["status"]}
        )
        invoice["amount_due"] -= amount
        invoice["amount_to_collect"] = max(invoice.get("amount_to_collect", 0) - amount, 0)
        invoice["credits_applied"] = invoice.get("credits_applied", 0) + amount
        total += amount
    if invoice["amount_due"] == 0:
        invoice.update(status="paid", paid_at=now)
        invoice.pop("next_retry_at", None)
    invoice.update(updated_at=now, resource_version=resource_version)
    return total
