"""Deciding a listed invoice in a preview (`reactor rules diff`, `reactor sweep --dry-run`): as the
sweep finds it (reactor/jobs/sweep.py `sweep_event`), and as Chargebee's next event of each type a
rule listens to would bring it (`next_event`; which types, and what only the event could tell, is
the pure reactor/rules/preview.py).

Writes nothing: the facts are fetched through the run's `RunFacts` (each customer and subscription
once a run), and the held write-offs (reactor/jobs/held.py) are only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from ..ingest.envelope import Event
from ..rules import Decision, RuleSet, decide
from ..rules.facts import facts_worth_fetching, unresolved
from ..rules.preview import BlindRead, blind_read
from .facts import FactClient, complete_facts
from .held import list_held


def next_event(invoice: dict[str, Any], event_type: str, run_id: str, now: datetime) -> dict[str, Any]:
    """The event a preview decides on for "if Chargebee's next `event_type` for this invoice arrived
    now, with the invoice as listed": it carries only the invoice (a real payment_failed also brings
    the transaction and card, which a preview cannot have: reactor/rules/preview.py), and no
    `source` (Chargebee's, which a preview cannot know)."""
    return {
        "id": f"preview-{run_id}-{event_type}-{invoice.get('id')}",
        "event_type": event_type,
        "object": "event",
        "api_version": "v2",
        "occurred_at": int(now.timestamp()),
        "content": {"invoice": invoice},
    }


@dataclass(frozen=True)
class Previewed:
    """A preview's decision on one event, facts completed as a dry run completes them."""

    decision: Decision
    facts_blocked: str | None = None  # why a write-off cannot rest on the facts known (facts_missing)
    blind: BlindRead | None = None  # the decision rests on a field only the event carries


def preview_decision(facts: FactClient, ruleset: RuleSet, event: dict[str, Any], now: datetime) -> Previewed:
    """Decide as the worker would on `event`: the customer or subscription a rule reads fetched when
    it could change a write-off (through `facts`, the run's), and what the listing could not supply
    said instead of read as missing. Errors of `facts` propagate."""
    decision = decide(ruleset, event, now)
    blocked = None
    if decision.blocked_by is None and facts_worth_fetching(ruleset, event, now):
        completed = complete_facts(facts, ruleset, Event.from_data(event), now)
        event = completed.event.data
        decision = decide(ruleset, event, now)
        if decision.action == "write_off":
            blocked = unresolved(ruleset, event, now, decision.rule or "", completed.unknown)
    return Previewed(decision, blocked, blind_read(ruleset, event, now, decision))


def held_invoices(connection: redis.Redis, prefix: str) -> dict[str, str]:
    """The held write-offs (an undo, a budget), invoice id → the reason; read, never changed."""
    return {held.invoice_id: held.reason or "" for held in list_held(connection, prefix)}
