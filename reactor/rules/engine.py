"""decide(): the first rule whose `on` filter and `when` hold decides, then guardrails apply.

Pure: the event and `now` come in, a Decision comes out; no I/O, no clock, no environment.
A write_off is the only decision that moves money, so after a write_off rule matches it must
also pass every guardrail below; any doubt turns it into a skip that names what stopped it.
"""

from __future__ import annotations

import dataclasses
import functools
import string
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from . import comments
from .fields import MISSING, Context, check_now
from .model import Decision, Rule, RuleSet
from .money import to_major
from .plan import rule_plan

WRITABLE_STATUSES = frozenset({"payment_due", "posted", "not_paid"})
"""Chargebee refuses write_off on any other invoice status (chargebee-api.md §4)."""


def decide(ruleset: RuleSet, event: Mapping[str, Any], now: datetime) -> Decision:
    """The Decision for one Chargebee event; never raises on odd event data."""
    check_now(now)
    ctx = Context(event, now)
    rule = first_match(ruleset, ctx)
    return conclude(ruleset, rule, ctx)


def first_match(ruleset: RuleSet, ctx: Context) -> Rule | None:
    """The deciding rule, or None. Tries, in file order, only the rules that the event's type and
    guard values leave possible (see plan.py); the result is that of trying every rule."""
    for tests, rule in rule_plan(ruleset).select(ctx):
        for test in tests:
            if not test(ctx):
                break
        else:
            return rule
    return None


class _Invoice:
    """The facts about the event's invoice that decisions and comments report."""

    __slots__ = ("amount_due", "amount_major", "currency", "customer_id", "id", "status")

    def __init__(self, ctx: Context) -> None:
        invoice = ctx.invoice
        invoice_id = invoice.get("id")
        self.id = invoice_id if invoice_id.__class__ is str and invoice_id else None
        currency = invoice.get("currency_code")
        self.currency = currency if currency.__class__ is str and currency else None
        amount = invoice.get("amount_due")
        self.amount_due = amount if amount.__class__ is int else None
        self.amount_major: Decimal | None = None
        if self.amount_due is not None and self.currency is not None:
            self.amount_major = to_major(self.amount_due, self.currency)
        self.status = invoice.get("status")
        self.customer_id = invoice.get("customer_id")


def _payment_in_progress(ctx: Context) -> bool:
    """Only asked once a write_off rule matched: most events never walk their payments."""
    payments = ctx.invoice.get("linked_payments")
    if payments.__class__ is not list:
        return False
    for payment in payments:
        if (payment.__class__ is dict or isinstance(payment, Mapping)) and payment.get("txn_status") == "in_progress":
            return True
    return False


_DECISION_FIELDS = tuple(f.name for f in dataclasses.fields(Decision))
assert _DECISION_FIELDS == (
    "action", "rule", "reason", "comment", "invoice_id", "currency", "amount_due", "amount_due_major",
    "dry_run", "rules_version", "blocked_by",
) and not hasattr(Decision, "__post_init__"), "update _decision() to the fields of Decision"  # fmt: skip


def _decision(
    ruleset: RuleSet,
    rule: Rule | None,
    invoice: _Invoice,
    action: str,
    reason: str,
    comment: str | None = None,
    blocked_by: str | None = None,
) -> Decision:
    """A Decision built without the frozen dataclass __init__, which costs ~1.5 µs per call (a
    guarded object.__setattr__ per field, a third of a decision); the record is the same and stays
    immutable."""
    decision = object.__new__(Decision)
    object.__setattr__(
        decision,
        "__dict__",
        {
            "action": action,
            "rule": rule.name if rule is not None else None,
            "reason": reason,
            "comment": comment,
            "invoice_id": invoice.id,
            "currency": invoice.currency,
            "amount_due": invoice.amount_due,
            "amount_due_major": invoice.amount_major,
            "dry_run": ruleset.mode == "dry_run",
            "rules_version": ruleset.version,
            "blocked_by": blocked_by,
        },
    )
    return decision


def conclude(ruleset: RuleSet, rule: Rule | None, ctx: Context) -> Decision:
    """Turn the deciding rule (or none) into a Decision, applying the write-off guardrails."""
    invoice = _Invoice(ctx)
    if rule is None:
        return _decision(ruleset, rule, invoice, "none", "no rule matched")
    matched = f"rule {rule.name} matched"
    if rule.action == "skip":
        return _decision(ruleset, rule, invoice, "skip", matched)
    blocked = _guardrail(ruleset, invoice, ctx)
    if blocked is not None:
        guard, why = blocked
        return _decision(ruleset, rule, invoice, "skip", f"{matched} but {why}", blocked_by=guard)
    comment = comments.render(rule.comment, _comment_values(rule, ctx, invoice))
    return _decision(ruleset, rule, invoice, "write_off", matched, comment=comment)


def _guardrail(ruleset: RuleSet, invoice: _Invoice, ctx: Context) -> tuple[str, str] | None:
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
    if _payment_in_progress(ctx):
        return "invoice.linked_payments", "a payment on the invoice is still in progress"
    limit = ruleset.limits.max_write_off
    if limit is None:
        return None
    cap = limit.major_for(invoice.currency)
    if cap is None:
        return "limits.max_write_off", (
            f"limits.max_write_off has no limit for {invoice.currency}, so write-offs in {invoice.currency} "
            f"are blocked ({invoice.amount_major} {invoice.currency} due)"
        )
    if invoice.amount_major > cap:
        return "limits.max_write_off", (
            f"{invoice.amount_major} {invoice.currency} is over limits.max_write_off ({cap} {invoice.currency})"
        )
    return None


def _comment_values(rule: Rule, ctx: Context, invoice: _Invoice) -> dict[str, str]:
    """The placeholders the rule's comment uses (only those: most comments name two or three)."""
    return {name: _PLACEHOLDER_VALUES[name](rule, ctx, invoice) for name in _placeholders(rule.comment)}


@functools.lru_cache(maxsize=1024)
def _placeholders(template: str | None) -> tuple[str, ...]:
    """Placeholder names of a comment template; the loader has already refused unknown ones."""
    parsed = string.Formatter().parse(template or comments.DEFAULT_COMMENT)
    return tuple({name: None for _, name, _, _ in parsed if name in _PLACEHOLDER_VALUES})


def _customer_id(ctx: Context, invoice: _Invoice) -> str:
    customer_id = invoice.customer_id
    if not isinstance(customer_id, str):
        customer = ctx.content.get("customer")
        customer_id = customer.get("id") if isinstance(customer, Mapping) else None
    return customer_id if isinstance(customer_id, str) else "?"


def _days_text(ctx: Context) -> str:
    days = ctx.days_overdue()
    return "?" if days is MISSING else str(days)


_PLACEHOLDER_VALUES: dict[str, Callable[[Rule, Context, _Invoice], str]] = {
    "rule": lambda rule, ctx, invoice: rule.name,
    "invoice_id": lambda rule, ctx, invoice: invoice.id or "?",
    "customer_id": lambda rule, ctx, invoice: _customer_id(ctx, invoice),
    "amount_due": lambda rule, ctx, invoice: str(invoice.amount_major) if invoice.amount_major is not None else "?",
    "currency": lambda rule, ctx, invoice: invoice.currency or "?",
    "days_overdue": lambda rule, ctx, invoice: _days_text(ctx),
    "event_type": lambda rule, ctx, invoice: ctx.event_type if isinstance(ctx.event_type, str) else "?",
}
