"""Which rules can decide an event: an index built once per RuleSet, so `first_match` skips the rest.

A rule file grows into dozens of rules, most of which cannot apply to a given event; trying them in
order costs a call or two each, on a 50-rule file most of the time of a decision. The index keeps
file order and drops only rules that could not match (`RulePlan`, `TypePlan`).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable
from typing import Any

from .conditions import Condition, Test
from .fields import CONTENT_ROOTS, DAYS_OVERDUE, MISSING, Subject
from .model import Rule, RuleSet

Plan = tuple[tuple[tuple[Test, ...], Rule], ...]
Matcher = Callable[[Any], "Rule | None"]
MAX_GUARD_FIELDS = 3
"""Fields read per event to pick the plan; each read costs about as much as one condition."""
MAX_CACHED_PLANS = 4096
"""Distinct value combinations kept per event type; past that the cache starts over."""
COMPILE_AFTER = 16
"""Uses of a plan before it is compiled into one function (compiling costs as much as hundreds of
decisions, docs/benchmarks.md): a process that decides a few events (RQ's forked work horse decides
one) keeps the plain loop."""


class Selection:
    """The rules one combination of event type and guard values leaves, and how to try them: the
    plain loop at first, the compiled matcher once the plan has been used COMPILE_AFTER times."""

    __slots__ = ("match", "plan", "uses")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.uses = 0
        self.match: Matcher = self._loop

    def _loop(self, subject: Any) -> Rule | None:
        self.uses += 1
        if self.uses == COMPILE_AFTER:
            self.match = compile_matcher(self.plan)
        for tests, rule in self.plan:
            for test in tests:
                if not test(subject):
                    break
            else:
                return rule
        return None


def compile_matcher(plan: Plan) -> Matcher:
    """One function that tries the rules of `plan` in order and returns the first that holds.

    It is what `Selection._loop` does, written out as straight-line code (as `dataclasses` writes
    `__init__`): one `if` per rule, its tests joined by `and`. Tests are the condition closures of
    conditions.py; the hot leaf kinds are written out as expressions (`inline_expression`
    below, from the `test.inline` tags set in conditions.py), with the closures as the fallback for
    events of unusual shape). On a 50-rule file this halves the cost
    of matching. The generated source names tests, rules and constants by position only; it is
    kept as `match.source` for a reader debugging a plan.
    """
    calls = _write_matcher(plan, inline=False)
    return _write_matcher(plan, inline=True, fallback=calls)


def _write_matcher(plan: Plan, inline: bool, fallback: Matcher | None = None) -> Matcher:
    namespace: dict[str, Any] = {"fallback": fallback}
    names = InlineNames(namespace)
    body = []
    for i, (tests, rule) in enumerate(plan):
        namespace[f"r{i}"] = rule
        if not tests:
            body.append(f"    return r{i}")
            break
        parts = []
        for j, test in enumerate(tests):
            expression = inline_expression(test, names) if inline else None
            if expression is None:
                namespace[f"t{i}_{j}"] = test
                expression = f"t{i}_{j}(subject)"
            parts.append(expression)
        body.append(f"    if {' and '.join(parts)}:\n        return r{i}")
    body.append("    return None")
    lines = ["def match(subject):", *(names.prologue("fallback") if inline else []), *body]
    exec("\n".join(lines), namespace)  # source built from positions only, see above
    match: Matcher = namespace["match"]
    match.source = "\n".join(lines)  # type: ignore[attr-defined]
    return match


_SYMBOLS = {
    operator.lt: "<",
    operator.le: "<=",
    operator.gt: ">",
    operator.ge: ">=",
    operator.eq: "==",
    operator.ne: "!=",
}


def inline_expression(test: Test, names: InlineNames) -> str | None:
    """The Python expression that `test` evaluates, for the matchers that plan.py writes out.

    Only the hot leaf kinds are written out (text on `resource.key` and `resource.key.key`, `eq` a
    bool and `exists` on `resource.key`, money thresholds on `resource.amount`, `days_overdue`).
    Each expression is the body of its closure (tagged `test.inline` in conditions.py, where the
    closure is built)
    for the case where the resource is a dict and its currency_code a text, which the generated
    function checks once before using them. Others (None here) stay calls to their closure.
    """
    spec = getattr(test, "inline", None)
    if spec is None:
        return None
    if spec[0] in ("text", "nested_text"):
        _, root, key, op, operand = spec
        if op == "eq":
            compare = f"v == {names.const(operand)}"
        elif op == "in":
            compare = f"v in {names.const(operand)}"
        else:
            compare = f"v.startswith({names.const(operand)})"
        if spec[0] == "text":
            return f"((v := {names.resource(root)}.get({names.const(key)})).__class__ is str and {compare})"
        # `invoice.billing_address.country`: the inner mapping when it is a dict, else the closure
        outer, inner = key
        closure, mapping = names.const(test), f"(a := {names.resource(root)}.get({names.const(outer)}))"
        value = f"(v := a.get({names.const(inner)}))"
        return f"({closure}(subject) if {mapping}.__class__ is not dict else ({value}.__class__ is str and {compare}))"
    if spec[0] == "is":  # `customer.cf_dispute_open: true`: the value must be that very bool
        _, root, key, expected = spec
        return f"({names.resource(root)}.get({names.const(key)}) is {names.const(expected)})"
    if spec[0] == "exists":  # null counts as missing
        _, root, key, want = spec
        return f"(({names.resource(root)}.get({names.const(key)}) is not None) is {names.const(want)})"
    if spec[0] == "money":
        _, root, key, compare, bounds, default = spec
        if compare not in _SYMBOLS:
            return None
        return (
            f"((v := {names.resource(root)}.get({names.const(key)})).__class__ is int"
            f" and (b := {names.const(bounds)}.get({names.currency(root)}, {names.const(default)})) is not None"
            f" and v {_SYMBOLS[compare]} b)"
        )
    _, compare, bound = spec
    if compare not in _SYMBOLS:
        return None
    names.uses_days = True
    return f"(days is not MISSING and days {_SYMBOLS[compare]} {names.const(bound)})"


class InlineNames:
    """Names used by generated source: constants by position, resources and their currencies
    read once at the top of the function (the resources must be dicts, the currencies texts),
    and `days`, the event's days_overdue, computed once."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self.resources: dict[str, str] = {}
        self.currencies: dict[str, str] = {}
        self.uses_days = False
        namespace.update(MISSING=MISSING, days_overdue=Subject.days_overdue)

    def const(self, value: Any) -> str:
        name = f"c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def resource(self, root: str) -> str:
        if root not in self.resources:
            self.resources[root] = f"res{len(self.resources)}"
        return self.resources[root]

    def currency(self, root: str) -> str:
        if root not in self.currencies:
            self.currencies[root] = f"cur_{self.resource(root)}"
        return self.currencies[root]

    def prologue(self, fallback: str) -> list[str]:
        """Lines reading the resources once; any other shape takes the closure-calling `fallback`."""
        lines = ["    content = subject.content"]
        checks = []
        for root, name in self.resources.items():
            lines.append(f"    {name} = content.get({self.const(root)})")
            checks.append(f"{name}.__class__ is not dict")
        for root, name in self.currencies.items():
            resource = self.resources[root]  # may be absent (None) or of any shape: read it only if a dict
            lines.append(f"    {name} = {resource}.get('currency_code') if {resource}.__class__ is dict else None")
            checks.append(f"{name}.__class__ is not str or not {name}.isupper()")
        if checks:
            lines.append(f"    if {' or '.join(checks)}:\n        return {fallback}(subject)")
        if self.uses_days:
            lines.append("    days = days_overdue(subject)")
        return lines


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


def _simple_path(path: str) -> tuple[str, str | None]:
    """(resource, key) for a `resource.key` path of the event content, else (path, None)."""
    parts = path.split(".")
    return (parts[0], parts[1]) if len(parts) == 2 and parts[0] in CONTENT_ROOTS else (path, None)


def _top_level(condition: Condition) -> tuple[Condition, ...]:
    return condition.children if condition.kind == "all" else (condition,)


class TypePlan:
    """The rules that can decide one event type, and the guard fields that narrow them further.

    A guard is a text `eq` or `in` condition at the top level of a rule (`invoice.dunning_status:
    exhausted`, `customer.cf_segment: {in: [smb, self_serve]}`): the rule can only match when the
    field holds one of those values. The fields most used as guards are read once per event, each
    value is reduced to itself or "other", and the rules that these values rule out are dropped. The
    resulting short list is cached per combination of values, which is a small set: only the values
    the rules name are distinguished. Only the guard conditions the event's values already satisfy
    are left out of the rules kept, so a decision is exactly the one a plain loop over every rule
    would make (tests/unit/rules/test_plan.py checks this on generated events)."""

    __slots__ = ("_all", "_cache", "_entries", "_guard_reads", "guards", "rules")

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
        self._guard_reads = tuple(
            (*_simple_path(path), read, known) for path, (read, known) in zip(chosen, self.guards, strict=True)
        )
        self._cache: dict[tuple[str | None, ...], Selection] = {}
        self._all = Selection(self.rules)

    def select(self, subject: Any) -> Plan:
        """(tests, rule) for the rules that the event's guard values do not rule out, in file order."""
        return self.selection(subject).plan

    def selection(self, subject: Any) -> Selection:
        """Those rules, with the function that tries them in file order."""
        if not self.guards:
            return self._all
        key = []
        content = subject.content
        for root, name, read, known in self._guard_reads:
            resource = content.get(root)  # `invoice.currency_code` read inline, other paths by `read`
            value = resource.get(name) if resource.__class__ is dict and name is not None else read(subject)
            key.append(value if value.__class__ is str and value in known else None)
        values = tuple(key)
        selected = self._cache.get(values)
        if selected is None:
            plan = tuple(
                (tests, rule)
                for tests, rule, accepts in self._entries
                if all(ok is None or value in ok for ok, value in zip(accepts, values, strict=True))
            )
            if len(self._cache) >= MAX_CACHED_PLANS:
                self._cache.clear()
            selected = self._cache[values] = Selection(plan)
        return selected


class RulePlan:
    """Per event type, a TypePlan (the rules whose `on:` lets that type through, rules without `on:`
    in all, in file order); events of other types use the rules without `on:`."""

    __slots__ = ("by_type", "default")

    def __init__(self, ruleset: RuleSet) -> None:
        plan = ruleset.plan
        types = {t for on, _, _ in plan if on is not None for t in on}
        self.by_type = {
            t: TypePlan([(tests, rule) for on, tests, rule in plan if on is None or t in on]) for t in types
        }
        self.default = TypePlan([(tests, rule) for on, tests, rule in plan if on is None])

    def select(self, subject: Any) -> Plan:
        return self.by_type.get(subject.event_type, self.default).select(subject)

    def match(self, subject: Any) -> Rule | None:
        """The first rule of the event's plan that holds, or None."""
        return self.by_type.get(subject.event_type, self.default).selection(subject).match(subject)


def rule_plan(ruleset: RuleSet) -> RulePlan:
    """The RulePlan of a RuleSet, built on first use and kept on the (immutable) RuleSet itself, so it
    lives and dies with it; two threads building it at once is harmless."""
    plan = ruleset.__dict__.get("_rule_plan")
    if plan is None:
        plan = RulePlan(ruleset)
        object.__setattr__(ruleset, "_rule_plan", plan)
    return plan
