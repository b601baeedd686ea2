"""A decision as the trace keeps it: the rule, the rules version, the safety check that blocked it,
and condition by condition the facts read with their values and whether each was true (the field
`held` of a condition, a name the stored entries keep; the same walk as `reactor rules explain`,
reactor/rules/explain.py)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ...ingest.envelope import Event
from ...rules import Decision, RuleSet
from ...rules.explain import ConditionTrace, explain
from ...rules.fields import MISSING
from .store import TraceLog

log = logging.getLogger(__name__)


def record_decision(
    trace: TraceLog,
    ruleset: RuleSet,
    event: Event,
    now: datetime,
    decision: Decision,
    stage: str,
) -> None:
    """Append the decision on `event` (`stage`: on the event as received, on the fresh invoice, ...).
    Never raises: an explanation that fails is logged, and the decision stands."""
    try:
        entry = decision_entry(ruleset, event, now, decision, stage)
    except Exception:
        log.warning("could not explain the decision on invoice %s for its trace", decision.invoice_id, exc_info=True)
        return
    trace.add(decision.invoice_id, entry)


def decision_entry(ruleset: RuleSet, event: Event, now: datetime, decision: Decision, stage: str) -> dict[str, Any]:
    """The rules in order up to the one that decided (all of them when none did), each with its
    conditions; rules skipped by `on:` are named only."""
    explanation = explain(ruleset, event.data, now)
    rules = []
    for rule in explanation.rules:
        rules.append(
            {
                "rule": rule.name,
                "action": rule.action,
                "matched": rule.matched,
                "decided": rule.decided,
                "skipped_by_on": rule.skipped_by_on,
                "conditions": [] if rule.skipped_by_on else [condition(leaf) for leaf in rule.when.leaves()],
            }
        )
        if rule.decided:
            break
    event_id = event.id or None
    return {
        "kind": "decision",
        "stage": stage,
        "event_id": event_id,
        "event_type": explanation.event_type,
        "rule": decision.rule,
        "action": decision.action,
        "dry_run": decision.dry_run,
        "rules_version": decision.rules_version,
        "reason": decision.reason,
        "blocked_by": decision.blocked_by,
        "amount_due": decision.amount_due,
        "currency": decision.currency,
        "rules": rules,
    }


def condition(leaf: ConditionTrace) -> dict[str, Any]:
    return {
        "field": leaf.field,
        "operator": leaf.operator,
        "expected": leaf.expected,
        "actual": None if leaf.actual is MISSING else leaf.actual_text,
        "held": leaf.passed,
        "note": leaf.note,
    }
