"""What a preview of listed invoices can decide, and what only the event itself would tell.

A preview (`reactor rules diff`, `reactor sweep --dry-run`) decides each listed invoice as the sweep
finds it and as each event type a rule listens to would find it (`preview_plan`); a decision resting
on a field only the event carries is said so (`blind_read`). Pure: no Redis, HTTP or clock.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .conditions import Condition, kleene
from .event_types import INVOICE_EVENT_TYPES, SWEEP_EVENT_TYPE
from .facts import FETCHABLE_ROOTS
from .fields import CONTENT_ROOTS, EVENT_ROOT, MISSING, FieldRef, Subject
from .model import Decision, Rule, RuleSet

# What a listing supplies: the invoice; the customer and subscription, fetched when a rule reads them
# (FETCHABLE_ROOTS); `days_overdue`; and of the event itself its type, time, kind and API version.
# Anything else a rule reads (`transaction.*`, `card.*`, `credit_note.*`, `event.source`, ...) only
# the event carries: it is *event-only*. A decision that rests on an event-only field (a rule reading
# one might hold or not, and which it is could change whether the invoice is written off) could not
# be previewed, and is said so, never shown as if the field were missing.
LISTED_ROOTS: frozenset[str] = frozenset({"invoice", *FETCHABLE_ROOTS})
"""Resources a preview has for a listed invoice: the invoice, and what it can fetch for it."""

PREVIEW_EVENT_FIELDS: frozenset[str] = frozenset({"event_type", "occurred_at", "object", "api_version"})
"""Attributes of the event a preview builds as Chargebee would send them (`event.<name>`); the others
(`event.source`, `event.id`, `event.user` ...) only the event itself carries."""

OTHER_EVENT_PREFERENCE = ("invoice_updated", "payment_failed", "dunning_updated", "payment_succeeded")
"""Which event type stands for every invoice event type no rule names, when one must (the first of
these no rule names, else the first such type by name)."""

WEBHOOK_INVOICE_EVENT_TYPES: frozenset[str] = INVOICE_EVENT_TYPES - {SWEEP_EVENT_TYPE}


def event_only(ref: FieldRef) -> bool:
    """Whether a field is one a listing cannot supply (see above LISTED_ROOTS)."""
    if ref.root == EVENT_ROOT:
        return not ref.rest or ref.rest[0] not in PREVIEW_EVENT_FIELDS
    return ref.root in CONTENT_ROOTS and ref.root not in LISTED_ROOTS


@functools.lru_cache(maxsize=4096)
def event_only_fields(condition: Condition) -> tuple[str, ...]:
    """The event-only fields a condition reads, in file order, each once. Cached per compiled condition."""
    paths = (leaf.field.path for leaf in condition.leaves() if leaf.field is not None and event_only(leaf.field))
    return tuple(dict.fromkeys(paths))


def _event_type_reads(condition: Condition) -> tuple[frozenset[str], bool]:
    """The event types a condition names in `event.event_type: X` or `{in: [...]}`, and whether it
    reads the type in another way (`ne`, `not_in`, `matches` ...) that could let any type through."""
    named: set[str] = set()
    open_ended = False
    for leaf in condition.leaves():
        if leaf.field is None or leaf.field.path != f"{EVENT_ROOT}.event_type":
            continue
        if leaf.operator == "eq" and isinstance(leaf.expected, str):
            named.add(leaf.expected)
        elif leaf.operator == "in" and isinstance(leaf.expected, list | tuple | frozenset | set):
            named |= {value for value in leaf.expected if isinstance(value, str)}
        else:
            open_ended = True
    return frozenset(named), open_ended


def _condition_key(condition: Condition) -> tuple[Any, ...]:
    """What a condition tests, as written: equal keys test the same thing."""
    path = condition.field.path if condition.field is not None else None
    children = tuple(_condition_key(child) for child in condition.children)
    return (condition.kind, path, condition.operator, condition.expected_text, children)


def rule_key(rule: Rule) -> tuple[Any, ...]:
    """All that decides what a rule does (not where it was written): equal keys, equal rules."""
    on = tuple(sorted(rule.on)) if rule.on is not None else None
    return (
        rule.name,
        rule.action,
        on,
        rule.comment,
        rule.while_collecting,
        rule.apply_credits_first,
        _condition_key(rule.condition),
    )


def _decides_alike(base: RuleSet, new: RuleSet, event_type: str) -> bool:
    """Whether both files decide every invoice alike on this event type: the same rules see it, in
    the same order, under the same mode and limits."""
    if base.mode != new.mode or base.limits != new.limits:
        return False
    seen = [[rule_key(r) for r in rs.rules if r.applies_to(event_type)] for rs in (base, new)]
    return seen[0] == seen[1]


@dataclass(frozen=True)
class BlindRule:
    """A rule that reads fields a listing cannot supply, on the webhook events it listens to."""

    rule: str
    fields: tuple[str, ...]
    on: tuple[str, ...]  # the invoice-carrying webhook event types it listens to; () for all of them
    changed: bool = False  # added, removed or edited between the two files

    def describe(self) -> str:
        """One line, e.g. `rule card-check reads card.status on payment_failed (only the event carries it)`."""
        where = ", ".join(self.on) if self.on else "every webhook event"
        them = "them" if len(self.fields) > 1 else "it"
        changed = "; it changed between the files" if self.changed else ""
        return f"rule {self.rule} reads {', '.join(self.fields)} on {where} (only the event carries {them}){changed}"

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "fields": list(self.fields), "on": list(self.on), "changed": self.changed}


@dataclass(frozen=True)
class PreviewPlan:
    """What a preview decides on: the sweep, then each webhook event type a rule listens to."""

    triggers: tuple[str, ...] = (SWEEP_EVENT_TYPE,)
    others: str | None = None  # the trigger that stands for every invoice event type no rule names
    blind: tuple[BlindRule, ...] = ()
    alike: frozenset[str] = field(default_factory=frozenset)  # triggers both files decide alike

    @property
    def webhook_triggers(self) -> tuple[str, ...]:
        return tuple(t for t in self.triggers if t != SWEEP_EVENT_TYPE)

    @property
    def blind_changed(self) -> tuple[BlindRule, ...]:
        """The rules that could not be previewed and changed: never "no change"."""
        return tuple(b for b in self.blind if b.changed)


def _webhook_types(rule: Rule) -> tuple[str, ...] | None:
    """The invoice-carrying webhook event types a rule listens to, sorted; None: every one."""
    if rule.on is None:
        return None
    return tuple(sorted(rule.on & WEBHOOK_INVOICE_EVENT_TYPES))


def _triggers(rulesets: Iterable[RuleSet]) -> tuple[tuple[str, ...], str | None]:
    """The webhook event types to preview, and the one standing for every type no rule names (None
    when such types see exactly what a swept invoice sees, save its type)."""
    named: set[str] = set()
    others = False
    for ruleset in rulesets:
        for rule in ruleset.rules:
            if rule.on is not None:
                named |= rule.on
            elif event_only_fields(rule.condition):
                others = True  # sees every webhook, but on a swept invoice reads the field as missing
            types, open_ended = _event_type_reads(rule.condition)
            named |= types
            others = others or open_ended
    # a rule that names `sweep` sees swept invoices but not the events nobody names
    others = others or SWEEP_EVENT_TYPE in named
    webhook = tuple(sorted(named & WEBHOOK_INVOICE_EVENT_TYPES))
    unnamed = [t for t in (*OTHER_EVENT_PREFERENCE, *sorted(WEBHOOK_INVOICE_EVENT_TYPES)) if t not in named]
    if not others or not unnamed:
        return webhook, None
    return (*webhook, unnamed[0]), unnamed[0]


def _blind_rules(base: RuleSet, new: RuleSet | None) -> tuple[BlindRule, ...]:
    """Every rule of either file that reads event-only fields on a webhook event carrying an invoice."""
    files = (base,) if new is None else (base, new)
    keys = [{r.name: rule_key(r) for r in rs.rules} for rs in files]
    found: dict[str, BlindRule] = {}
    for ruleset in files:
        for rule in ruleset.rules:
            fields = event_only_fields(rule.condition)
            on = _webhook_types(rule)
            if not fields or on == () or rule.name in found:
                continue
            changed = len(keys) == 2 and keys[0].get(rule.name) != keys[1].get(rule.name)
            found[rule.name] = BlindRule(rule.name, fields, on or (), changed)
    return tuple(found.values())


def preview_plan(base: RuleSet, new: RuleSet | None = None) -> PreviewPlan:
    """The plan for previewing one file (`reactor sweep --dry-run`) or two (`reactor rules diff`):
    the triggers to decide on, every rule reading event-only fields (`BlindRule`) and the triggers
    both files decide alike, rule for rule.

    Besides the sweep, each webhook trigger asks "if Chargebee's next `payment_failed` for this
    invoice arrived now, with the invoice as listed": most rules are limited to webhook events
    (`on: [payment_failed, invoice_updated]`), so without these triggers an edit to them would show
    no change."""
    webhook, others = _triggers((base,) if new is None else (base, new))
    triggers = (SWEEP_EVENT_TYPE, *webhook)
    other = new if new is not None else base
    alike = frozenset(t for t in triggers if _decides_alike(base, other, t))
    return PreviewPlan(triggers, others, _blind_rules(base, new), alike)


@dataclass(frozen=True)
class BlindRead:
    """The rule, and its event-only fields, that a decision could not be previewed for."""

    rule: str
    fields: tuple[str, ...]
    event_type: str

    def reason(self) -> str:
        them = "them" if len(self.fields) > 1 else "it"
        return (
            f"not previewed: rule {self.rule} reads {', '.join(self.fields)}, and only the {self.event_type} "
            f"event itself carries {them}"
        )


def blind_read(ruleset: RuleSet, event: dict[str, Any], now: datetime, decision: Decision) -> BlindRead | None:
    """Why `decision` (on `event`, a webhook event a preview built) could not be previewed, or None.

    The rules that see the event are tried in file order in three-valued logic, an event-only field
    the event does not carry being unknown, up to the first that certainly holds. A rule that might
    hold could change whether the invoice is written off when it is a write_off rule, when the
    decision is a write-off (a skip rule might protect it), or when it is the rule that decided (it
    might not hold after all). A skip rule that might hold before a decision that writes nothing off
    changes nothing."""
    subject = Subject(event, now)
    if subject.event_type == SWEEP_EVENT_TYPE:
        return None  # a swept invoice is exactly what the sweep decides on
    writes_off = decision.action == "write_off"
    for rule in ruleset.rules:
        if not rule.applies_to(subject.event_type):
            continue
        absent = _absent(rule.condition, subject)
        verdict = kleene(rule.condition, subject, absent)
        if verdict is True:
            return None
        if verdict is None and (rule.action == "write_off" or writes_off or decision.rule == rule.name):
            return BlindRead(
                rule.name, tuple(f for f in event_only_fields(rule.condition) if f in absent), str(subject.event_type)
            )
    return None


def _absent(condition: Condition, subject: Subject) -> frozenset[str]:
    """The event-only fields a condition reads that the event does not carry: unknown, not missing."""
    fields = event_only_fields(condition)
    if not fields:
        return frozenset()
    return frozenset(
        leaf.field.path
        for leaf in condition.leaves()
        if leaf.field is not None
        and leaf.field.path in fields
        and leaf.read is not None
        and leaf.read(subject) is MISSING
    )
