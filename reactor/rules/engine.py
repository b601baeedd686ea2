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
from typing import Any, NamedTuple

from . import comments
from .conditions import unevaluable
from .facts import walk_subject
from .fields import MISSING, Subject, check_now
from .model import Decision, Rule, RuleSet
from .money import to_major
from .operators import Unevaluable
from .plan import rule_plan
from .safety import collecting_reason

WRITABLE_STATUSES = frozenset({"payment_due", "posted", "not_paid"})
"""Chargebee refuses write_off on any other invoice status
(https://apidocs.chargebee.com/docs/api/invoices/write-off-an-invoice)."""


def decide(ruleset: RuleSet, event: Mapping[str, Any], now: datetime) -> Decision:
    """The Decision for one Chargebee event; never raises on odd event data."""
    check_now(now)
    subject = Subject(event, now)
    try:
        rule = first_match(ruleset, subject)
    except Unevaluable:  # a comparison that cannot be made on this event: never read as "false"
        return _decide_open(ruleset, subject)
    return conclude(ruleset, rule, subject)


def first_match(ruleset: RuleSet, subject: Subject) -> Rule | None:
    """The deciding rule, or None. Tries, in file order, only the rules that the event's type and
    guard values leave possible (see plan.py); the result is that of trying every rule."""
    return rule_plan(ruleset).match(subject)


def _decide_open(ruleset: RuleSet, subject: Subject) -> Decision:
    """The Decision when a condition met on the way cannot be evaluated (operators.Unevaluable).

    The rules are weighed again in three-valued logic (reactor/rules/facts.py `walk_subject`): when a
    rule certainly holds before any rule whose value is open, it decides as usual. Otherwise the
    first open rule blocks every write-off, recorded as `UNEVALUABLE_BLOCK` with the condition and
    why: a skip rule might protect the invoice, a write_off rule might not hold."""
    steps = walk_subject(ruleset, subject)
    open_step = next((step for step in steps if step.verdict is None), None)
    if open_step is None:
        return conclude(ruleset, steps[-1].rule if steps and steps[-1].verdict else None, subject)
    rule = open_step.rule
    invoice = subject.content.get("invoice")
    record = _record(ruleset, invoice if invoice.__class__ is dict else subject.invoice)
    found = unevaluable(rule.condition, subject)
    if found is None:  # cannot happen: only Unevaluable leaves a verdict open here; if it does, do not act
        what, why = "a condition", "its value is unknown"
    else:
        leaf, why = found
        what = f"{leaf.field.path if leaf.field else '?'} {leaf.operator} {leaf.expected_text} (line {leaf.line})"
    might = "might protect this invoice" if rule.action == "skip" else "might hold"
    record.update(
        action="skip",
        rule=rule.name,
        blocked_by=UNEVALUABLE_BLOCK,
        reason=f"{rule.action} rule {rule.name} {might}, but its condition {what} cannot be evaluated: {why}",
    )
    return _decision(record)


UNEVALUABLE_BLOCK = "unevaluable"
"""`Decision.blocked_by` when a condition that could change the decision cannot be evaluated."""


def _record(ruleset: RuleSet, invoice: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of the Decision, filled with the facts about the event's invoice that decisions and
    comments report; `conclude` sets the action, rule, reason (and comment, blocked_by)."""
    invoice_id = invoice.get("id")
    currency = invoice.get("currency_code")
    if currency.__class__ is not str or not currency:
        currency = None
    elif not currency.isupper():
        currency = currency.upper()  # Chargebee sends ISO codes in capitals; limits are keyed so
    amount = invoice.get("amount_due")
    if amount.__class__ is not int:
        amount = None
    return {
        "action": "none",
        "rule": None,
        "reason": "no rule matched",
        "comment": None,
        "invoice_id": invoice_id if invoice_id.__class__ is str and invoice_id else None,
        "currency": currency,
        "amount_due": amount,
        "amount_due_major": None if amount is None or currency is None else to_major(amount, currency),
        "dry_run": ruleset.mode == "dry_run",
        "rules_version": ruleset.version,
        "blocked_by": None,
    }


def _payment_in_progress(invoice: Mapping[str, Any]) -> bool:
    """Only asked once a write_off rule matched: most events never walk their payments."""
    payments = invoice.get("linked_payments")
    if payments.__class__ is not list:
        return False
    for payment in payments:
        if (payment.__class__ is dict or isinstance(payment, Mapping)) and _in_progress(payment.get("txn_status")):
            return True
    return False


def _in_progress(txn_status: Any) -> bool:
    """Chargebee writes `in_progress`; a differently cased or unexpected text is not a settled payment
    either, so only the statuses known to be over count as not in progress."""
    return txn_status.__class__ is str and txn_status.lower() not in _PAYMENT_OVER


_PAYMENT_OVER = frozenset({"success", "voided", "failure", "timeout", "late_failure"})
"""Transaction statuses of Chargebee's API under which no payment is in flight; `needs_attention`
(the gateway connection broke off, the result is unknown) counts as in flight."""


_DECISION_FIELDS = tuple(f.name for f in dataclasses.fields(Decision))
assert _DECISION_FIELDS == (
    "action", "rule", "reason", "comment", "invoice_id", "currency", "amount_due", "amount_due_major",
    "dry_run", "rules_version", "blocked_by",
) and not hasattr(Decision, "__post_init__"), "update _record() to the fields of Decision"  # fmt: skip


def _decision(record: dict[str, Any]) -> Decision:
    """A Decision built without the frozen dataclass __init__, whose guarded object.__setattr__ per
    field cost a third of a decision (docs/benchmarks.md); the record is the same and stays
    immutable."""
    decision = object.__new__(Decision)
    object.__setattr__(decision, "__dict__", record)
    return decision


def conclude(ruleset: RuleSet, rule: Rule | None, subject: Subject) -> Decision:
    """Turn the deciding rule (or none) into a Decision, applying the write-off guardrails."""
    invoice = subject.content.get("invoice")
    if invoice.__class__ is not dict:
        invoice = subject.invoice
    record = _record(ruleset, invoice)
    if rule is None:
        return _decision(record)
    record["rule"] = rule.name
    record["reason"] = matched = f"rule {rule.name} matched"
    if rule.action == "skip":
        record["action"] = "skip"
        return _decision(record)
    blocked = _guardrail(ruleset, record, invoice) or _safety(rule, invoice, subject.now_ts)
    if blocked is not None:
        record["action"] = "skip"
        record["blocked_by"] = blocked.by
        # An invoice with nothing due reads as such, not as a write-off rule that matched it.
        record["reason"] = blocked.why if blocked.nothing_due else f"{matched} but {blocked.why}"
        return _decision(record)
    record["action"] = "write_off"
    record["comment"] = comments.render(rule.comment, _comment_values(rule, subject, record))
    return _decision(record)


class Blocked(NamedTuple):
    """What stopped a matched write_off: `by` is the Decision's blocked_by, `why` the sentence; an
    invoice with `nothing_due` (paid, or no amount due) is not said to have been matched by the rule."""

    by: str
    why: str
    nothing_due: bool = False


def _guardrail(ruleset: RuleSet, record: dict[str, Any], invoice: Mapping[str, Any]) -> Blocked | None:
    """What blocks a matched write_off that must not happen, else None."""
    amount, currency, major = record["amount_due"], record["currency"], record["amount_due_major"]
    if record["invoice_id"] is None:
        return Blocked("invoice", "the event carries no invoice id, so there is nothing to write off")
    if invoice.get("deleted") not in (None, False):  # Chargebee sends true; any other value: do not act
        return Blocked("invoice.deleted", "the invoice is deleted in Chargebee")
    if amount is None:
        return Blocked("amount_due", "invoice.amount_due is missing, so there is nothing to write off")
    status = invoice.get("status")
    if amount <= 0:
        paid = f" (status {status!r})" if status.__class__ is str else ""
        return Blocked("amount_due", f"nothing due: invoice.amount_due is {amount}{paid}, nothing to write off", True)
    if currency is None or major is None:
        return Blocked("currency_code", "invoice.currency_code is missing, so the amount cannot be checked")
    if status == "paid":
        return Blocked("invoice.status", "nothing due: the invoice is paid, nothing to write off", True)
    if status.__class__ is not str or status not in WRITABLE_STATUSES:
        why = f"invoice status is {status!r}; only payment_due, posted or not_paid invoices can be written off"
        return Blocked("invoice.status", why)
    if _payment_in_progress(invoice):
        return Blocked("invoice.linked_payments", "a payment on the invoice is still in progress")
    limit = ruleset.limits.max_write_off
    if limit is None:
        return None
    cap = limit.major_for(currency)
    if cap is None:
        return Blocked(
            "limits.max_write_off",
            f"limits.max_write_off has no limit for {currency}, so write-offs in {currency} "
            f"are blocked ({major} {currency} due)",
        )
    if major > cap:
        return Blocked("limits.max_write_off", f"{major} {currency} is over limits.max_write_off ({cap} {currency})")
    return None


def _safety(rule: Rule, invoice: Mapping[str, Any], now_ts: float) -> Blocked | None:
    """Chargebee still collecting (reactor/rules/safety.py): blocks unless the rule opted in
    (`while_collecting: write_off`, documented in rules.yaml and docs/operations.md)."""
    if rule.while_collecting == "write_off":
        return None
    why = collecting_reason(invoice, now_ts)
    return None if why is None else Blocked(COLLECTING_BLOCK, why)


COLLECTING_BLOCK = "collecting"
"""`Decision.blocked_by` when Chargebee is still collecting the invoice."""


def _comment_values(rule: Rule, subject: Subject, record: dict[str, Any]) -> dict[str, str]:
    """The placeholders the rule's comment uses (only those: most comments name two or three)."""
    return {name: _PLACEHOLDER_VALUES[name](rule, subject, record) for name in _placeholders(rule.comment)}


@functools.lru_cache(maxsize=1024)
def _placeholders(template: str | None) -> tuple[str, ...]:
    """Placeholder names of a comment template; the loader has already refused unknown ones."""
    parsed = string.Formatter().parse(template or comments.DEFAULT_COMMENT)
    return tuple({name: None for _, name, _, _ in parsed if name in _PLACEHOLDER_VALUES})


def _customer_id(subject: Subject) -> str:
    customer_id = subject.invoice.get("customer_id")
    if not isinstance(customer_id, str):
        customer = subject.content.get("customer")
        customer_id = customer.get("id") if isinstance(customer, Mapping) else None
    return customer_id if isinstance(customer_id, str) else "?"


def _days_text(subject: Subject) -> str:
    days = subject.days_overdue()
    return "?" if days is MISSING else str(days)


def _amount_text(record: dict[str, Any]) -> str:
    major = record["amount_due_major"]
    return "?" if major is None else str(major)


_PLACEHOLDER_VALUES: dict[str, Callable[[Rule, Subject, dict[str, Any]], str]] = {
    "rule": lambda rule, subject, record: rule.name,
    "invoice_id": lambda rule, subject, record: record["invoice_id"] or "?",
    "customer_id": lambda rule, subject, record: _customer_id(subject),
    "amount_due": lambda rule, subject, record: _amount_text(record),
    "currency": lambda rule, subject, record: record["currency"] or "?",
    "days_overdue": lambda rule, subject, record: _days_text(subject),
    "event_type": lambda rule, subject, record: subject.event_type if isinstance(subject.event_type, str) else "?",
}
