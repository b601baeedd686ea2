"""Pure payment logic: a customer's excess payments (payments recorded with no invoice to pay) and
what `apply_payments` does with them.

Chargebee's "Record an excess payment for a customer"
(https://apidocs.chargebee.com/docs/api/customers/record-an-excess-payment-for-a-customer) records an
offline payment as a transaction and adds it to the customer's `excess_payments`; a payment that
arrives for a written-off (`paid`) invoice lands there too. "Apply payments for an invoice"
(https://apidocs.chargebee.com/docs/api/invoices/apply-payments-for-an-invoice) applies the payments
named by `transactions[id][i]` (optionally `transactions[amount][i]`), or without any the customer's
excess payments, to an invoice in `payment_due`, `posted` or `not_paid`: `amount_due` falls, the
invoice is `paid` when covered, and each transaction's `amount_unused` falls by what it gave.

What Chargebee answers for an invoice in another status, or a customer with nothing to apply, is
documented as a prerequisite, not as an error code: the sandbox answers invalid_state_for_request
(with the site's `invalid_state_status`) for the first and 400 `param_wrong_value` for the second.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ApiError, not_found, wrong_value

APPLICABLE_STATUSES = ("payment_due", "posted", "not_paid")
PAYMENT_METHODS = ("cash", "check", "bank_transfer", "other", "custom", "ach_credit", "sepa_credit")


def build_transaction(
    customer: Mapping[str, Any], amount: Any, currency: Any, method: Any, *, txn_id: str, now: int, version: int
) -> dict[str, Any]:
    """A successful payment of `amount` (minor units) with nothing applied yet, as Chargebee's
    transaction object has it; ValueError on an amount, currency or method Chargebee would refuse."""
    if type(amount) is not int or amount <= 0:
        raise ValueError(f"a payment needs a positive whole amount in minor units, got {amount!r}")
    if not isinstance(currency, str) or len(currency) != 3:
        raise ValueError(f"a payment needs a currency code, got {currency!r}")
    if method not in PAYMENT_METHODS:
        raise ValueError(f"payment_method must be one of {PAYMENT_METHODS}, got {method!r}")
    return {
        "id": txn_id,
        "customer_id": customer["id"],
        "payment_method": method,
        "gateway": "not_applicable",
        "type": "payment",
        "date": now,
        "exchange_rate": 1.0,
        "amount": amount,
        "status": "success",
        "updated_at": now,
        "resource_version": version,
        "deleted": False,
        "object": "transaction",
        "currency_code": currency,
        "base_currency_code": currency,
        "amount_unused": amount,
        "linked_invoices": [],
        "linked_refunds": [],
    }


def excess(transactions: Mapping[str, Mapping[str, Any]], customer_id: str) -> int:
    """The customer's `excess_payments`: what its successful payments have not applied yet."""
    return sum(
        t["amount_unused"]
        for t in transactions.values()
        if t["customer_id"] == customer_id and t["status"] == "success" and t["type"] == "payment"
    )


def chosen(
    transactions: Mapping[str, dict[str, Any]],
    invoice: Mapping[str, Any],
    wanted: list[tuple[str, int | None]],
    invalid_state_status: int,
) -> list[tuple[dict[str, Any], int | None]]:
    """The transactions to apply and the most each may give; ApiError, changing nothing, as Chargebee
    would refuse. Without `wanted`, the customer's payments with something unused, oldest first."""
    if invoice["status"] not in APPLICABLE_STATUSES:
        raise ApiError(
            invalid_state_status,
            f"Invoice {invoice['id']} is in {invoice['status']} state.",
            "invalid_state_for_request",
        )
    picked: list[tuple[dict[str, Any], int | None]] = []
    for i, (txn_id, amount) in enumerate(wanted):
        txn = transactions.get(txn_id)
        if txn is None:
            raise not_found("transaction", txn_id)
        if txn["customer_id"] != invoice["customer_id"] or txn["currency_code"] != invoice["currency_code"]:
            raise wrong_value(f"transactions[id][{i}]", f"Transaction {txn_id} cannot be applied to this invoice.")
        if amount is not None and amount <= 0:
            raise wrong_value(f"transactions[amount][{i}]", "amount should be greater than 0.")
        picked.append((txn, amount))
    if not wanted:
        picked = [
            (t, None)
            for t in sorted(transactions.values(), key=lambda t: t["date"])
            if t["customer_id"] == invoice["customer_id"]
            and t["currency_code"] == invoice["currency_code"]
            and t["status"] == "success"
        ]
    if sum(t["amount_unused"] for t, _ in picked) <= 0:
        raise wrong_value("transactions[id][0]", f"No excess payments available for customer {invoice['customer_id']}.")
    return picked


def apply(invoice: dict[str, Any], picked: list[tuple[dict[str, Any], int | None]], *, now: int, version: int) -> int:
    """Apply `picked` to `invoice`, both in place, up to what it owes; returns the amount applied."""
    applied = 0
    for txn, most in picked:
        give = min(txn["amount_unused"], invoice["amount_due"], most if most is not None else txn["amount_unused"])
        if give <= 0:
            continue
        txn["amount_unused"] -= give
        txn["linked_invoices"].append(
            {
                "invoice_id": invoice["id"],
                "applied_amount": give,
                "applied_at": now,
                "invoice_date": invoice.get("date"),
                "invoice_total": invoice.get("total"),
                "invoice_status": "paid" if invoice["amount_due"] == give else invoice["status"],
            }
        )
        txn.update(updated_at=now, resource_version=version)
        invoice["amount_due"] -= give
        invoice["amount_to_collect"] = max(0, invoice.get("amount_to_collect", 0) - give)
        invoice["amount_paid"] = invoice.get("amount_paid", 0) + give
        invoice.setdefault("linked_payments", []).append(
            {
                "txn_id": txn["id"],
                "applied_amount": give,
                "applied_at": now,
                "txn_status": "success",
                "txn_date": txn["date"],
                "txn_amount": txn["amount"],
            }
        )
        applied += give
    if invoice["amount_due"] == 0:
        invoice.update(status="paid", paid_at=now)
        invoice.pop("dunning_status", None)
    invoice.update(updated_at=now, resource_version=version)
    return applied
