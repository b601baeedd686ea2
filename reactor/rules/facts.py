"""Facts a decision leans on that the event does not carry, so that a write-off never rests on a
fact the reactor did not have: which missing resources are worth fetching (`needed_roots`), and
what is still unknown after fetching (`unresolved`).

Pure: no I/O. The worker (reactor/jobs/) and `reactor rules explain --invoice-id` do the fetching.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .conditions import Condition, Verdict, kleene
from .fields import CONTENT_ROOTS, Subject
from .model import Rule, RuleSet

# An event carries some resources and not others: `invoice_updated` and the sweep bring only the
# invoice, `payment_failed` brings the invoice, customer, subscription, transaction and card. A rule
# that reads `customer.cf_segment` where there is no customer reads a missing value, which makes its
# condition false; for a protective skip rule that means it never protects. So:
#
# 1. `needed_roots`: which missing resources could change the decision. Every rule that can see the
#    event is evaluated in three-valued logic (true, false, unknown), a read of a missing resource
#    being unknown. Only when a write_off rule could decide, and a rule on the way might hold, are
#    the resources those rules read worth a call to Chargebee.
# 2. The worker fetches those it can (FETCHABLE_ROOTS) and decides again.
# 3. `unresolved`: what is still unknown after that (a failed fetch, a resource Chargebee cannot be
#    asked for). A write-off is blocked when a rule before the deciding one might hold, or when the
#    deciding rule holds only if the unknown goes its way.
#
# A comparison that cannot be made on the event at all (a text longer than `matches` reads,
# operators.Unevaluable) is unknown in the same logic (conditions.kleene); `decide` walks the rules
# with `walk_subject` when it meets one, and blocks a write-off that could rest on it.
FETCHABLE_ROOTS: dict[str, str] = {"customer": "customer_id", "subscription": "subscription_id"}
"""Resources the reactor fetches from Chargebee when a rule needs them, by the invoice attribute
holding their id."""


@functools.lru_cache(maxsize=4096)
def roots_read(condition: Condition) -> frozenset[str]:
    """The event resources (other than the invoice) a condition reads. Cached per compiled
    condition: the worker asks for every event decided without a write-off."""
    return frozenset(
        leaf.field.root
        for leaf in condition.leaves()
        if leaf.field is not None and leaf.field.root in CONTENT_ROOTS and leaf.field.root != "invoice"
    )


@dataclass(frozen=True)
class Step:
    """One rule tried on the way to a decision, with its three-valued verdict."""

    rule: Rule
    verdict: Verdict


def walk_subject(ruleset: RuleSet, subject: Subject, unknown_roots: frozenset[str] = frozenset()) -> list[Step]:
    """The rules that can see the subject's event, in file order, up to the first that certainly
    holds, a read of a resource in `unknown_roots` being unknown."""
    steps = []
    for rule in ruleset.rules:
        if not rule.applies_to(subject.event_type):
            continue
        verdict = kleene(rule.condition, subject, unknown_roots & roots_read(rule.condition))
        steps.append(Step(rule, verdict))
        if verdict is True:
            break
    return steps


def missing_roots(ruleset: RuleSet, event: Mapping[str, Any]) -> frozenset[str]:
    """Resources read by rules that can see this event and absent from its content."""
    content = event.get("content")
    content = content if isinstance(content, Mapping) else {}
    event_type = event.get("event_type")
    read: set[str] = set()
    for rule in ruleset.rules:
        if rule.applies_to(event_type):
            read |= roots_read(rule.condition)
    return frozenset(root for root in read if not isinstance(content.get(root), Mapping))


def needed_roots(ruleset: RuleSet, subject: Subject, missing: Iterable[str]) -> frozenset[str]:
    """The missing resources worth fetching: read by a rule that might hold, on the way to a rule
    that could write off. Empty when no write_off rule can decide, whatever the missing facts are."""
    steps = walk_subject(ruleset, subject, frozenset(missing))
    if not any(step.rule.action == "write_off" and step.verdict is not False for step in steps):
        return frozenset()
    might_hold = [step.rule for step in steps if step.verdict is None]
    return frozenset(root for rule in might_hold for root in roots_read(rule.condition)) & frozenset(missing)


def facts_worth_fetching(ruleset: RuleSet, event: Mapping[str, Any], now: datetime) -> frozenset[str]:
    """Resources the event lacks whose values could lead a write_off rule to decide, or that a rule
    on the way to one reads: `needed_roots` of what is missing."""
    missing = missing_roots(ruleset, event)
    return needed_roots(ruleset, Subject(event, now), missing) if missing else frozenset()


def unresolved(
    ruleset: RuleSet, event: Mapping[str, Any], now: datetime, deciding_rule: str, unknown: Mapping[str, str]
) -> str | None:
    """Why a write-off by `deciding_rule` cannot rest on what is known, or None when it can.

    `unknown` maps each resource that could not be had to the reason."""
    if not unknown:
        return None
    for step in walk_subject(ruleset, Subject(event, now), frozenset(unknown)):
        if step.verdict is not None:
            if step.rule.name == deciding_rule:
                return None
            continue
        roots = sorted(roots_read(step.rule.condition) & frozenset(unknown))
        what = "; ".join(f"{root}: {unknown[root]}" for root in roots)
        if step.rule.name == deciding_rule:
            return f"rule {step.rule.name} holds only if facts the reactor could not read go its way ({what})"
        if step.rule.action == "skip":
            return (
                f"skip rule {step.rule.name} might protect this invoice, but it reads facts the reactor "
                f"could not read ({what})"
            )
    return f"rule {deciding_rule} is not the rule the known facts lead to"  # cannot happen; if it does, do not act
