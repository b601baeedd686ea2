"""The same rules for json-logic (the `json-logic-qubit` package): a translation of a compiled RuleSet.

Translating the compiled tree (rather than writing the 50 rules a second time by hand) keeps the
comparison honest: the bench checks that both engines pick the same rule for every event.

Where json-logic has no equivalent, the translation leans in its favour:
- `starts_with` and `matches` are custom operations (json-logic's documented way to extend it);
- `days_overdue` compares `now - invoice.due_date` with the threshold in seconds, with `now` a
  constant baked into the rule (the reactor computes it per event from an aware datetime);
- money maps become an `if` on the invoice's currency with thresholds pre-scaled to minor units.
"""

from __future__ import annotations

import re
from typing import Any

import json_logic

from reactor.rules.conditions import Condition
from reactor.rules.fields import DAYS_OVERDUE, EVENT_ROOT
from reactor.rules.model import RuleSet
from reactor.rules.money import ZERO_DECIMAL_CURRENCIES, MoneyThreshold

DAY = 86400
CURRENCY = {"var": "content.invoice.currency_code"}
DUE_DATE = {"var": "content.invoice.due_date"}

json_logic.add_operation("starts_with", lambda value, prefix: isinstance(value, str) and value.startswith(prefix))
_patterns: dict[str, re.Pattern[str]] = {}


def _matches(value: Any, pattern: str) -> bool:
    compiled = _patterns.get(pattern) or _patterns.setdefault(pattern, re.compile(pattern))
    return isinstance(value, str) and compiled.search(value) is not None


json_logic.add_operation("matches", _matches)

_ORDER = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def _var(cond: Condition) -> dict[str, str]:
    field = cond.field
    assert field is not None
    if field.root == EVENT_ROOT:
        return {"var": ".".join(field.rest)}
    return {"var": "content." + field.path}


def _money(op: str, var: dict[str, str], threshold: MoneyThreshold) -> dict[str, Any]:
    branches: list[Any] = []
    if threshold.any_currency is not None:
        for currencies, scale in ((sorted(ZERO_DECIMAL_CURRENCIES), 1), (None, 100)):
            bound = float(threshold.any_currency * scale)
            test = {_ORDER.get(op, "=="): [var, bound]}
            if currencies is None:
                branches.append(test)
            else:
                branches += [{"in": [CURRENCY, currencies]}, test]
        return {"if": branches}
    for currency, major in threshold.per_currency.items():
        bound = float(major * (1 if currency in ZERO_DECIMAL_CURRENCIES else 100))
        branches += [{"==": [CURRENCY, currency]}, {_ORDER.get(op, "=="): [var, bound]}]
    return {"if": [*branches, False]}


def _leaf(cond: Condition, now: int) -> dict[str, Any]:
    op, expected, var = cond.operator, cond.expected, _var(cond) if cond.field.root != DAYS_OVERDUE else None
    if cond.field.root == DAYS_OVERDUE:
        age = {"-": [now, DUE_DATE]}
        return {"and": [DUE_DATE, {_ORDER[op]: [age, expected * DAY]}]}
    if cond.field.is_money and isinstance(expected, MoneyThreshold):
        return _money(op, var, expected)
    if cond.field.is_money and op == "between":
        low, high = expected
        return {"and": [_money("gte", var, low), _money("lte", var, high)]}
    if op == "eq":
        return {"===": [var, expected]}
    if op == "ne":
        return {"and": [{"!==": [var, None]}, {"!==": [var, expected]}]}
    if op == "in":
        return {"in": [var, list(expected)]}
    if op == "not_in":
        return {"and": [{"!==": [var, None]}, {"!": {"in": [var, list(expected)]}}]}
    if op in _ORDER:
        return {_ORDER[op]: [var, expected]}
    if op == "between":
        return {"<=": [expected[0], var, expected[1]]}
    if op in ("starts_with", "matches"):
        return {op: [var, expected]}
    if op == "exists":
        return {"!==" if expected else "===": [var, None]}
    raise ValueError(f"no json-logic translation for {op}")


def translate(cond: Condition, now: int) -> dict[str, Any]:
    if cond.kind == "field":
        return _leaf(cond, now)
    children = [translate(child, now) for child in cond.children]
    if cond.kind == "not":
        return {"!": [children[0]]}
    return {"and" if cond.kind == "all" else "or": children}


def translate_ruleset(ruleset: RuleSet, now: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(rule name, action, json-logic) for every rule, the `on:` filter folded into the logic."""
    out = []
    for rule in ruleset.rules:
        logic = translate(rule.condition, now)
        if rule.on is not None:
            logic = {"and": [{"in": [{"var": "event_type"}, sorted(rule.on)]}, logic]}
        out.append((rule.name, rule.action, logic))
    return out


def first_match(rules: list[tuple[str, str, dict[str, Any]]], event: dict[str, Any]) -> str | None:
    """The name of the first rule whose logic holds, like the reactor's first_match."""
    for name, _action, logic in rules:
        if json_logic.jsonLogic(logic, event):
            return name
    return None
