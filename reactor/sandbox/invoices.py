"""Pure invoice logic: realistic defaults, the write-off precondition and its effects.

Kept free of locks and I/O so the Chargebee rules (which statuses may be written off, what a write-off
changes) sit in one readable place; `SandboxState` applies them under its lock.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from .errors import ApiError

DAY = 86400
WRITABLE_OFF_STATUSES = ("posted", "payment_due", "not_paid")
INVOICE_STATUSES = ("paid", "posted", "payment_due", "not_paid", "voided", "pending")
DUNNING_STATUSES = ("in_progress", "exhausted", "stopped", "success")
UNPAID_STATUSES = ("posted", "payment_due", "not_paid", "pending")
# Chargebee leaves `updated_at` alone when only these change (the Invoice object's `updated_at` in
# Chargebee's API reference); the sandbox does the same.
NON_UPDATING_FIELDS = frozenset({"next_retry_at", "dunning_status", "has_advance_charges"})


def build_invoice(fields: dict[str, Any], *, seq: int, resource_version: int, now: int) -> dict[str, Any]:
    """Fill every field a Chargebee v2 invoice carries that the caller left out.

    Amounts stay consistent (amount_due = total - amount_paid for unpaid invoices) so code under test
    that cross-checks them sees the same arithmetic as in production.

    Ids are not invented beyond what Chargebee requires: `customer_id` is required on a real invoice,
    so a placeholder `cus_sb_NNNNN` is filled in when the caller gives none; `subscription_id` is only
    there when the caller gives it (absent on a non-recurring invoice, null on a consolidated one, as
    in Chargebee's Invoice object, https://apidocs.chargebee.com/docs/api/invoices). `recurring`
    defaults to whether a subscription_id was given.
    """
    f = copy.deepcopy(fields)
    status = f.get("status", "payment_due")
    if status not in INVOICE_STATUSES:
        raise ValueError(f"status must be one of {INVOICE_STATUSES}, got {status!r}")
    f["amount_paid"], f["amount_due"], f["total"] = _amounts(
        status, f.get("total"), f.get("amount_paid"), f.get("amount_due")
    )
    invoice = _default_fields(f, status, seq=seq, resource_version=resource_version, now=now)
    if status == "paid":
        invoice["paid_at"] = invoice["date"]
    invoice.update(f)
    if not invoice["line_items"]:
        invoice["line_items"] = [_line_item(invoice)]
    return invoice


def _default_fields(f: dict[str, Any], status: str, *, seq: int, resource_version: int, now: int) -> dict[str, Any]:
    """Every field of a Chargebee v2 invoice, with the value an invoice made now would have; the
    caller's own fields `f` (amounts already made consistent) are laid over it afterwards."""
    date = f.get("date", now)
    net_term_days = f.get("net_term_days", 0)
    return {
        "id": f"inv_sb_{seq:05d}",
        "customer_id": f"cus_sb_{seq:05d}",
        "recurring": f.get("subscription_id") is not None,
        "status": status,
        "price_type": "tax_exclusive",
        "date": date,
        "due_date": date + net_term_days * DAY,
        "net_term_days": net_term_days,
        "exchange_rate": 1.0,
        "currency_code": "USD",
        **_amount_fields(f),
        "first_invoice": False,
        "has_advance_charges": False,
        "term_finalized": True,
        "is_gifted": False,
        "generated_at": date,
        "updated_at": now,
        "resource_version": resource_version,
        "deleted": False,
        "object": "invoice",
        "channel": "web",
        "base_currency_code": f.get("currency_code", "USD"),
        "line_items": [],
        "linked_payments": [],
        "applied_credits": [],
        "adjustment_credit_notes": [],
        "issued_credit_notes": [],
        "linked_orders": [],
        "dunning_attempts": [],
    }


def _amount_fields(f: dict[str, Any]) -> dict[str, Any]:
    """The amounts of an invoice with no tax, credits, adjustments or rounding: all of its total is
    its sub-total, and all that is unpaid is still to be collected."""
    total = f["total"]
    return {
        "total": total,
        "amount_paid": f["amount_paid"],
        "amount_adjusted": 0,
        "write_off_amount": 0,
        "credits_applied": 0,
        "amount_due": f["amount_due"],
        "amount_to_collect": f["amount_due"],
        "round_off_amount": 0,
        "sub_total": total,
        "tax": 0,
    }


def _amounts(status: str, total: int | None, paid: int | None, due: int | None) -> tuple[int, int, int]:
    """Derive missing amounts so that amount_due = total - amount_paid holds, as on a real invoice."""
    if status in UNPAID_STATUSES:
        if total is None:
            total = (1000 if due is None else due) + (paid or 0)
        if paid is None:
            paid = 0 if due is None else total - due
        return paid, total - paid if due is None else due, total
    if total is None:
        total = 1000 if paid is None else paid
    if paid is None:
        paid = total if status == "paid" else 0
    return paid, 0 if due is None else due, total


def _line_item(invoice: dict[str, Any]) -> dict[str, Any]:
    item = {
        "id": f"li_{invoice['id']}",
        "date_from": invoice["date"] - 30 * DAY,
        "date_to": invoice["date"],
        "unit_amount": invoice["sub_total"],
        "quantity": 1,
        "amount": invoice["sub_total"],
        "pricing_model": "flat_fee",
        "is_taxed": False,
        "tax_amount": 0,
        "object": "line_item",
        "customer_id": invoice["customer_id"],
        "description": "Sandbox plan" if invoice.get("recurring") else "Sandbox one-off charge",
        "entity_type": "plan_item_price" if invoice.get("recurring") else "charge_item_price",
        "entity_id": "sandbox-plan-USD-monthly" if invoice.get("recurring") else "sandbox-charge-USD",
        "discount_amount": 0,
        "item_level_discount_amount": 0,
    }
    if invoice.get("subscription_id") is not None:
        item["subscription_id"] = invoice["subscription_id"]
    return item


def apply_update(invoice: dict[str, Any], fields: dict[str, Any], *, resource_version: int, now: int) -> None:
    """Apply a control-API change in place, the way Chargebee would record it.

    Marking an invoice paid settles it (amount_due -> amount_paid) unless amounts are given, so a test
    can say "the customer paid meanwhile" with a single field.
    """
    fields = copy.deepcopy(fields)
    fields.pop("id", None)
    if fields.get("status") == "paid" and invoice["status"] != "paid" and "amount_due" not in fields:
        fields.setdefault("amount_paid", invoice["amount_paid"] + invoice["amount_due"])
        fields["amount_due"] = 0
        fields["amount_to_collect"] = 0
        fields.setdefault("paid_at", now)
    invoice.update(fields)
    invoice["resource_version"] = resource_version
    if "updated_at" not in fields and not set(fields) <= NON_UPDATING_FIELDS:
        invoice["updated_at"] = now


def check_writable_off(invoice: dict[str, Any], invalid_state_status: int) -> None:
    """Raise `invalid_state_for_request` when Chargebee would refuse the write-off (its documented prerequisites).

    A deleted invoice is the caller's business (`SandboxState` answers as its settings say)."""
    if invoice["status"] not in WRITABLE_OFF_STATUSES:
        reason = f"the invoice is in {invoice['status']} state"
    elif any(p.get("txn_status") == "in_progress" for p in invoice.get("linked_payments", [])):
        reason = "there are in-progress payments for the invoice"
    else:
        return
    raise ApiError(
        invalid_state_status,
        f"Invoice {invoice['id']} cannot be written off as {reason}.",
        "invalid_state_for_request",
    )


def write_off(invoice: dict[str, Any], *, cn_id: str, resource_version: int, now: int | None = None) -> dict[str, Any]:
    """Write the invoice off in place and return the adjustment credit note Chargebee creates.

    Effects (https://apidocs.chargebee.com/docs/api/invoices/write-off-an-invoice): status `paid`;
    `write_off_amount` and `amount_adjusted` raised by the amount due; amount_due 0; an `adjustment`
    credit note with create_reason_code "Write Off", listed in the invoice's `adjustment_credit_notes[]`."""
    now = int(time.time()) if now is None else now
    amount = invoice["amount_due"]
    credit_note = _write_off_credit_note(invoice, amount, cn_id=cn_id, resource_version=resource_version, now=now)
    invoice["adjustment_credit_notes"] = [
        *invoice.get("adjustment_credit_notes", []),
        {
            "cn_id": cn_id,
            "cn_reason_code": "write_off",
            "cn_create_reason_code": "Write Off",
            "cn_date": now,
            "cn_total": amount,
            "cn_status": "adjusted",
        },
    ]
    invoice.update(
        status="paid",
        write_off_amount=invoice.get("write_off_amount", 0) + amount,
        amount_adjusted=invoice.get("amount_adjusted", 0) + amount,
        amount_due=0,
        amount_to_collect=0,
        paid_at=now,
        updated_at=now,
        resource_version=resource_version,
    )
    invoice.pop("next_retry_at", None)
    return credit_note


def _write_off_credit_note(
    invoice: dict[str, Any], amount: int, *, cn_id: str, resource_version: int, now: int
) -> dict[str, Any]:
    """The adjustment credit note a write-off of `amount` creates, allocated in full to the invoice
    it leaves paid."""
    return {
        "id": cn_id,
        "customer_id": invoice["customer_id"],
        **({"subscription_id": invoice["subscription_id"]} if "subscription_id" in invoice else {}),
        "reference_invoice_id": invoice["id"],
        "type": "adjustment",
        "reason_code": "write_off",
        "create_reason_code": "Write Off",
        "status": "adjusted",
        "date": now,
        "price_type": invoice.get("price_type", "tax_exclusive"),
        "exchange_rate": invoice.get("exchange_rate", 1.0),
        "total": amount,
        "amount_allocated": amount,
        "amount_refunded": 0,
        "amount_available": 0,
        "sub_total": amount,
        "round_off_amount": 0,
        "fractional_correction": 0,
        "generated_at": now,
        "updated_at": now,
        "resource_version": resource_version,
        "deleted": False,
        "object": "credit_note",
        "currency_code": invoice["currency_code"],
        "base_currency_code": invoice.get("base_currency_code", invoice["currency_code"]),
        "line_items": [],
        "allocations": [
            {
                "allocated_amount": amount,
                "allocated_at": now,
                "invoice_id": invoice["id"],
                "invoice_date": invoice["date"],
                "invoice_status": "paid",
            }
        ],
    }
