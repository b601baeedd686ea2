"""Which rules can decide an event: an index built once per RuleSet, so `first_match` skips the rest.

A rule file grows into dozens of rules, most of which cannot apply to a given event: they are `on:`
other event types, or they require `invoice.dunning_status: exhausted`, `invoice.currency_code:
EUR`, `customer.cf_segment: {in: [smb, self_serve]}` and the event has other values. Trying them in
order costs a call or two each; on a 50-rule file that is most of the time of a decision.

So the rules are indexed twice, both times keeping file order (the first match still decides):

1. by event type: the rules whose `on:` lets that type through (rules without `on:` are in all);
2. by "guards": a text `eq` or `in` condition at the top level of a rule (a rule can only match
   when the field holds one of those values). The fields most used as guards are read once per
   event, each value is reduced to itself or "other", and the rules that these values rule out are
   dropped. The resulting short list is cached per combination of values, which is a small set:
   only the values the rules name are distinguished.

Guards only drop rules that could not match, and only the guard conditions that the event's values
already satisfy are left out of the rules kept, so a decision is exactly the one a plain loop over
every rule would make (tests/unit/test_rules_plan.py checks this on generated events).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from .conditions import Condition, Test
from .fields import DAYS_OVERDUE
from .model import Rule, RuleSet

Plan = tuple[tuple[tuple[Test, ...], Rule], ...]
MAX_GUARD_FIELDS = 3
"""Fields read per event to pick the plan; each read costs about as much as one condition."""
MAX_CACHED_PLANS = 4096
"""Distinct value combinations kept per event type; past that the cache starts over."""


def _guard_values(condition: Condition) -> tuple[str, frozenset[str], Callable[[Any], Any]] | None:
    """(field path, accepted values, reader) for a text eq/in condition, else None."""
    field = condition.field
    if condition.kind != "field" or field is None or condition.read is None:
        return None
    if field.root == DAYS_OVERDUE or field.is_money:
        return None
    if condition.operator == "eq" and condition.expected.__class__ is str:
        return field.path, frozenset((condition.expected,)), condition.read
    if condition.operator == "in" and all(v.__class__ is str for v in condition.expected):
        return field.path, frozenset(condition.expected), condition.read
    return None


def _top_level(condition: Condition) -> tuple[Condition, ...]:
    return condition.children if condition.kind == "all" else (condition,)


class TypePlan:
    """The rules that can decide one event type, and the guard fields that narrow them further."""

    __slots__ = ("_cache", "_entries", "guards", "rules")

    def __init__(self, rules: list[tuple[tuple[Test, ...], Rule]]) -> None:
        self.rules: Plan = tuple(rules)
        requirements: list[dict[str, frozenset[str]]] = []
        guarded_tests: list[tuple[tuple[Test, str | None], ...]] = []
        readers: dict[str, Callable[[Any], Any]] = {}
        for tests, rule in rules:
            required: dict[str, frozenset[str]] = {}
            paths: list[str | None] = []
            for child in _top_level(rule.condition):
                guard = _guard_values(child)
                paths.append(None if guard is None else guard[0])
                if guard is not None:
                    path, values, read = guard
                    required[path] = required[path] & values if path in required else values
                    readers.setdefault(path, read)
            requirements.append(required)
            guarded_tests.append(tuple(zip(tests, paths, strict=True)))
        counts = Counter(path for required in requirements for path in required)
        chosen = [path for path, n in counts.most_common(MAX_GUARD_FIELDS) if n >= 2]
        self.guards = tuple(
            (readers[path], frozenset().union(*(r[path] for r in requirements if path in r))) for path in chosen
        )
        # Per rule: its tests without the guards on chosen fields (selecting the rule proves them),
        # the rule, and for each chosen field the values it accepts (None: any value).
        self._entries = tuple(
            (tuple(test for test, path in pairs if path not in chosen), rule, tuple(required.get(p) for p in chosen))
            for (_, rule), pairs, required in zip(self.rules, guarded_tests, requirements, strict=True)
        )
        self._cache: dict[tuple[str | None, ...], Plan] = {}

    def select(self, ctx: Any) -> Plan:
        """(tests, rule) for the rules that the event's guard values do not rule out, in file order."""
        if not self.guards:
            return self.rules
        key = []
        for read, known in self.guards:
            value = read(ctx)
            key.append(value if value.__class__ is str and value in known else None)
        values = tuple(key)
        plan = self._cache.get(values)
        if plan is None:
            plan = tuple(
                (tests, rule)
                for tests, rule, accepts in self._entries
                if all(ok is None or value in ok for ok, value in zip(accepts, values, strict=True))
            )
            if len(self._cache) >= MAX_CACHED_PLANS:
                self._cache.clear()
            self._cache[values] = plan
        return plan


class RulePlan:
    """Per event type, a TypePlan; events of other types use the rules without `on:`."""

    __slots__ = ("by_type", "default")

    def __init__(self, ruleset: RuleSet) -> None:
        plan = ruleset.plan
        types = {t for on, _, _ in plan if on is not None for t in on}
        self.by_type = {
            t: TypePlan([(tests, rule) for on, tests, rule in plan if on is None or t in on]) for t in types
        }
        self.default = TypePlan([(tests, rule) for on, tests, rule in plan if on is None])

    def select(self, ctx: Any) -> Plan:
        return self.by_type.get(ctx.event_type, self.default).select(ctx)


def rule_plan(ruleset: RuleSet) -> RulePlan:
    """The RulePlan of a RuleSet, built on first use and kept on the (immutable) RuleSet itself, so it
    lives and dies with it; two threads building it at once is harmless."""
    plan = ruleset.__dict__.get("_rule_plan")
    if plan is None:
        plan = RulePlan(ruleset)
        object.__setattr__(ruleset, "_rule_plan", plan)
    return plan
