"""Field paths (`invoice.amount_due`, `event.event_type`, `days_overdue`) and how to read them.

Paths are split and checked once at load time; each compiles to a small getter closure, so
`decide` only does dict lookups. A getter returns MISSING instead of raising when anything on the
way is absent, null or of the wrong shape: a missing field makes its condition false.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .catalogue import CUSTOM_FIELD_PREFIX, EVENT_ATTRIBUTES, RESOURCE_ATTRIBUTES, RESOURCE_PLURALS
from .money import MONEY_FIELDS


class _Missing:
    """The value of a field that is absent or null in the event."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<missing>"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()

DAYS_OVERDUE = "days_overdue"
EVENT_ROOT = "event"
CONTENT_ROOTS: frozenset[str] = frozenset(
    {
        "invoice",
        "customer",
        "subscription",
        "card",
        "transaction",
        "credit_note",
        "credit_notes",
        "payment_source",
        "unbilled_charge",
        "unbilled_charges",
        "order",
        "quote",
        "plan",
        "addon",
        "coupon",
        "item",
        "item_price",
        "payment_intent",
        "hierarchy",
        "virtual_bank_account",
        "promotional_credit",
        "gift",
        "contract_term",
        "business_entity",
        "invoices",
        "payment_schedules",
        "advance_invoice_schedules",
    }
)
"""Resource keys of `event.content` that rules may read (chargebee-go webhook/content.go)."""

ALL_ROOTS: tuple[str, ...] = (*sorted(CONTENT_ROOTS), EVENT_ROOT, DAYS_OVERDUE)
_DAY = 86400

Getter = Callable[["Subject"], Any]


class Subject:
    """What a decision is about, and all a rule's conditions read: one event, plus `now`.

    Named for its role, the subject of a decision, so that it is not taken for the `JobContext` of a
    job (reactor/jobs/context.py: Redis, settings, the Chargebee client), which a rule never sees.
    `days_overdue` is computed once, on first use."""

    __slots__ = ("_days", "content", "event", "event_type", "now_ts")

    def __init__(self, event: Mapping[str, Any], now: datetime, days_overdue: Any = None) -> None:
        # `x.__class__ is dict` first: events are parsed JSON, and the ABC isinstance check costs
        # more than the rest of a cheap condition.
        if event.__class__ is not dict and not isinstance(event, Mapping):
            event = {}
        content = event.get("content")
        self.event = event
        self.content = content if content.__class__ is dict or isinstance(content, Mapping) else {}
        event_type = event.get("event_type")
        self.event_type = event_type if event_type.__class__ is str else None  # lists are unhashable
        self.now_ts = now.timestamp()
        self._days = days_overdue

    @property
    def invoice(self) -> Mapping[str, Any]:
        invoice = self.content.get("invoice")
        return invoice if invoice.__class__ is dict or isinstance(invoice, Mapping) else {}

    def days_overdue(self) -> Any:
        """Whole days since invoice.due_date (floor), 0 before it; MISSING without a due date."""
        if self._days is None:
            due = self.invoice.get("due_date")
            if due.__class__ is int or (due.__class__ is float and due.is_integer()):
                try:
                    self._days = max(0, int((self.now_ts - due) // _DAY))
                except OverflowError:  # a due date no calendar holds: no day count
                    self._days = MISSING
            else:
                self._days = MISSING
        return self._days


def check_now(now: datetime) -> None:
    """`now` must be an aware datetime: day counts in naive local time drift with the host's TZ."""
    if now.__class__ is datetime and now.tzinfo is timezone.utc:  # the usual case, checked once per decision
        return
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime (UTC)")


@dataclass(frozen=True)
class FieldRef:
    """A validated field path: `root` plus the remaining keys, pre-split."""

    path: str
    root: str
    rest: tuple[str, ...]

    @property
    def is_money(self) -> bool:
        """Integers in minor units, compared in major units of the resource's currency."""
        return self.root in CONTENT_ROOTS and bool(self.rest) and self.rest[-1] in MONEY_FIELDS

    @property
    def leaf(self) -> str:
        return self.rest[-1] if self.rest else self.root

    def getter(self) -> Getter:
        """A closure reading this field from a Subject, MISSING when absent or null."""
        if self.root == DAYS_OVERDUE:
            return Subject.days_overdue
        if self.root == EVENT_ROOT:
            return _walker(lambda subject: subject.event, self.rest)
        if len(self.rest) == 1:
            return _two_step(self.root, self.rest[0])
        return _walker(lambda subject: subject.content, (self.root, *self.rest))

    def currency(self, subject: Subject) -> str | None:
        """The currency a money field is in: its resource's currency_code, else the invoice's."""
        resource = subject.content.get(self.root)
        if isinstance(resource, Mapping):
            code = resource.get("currency_code")
            if isinstance(code, str):
                return code.upper()  # Chargebee sends ISO codes in capitals; thresholds are keyed so
        code = subject.invoice.get("currency_code")
        return code.upper() if isinstance(code, str) else None


def _two_step(root: str, key: str) -> Getter:
    """The common `invoice.status` case, written out for speed."""

    def get(subject: Subject) -> Any:
        resource = subject.content.get(root)
        if resource.__class__ is dict or isinstance(resource, Mapping):
            value = resource.get(key)
            return MISSING if value is None else value
        return MISSING

    return get


def _walker(start: Callable[[Subject], Any], keys: tuple[str, ...]) -> Getter:
    steps = tuple((key, int(key) if key.isdigit() else None) for key in keys)

    def get(subject: Subject) -> Any:
        current = start(subject)
        for key, index in steps:
            if current.__class__ is dict or isinstance(current, Mapping):
                current = current.get(key)
            elif index is not None and isinstance(current, list) and index < len(current):
                current = current[index]
            else:
                return MISSING
            if current is None:
                return MISSING
        return current

    return get


def parse_field(path: str) -> FieldRef | str:
    """A FieldRef, or one sentence saying what is wrong with `path`."""
    parts = path.split(".")
    root, rest = parts[0], tuple(parts[1:])
    if any(not part or part != part.strip() for part in parts):
        return f"field '{path}' has an empty or space-padded part; write it like invoice.status"
    if root == DAYS_OVERDUE:
        if rest:
            return "days_overdue is a number of days and has no sub-fields"
        return FieldRef(path, root, rest)
    if root == EVENT_ROOT and rest[:1] == ("content",):
        # The resources are read by their own name, so that a rule reading one the event lacks has
        # it fetched (reactor/jobs/facts.py) instead of reading it as missing.
        named = ".".join(rest[1:]) or "invoice.id"
        return f"field '{path}': read the event's resources by their own name, e.g. {named}"
    if root in CONTENT_ROOTS or root == EVENT_ROOT:
        if not rest:
            return f"'{root}' is a whole resource; name one of its fields, e.g. {root}.{_example(root)}"
        unknown = _unknown_attribute(path, root, rest[0])
        return unknown or FieldRef(path, root, rest)
    return f"unknown field '{path}': '{root}' is not {_roots_sentence()}{did_you_mean(root, ALL_ROOTS)}"


def _unknown_attribute(path: str, root: str, key: str) -> str | None:
    """The sentence for an attribute the resource does not have; None when it has it or is unchecked.

    Only the first key after the root is checked: deeper keys (billing_address.country,
    line_items.0.entity_id) depend on the site and the list, and the table holds no sub-fields.
    Custom fields (cf_*) are the site's own, so a misspelt one cannot be caught here."""
    attributes = EVENT_ATTRIBUTES if root == EVENT_ROOT else RESOURCE_ATTRIBUTES.get(root)
    if attributes is None or key in attributes or key.startswith(CUSTOM_FIELD_PREFIX):
        return None
    kind = RESOURCE_PLURALS[root]
    return f"unknown field '{path}': {kind} have no attribute '{key}'{did_you_mean(key, attributes)}"


def _example(root: str) -> str:
    return {"event": "event_type", "customer": "id", "subscription": "status"}.get(root, "status")


def _roots_sentence() -> str:
    return "invoice, customer, subscription, event, days_overdue or another resource of the event content"


def did_you_mean(word: str, choices: Any) -> str:
    """The "; did you mean 'x'?" suffix when a close match exists, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
