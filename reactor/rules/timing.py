"""When could a rule match later? For rules that wait on `days_overdue` (e.g. 30 days overdue).

The reactor schedules a re-check for the first moment a time-based rule can hold instead of
polling. Only `days_overdue` changes with time, and a condition on it can only change truth at
the numbers it mentions, so it is enough to try the day counts at those boundaries (each one,
plus the next whole day) in ascending order; every other condition is taken as it is now.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from .conditions import kleene
from .fields import DAYS_OVERDUE, MISSING, Subject, check_now
from .model import Rule, RuleSet
from .operators import Unevaluable

_DAY = 86400


def earliest_match(rule: Rule, subject: Subject, now: datetime) -> datetime | None:
    """The first moment `rule` can match if only time passes; `now` if it matches already.

    None when waiting cannot help: the `on:` filter rejects the event, the rule has no
    days_overdue condition, the invoice has no due date, or another condition fails or cannot be
    evaluated (a moment is only one where the rule certainly holds: `decide` blocks a write-off
    that rests on an open condition, so a re-check then would find nothing to do).
    The caller must decide again at that moment on a fresh invoice (it may have been paid).
    """
    check_now(now)
    if not rule.applies_to(subject.event_type):
        return None
    if _holds(rule, subject):
        return now
    current = subject.days_overdue()
    if current is MISSING:
        return None
    points: set[int] = set()
    for leaf in rule.condition.leaves():
        if leaf.field is not None and leaf.field.root == DAYS_OVERDUE:
            for value in leaf.days_points:
                low, high = math.floor(value), math.ceil(value)
                points.update((low, low + 1, high, high + 1))
    due = subject.invoice["due_date"]
    for days in sorted(p for p in points if p > current):
        if _holds(rule, Subject(subject.event, now, days_overdue=days)):
            return datetime.fromtimestamp(due + days * _DAY, tz=timezone.utc)
    return None


def _holds(rule: Rule, subject: Subject) -> bool:
    """Whether the rule's condition certainly holds: one that cannot be evaluated is weighed in
    three-valued logic, and an open value is not a hold."""
    try:
        return bool(rule.condition.test(subject))
    except Unevaluable:
        return kleene(rule.condition, subject) is True


def earliest_recheck(ruleset: RuleSet, subject: Subject, now: datetime) -> datetime | None:
    """The soonest future moment any rule of `ruleset` could start to match `subject` (built at
    `now`), or None."""
    check_now(now)
    moments = [m for rule in ruleset.rules if (m := earliest_match(rule, subject, now)) is not None and m > now]
    return min(moments, default=None)
