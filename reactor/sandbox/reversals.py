"""Pure reversal logic: `remove_credit_note`, the call that reverses a write-off, and a credit note
voided on the site (an admin in Chargebee's UI), as Chargebee's "Remove credit note from an invoice"
(https://apidocs.chargebee.com/docs/api/invoices/remove-credit-note-from-an-invoice) describes them.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError, wrong_value

NOT_REMOVABLE_FROM = ("voided", "pending")


def check_removable(invoice: dict[str, Any], note: dict[str, Any], invalid_state_status: int) -> None:
    """ApiError as Chargebee's prerequisites say; nothing is changed.

    The invoice must not be `voided` or `pending`, the credit note not `voided`, and of type
    `adjustment` or `refundable`. UNCONFIRMED, so chosen here and switchable by tests with faults:
    a credit note that exists but is not applied to the invoice answers 400 `param_wrong_value` on
    `credit_note[id]` (an unknown one 404, answered by the caller)."""
    if invoice["status"] in NOT_REMOVABLE_FROM:
        raise _invalid(invalid_state_status, f"Invoice {invoice['id']} is in {invoice['status']} state.")
    if note.get("status") == "voided":
        raise _invalid(invalid_state_status, f"Credit note {note['id']} is voided.")
    if note.get("type") not in ("adjustment", "refundable"):
        raise _invalid(invalid_state_status, f"Credit note {note['id']} cannot be removed from an invoice.")
    if allocated(note, invoice["id"]) <= 0:
        raise wrong_value("credit_note[id]", f"Credit note {note['id']} is not applied to invoice {invoice['id']}.")


def _invalid(status: int, message: str) -> ApiError:
    return ApiError(status, message, "invalid_state_for_request")


def allocated(note: dict[str, Any], invoice_id: str) -> int:
    return sum(a.get("allocated_amount", 0) for a in note.get("allocations", []) if a.get("invoice_id") == invoice_id)


def remove(invoice: dict[str, Any], note: dict[str, Any], *, resource_version: int, now: int) -> int:
    """Take `note`'s allocation off `invoice`, both in place; returns the amount.

    `amount_due` rises by the note's allocation to the invoice; `amount_adjusted` falls by it for an
    adjustment note, `write_off_amount` too when the note's create_reason_code is "Write Off"; a
    `paid` invoice becomes `posted` when its due date is ahead, else `not_paid`; the note's
    `amount_allocated` falls and `amount_available` rises by the same amount. What voiding an applied
    adjustment note does to its invoice is not documented (UNCONFIRMED): the sandbox takes the
    allocation off here as remove_credit_note does, then voids the note."""
    amount = allocated(note, invoice["id"])
    note["allocations"] = [a for a in note.get("allocations", []) if a.get("invoice_id") != invoice["id"]]
    note.update(
        amount_allocated=note.get("amount_allocated", 0) - amount,
        amount_available=note.get("amount_available", 0) + amount,
        updated_at=now,
        resource_version=resource_version,
    )
    invoice["amount_due"] += amount
    invoice["amount_to_collect"] = invoice.get("amount_to_collect", 0) + amount
    if note.get("type") == "adjustment":
        invoice["amount_adjusted"] = invoice.get("amount_adjusted", 0) - amount
        if note.get("create_reason_code") == "Write Off":
            invoice["write_off_amount"] = invoice.get("write_off_amount", 0) - amount
        listed = "adjustment_credit_notes"
    else:
        invoice["credits_applied"] = invoice.get("credits_applied", 0) - amount
        listed = "applied_credits"
    invoice[listed] = [n for n in invoice.get(listed, []) if n.get("cn_id") != note["id"]]
    if invoice["status"] == "paid" and amount > 0:
        invoice["status"] = "posted" if invoice.get("due_date", 0) > now else "not_paid"
        invoice.pop("paid_at", None)
    invoice.update(updated_at=now, resource_version=resource_version)
    return amount
