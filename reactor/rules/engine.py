"""decide(): the first rule whose `on` filter and `when` hold decides, then guardrails apply.

Pure: the event and `now` come in, a Decision comes out; no I/O, no clock, no environment.
A write_off is the only decision that moves money, so after a write_off rule matches it must
also pass every guardrail below; any doubt turns it into a skip that names what stopped it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from . import comments
from .fields import MISSING, Context, check_now
from .model import Decision, Rule, RuleSet
from .money import to_major

WRITABLE_STATUSES = frozenset({"payment_due", "posted", "not_paid"})
"""Chargebee refuses write_off on any other invoice status (chargebee-api.md §4)."""


def decide(ruleset: RuleSet, event: Mapping[str, Any], now: datetime) -> Decision:
    """The Decision for one Chargebee event; never raises on odd event data."""
    check_now(now)
    ctx = Context(event, now)
    rule = first_match(ruleset, ctx)
    return conclude(ruleset, rule, ctx)


def first_match(ruleset: RuleSet, ctx: Context) -> Rule | None:
    """The deciding rule, or None. Iterates pre-extracted (on, test, rule) triples for speed."""
    event_type = ctx.event_type
    for on, tests, rule in ruleset.plan:
        if on is not None and event_type not in on:
            continue
        for test in tests:
            if not test(ctx):
                break
        else:
            return rule
    return None


class _Invoice:
    """The facts about the event's invoice that decisions and comments report."""

    def __init__(self, ctx: Context) -> None:
        invoice = ctx.invoice
        invoice_id = invoice.get("id")
        self.id = invoice_id if isinstance(invoice_id, str) and invoice_id else None
        currency = invoice.get("currency_code")
        self.currency = currency if isinstance(currency, str) and currency else None
        amount = invoice.get("amount_due")
        self.amount_due = amount if type(amount) is int else None
        self.amount_major: Decimal | None = None
        if self.amount_due is not None and self.currency is not None:
            self.amount_major = to_major(self.amount_due, self.currency)
        self.status = invoice.get("status")
        payments = invoice.get("linked_payments")
        self.payment_in_progress = isinstance(payments, list) and any(
            isinstance(p, Mapping) and p.get("txn_status") == "in_progress" for p in payments
        )
        self.customer_id = invoice.get("customer_id")


def conclude(ruleset: RuleSet, rule: Rule | None, ctx: Context) -> Decision:
    """Turn the deciding rule (or none) into a Decision, applying the write-off guardrails."""
    invoice = _Invoice(ctx)

    def decision(action: str, reason: str, comment: str | None = None, blocked_by: str | None = None) -> Decision:
        return Decision(
            action=action,
            rule=rule.name if rule else None,
            reason=reason,
            comment=comment,
            invoice_id=invoice.id,
            currency=invoice.currency,
            amount_due=invoice.amount_due,
            amount_due_major=invoice.amount_major,
            dry_run=ruleset.mode == "dry_run",
            rules_version=ruleset.version,
            blocked_by=blocked_by,
        )

    if rule is None:
        return decision("none", "no rule matched")
    matched = f"rule {rule.name} matched"
    if rule.action == "skip":
        return decision("skip", matched)
    blocked = _guardrail(ruleset, invoice)
    if blocked is not None:
        guard, why = blocked
        return decision("skip", f"{matched} but {why}", blocked_by=guard)
    comment = comments.render(rule.comment, _comment_values(rule, ctx, invoice))
    return decision("write_off", matched, comment=comment)


def _guardrail(ruleset: RuleSet, invoice: _Invoice) -> tuple[str, str] | None:
    """(what blocked, why) when a matched write_off must not happen, else None."""
    if invoice.id is None:
        return "invoice", "the event carries no invoice id, so there is nothing to write off"
    if invoice.amount_due is None:
        return "amount_due", "invoice.amount_due is missing, so there is nothing to write off"
    if invoice.amount_due <= 0:
        return "amount_due", f"invoice.amount_due is {invoice.amount_due}, so there is nothing to write off"
    if invoice.currency is None or invoice.amount_major is None:
        return "currency_code", "invoice.currency_code is missing, so the amount cannot be checked"
    if invoice.status not in WRITABLE_STATUSES:
        return "invoice.status", (
            f"invoice status is {invoice.status!r}; only payment_due, posted or not_paid invoices can be written off"
        )
    if invoice.payment_in_progress:
        return "invoice.linked_payments", "a payment on the invoice is still in progress"
    limit = ruleset.limits.max_write_off
    if limit is None:
        return None
    amount = f"{invoice.amount_major} {invoice.currency}"
    cap = limit.major_for(invoice.currency)
    if cap is None:
        return "limits.max_write_off", (
            f"limits.max_write_off has no limit for {invoice.currency}, so write-offs in {invoice.currency} "
            f"are blocked ({amount} due)"
        )
    if invoice.amount_major > cap:
        return "limits.max_write_off", f"{amount} is over limits.max_write_off ({cap} {invoice.currency})"
    return None


def _comment_values(rule: Rule, ctx: Context, invoice: _Invoice) -> dict[str, str]:
    customer_id = invoice.customer_id
    if not isinstance(customer_id, str):
        customer = ctx.content.get("customer")
        customer_id = customer.get("id") if isinstance(customer, Mapping) else None
    days = ctx.days_overdue()
    return {
        "rule": rule.name,
        "invoice_id": invoice.id or "?",
        "customer_id": customer_id if isinstance(customer_id, str) else "?",
        "amount_due": str(invoice.amount_major) if invoice.amount_major is not None else "?",
        "currency": invoice.currency or "?",
        "days_overdue": "?" if days is MISSING else str(days),
        "event_type": ctx.event_type if isinstance(ctx.event_type, str) else "?",
    }
