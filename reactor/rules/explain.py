"""explain(): why a decision came out the way it did, condition by condition.

Used by `reactor rules explain` and in the audit trail. Unlike `decide`, it evaluates every
condition of every rule (no short-circuit) so ops see all the values at once, then states the
real Decision (computed by `decide` itself, so the two can never disagree).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Group
from rich.text import Text
from rich.tree import Tree

from .conditions import Condition, Verdict, combine
from .engine import decide
from .fields import MISSING, Subject, check_now
from .model import Decision, RuleSet
from .money import MoneyThreshold, to_major
from .operators import Unevaluable

MAX_ACTUAL_TEXT = 200
"""Characters of a field's value that `explain` shows and a decision's trace keeps: a long note is
matched whole (operators.MAX_MATCH_TEXT), but stored in full on every decision it would cost Redis
its length each time."""


@dataclass(frozen=True)
class ConditionTrace:
    """One evaluated node: a combinator with children, or a field comparison with its values."""

    kind: str  # "all" | "any" | "not" | "field"
    passed: Verdict  # None: the comparison cannot be evaluated (note says why), or hangs on one that cannot
    line: int
    field: str | None = None
    operator: str | None = None
    expected: str | None = None  # the operand as written in rules.yaml
    actual: Any = MISSING  # the value in the event (major units for money), MISSING if absent
    actual_text: str = "(missing)"  # how the actual value reads: 'exhausted', 12.50 USD, 42
    note: str | None = None  # why a comparison could not hold, e.g. "no threshold for CHF"
    children: tuple[ConditionTrace, ...] = ()

    def leaves(self) -> list[ConditionTrace]:
        if self.kind == "field":
            return [self]
        return [leaf for child in self.children for leaf in child.leaves()]


@dataclass(frozen=True)
class RuleTrace:
    name: str
    action: str
    line: int
    on: tuple[str, ...] | None
    skipped_by_on: bool  # the event type is not in the rule's `on:` list
    matched: bool  # `on` passed and `when` held
    decided: bool  # this rule is the one that decided
    when: ConditionTrace


@dataclass(frozen=True)
class Explanation:
    event_id: str | None
    event_type: str | None
    now: datetime
    rules_version: str
    mode: str
    rules: tuple[RuleTrace, ...]
    decision: Decision


def explain(ruleset: RuleSet, event: Mapping[str, Any], now: datetime) -> Explanation:
    """Every rule in order with every condition's expected and actual value, plus the Decision."""
    check_now(now)
    decision = decide(ruleset, event, now)
    subject = Subject(event, now)
    traces = []
    for rule in ruleset.rules:
        when = trace_condition(rule.condition, subject)
        skipped = not rule.applies_to(subject.event_type)
        traces.append(
            RuleTrace(
                name=rule.name,
                action=rule.action,
                line=rule.line,
                on=tuple(sorted(rule.on)) if rule.on is not None else None,
                skipped_by_on=skipped,
                matched=not skipped and when.passed is True,
                decided=decision.rule == rule.name,
                when=when,
            )
        )
    event_id = subject.event.get("id")
    return Explanation(
        event_id=event_id if isinstance(event_id, str) else None,
        event_type=subject.event_type if isinstance(subject.event_type, str) else None,
        now=now,
        rules_version=ruleset.version,
        mode=ruleset.mode,
        rules=tuple(traces),
        decision=decision,
    )


def trace_condition(cond: Condition, subject: Subject) -> ConditionTrace:
    """Evaluate `cond` and all its children without short-circuit, in three-valued logic."""
    if cond.kind != "field":
        children = tuple(trace_condition(child, subject) for child in cond.children)
        return ConditionTrace(cond.kind, combine(cond.kind, [c.passed for c in children]), cond.line, children=children)
    assert cond.field is not None and cond.read is not None
    raw = cond.read(subject)
    actual, note = raw, None
    if raw is MISSING:
        note = "the field is missing or null"
    elif cond.field.is_money and cond.operator != "exists":
        actual, note = _money_actual(cond, raw, subject)
    if raw is MISSING:
        text = "(missing)"
    elif isinstance(actual, str) and not cond.field.is_money:
        text = repr(actual)
    else:
        text = str(actual)
    if len(text) > MAX_ACTUAL_TEXT:  # a 1 MiB note is matched whole, but shown and traced cut short
        text = f"{text[:MAX_ACTUAL_TEXT]}… ({len(text):,} characters)"
    passed: Verdict
    try:
        passed = bool(cond.test(subject))
    except Unevaluable as exc:
        passed, note = None, f"cannot be evaluated: {exc}"
    return ConditionTrace(
        "field",
        passed,
        cond.line,
        field=cond.field.path,
        operator=cond.operator,
        expected=cond.expected_text,
        actual=actual,
        actual_text=text,
        note=note,
    )


def _money_actual(cond: Condition, raw: Any, subject: Subject) -> tuple[Any, str | None]:
    assert cond.field is not None
    if type(raw) is not int:
        return raw, "not an integer amount in minor units"
    currency = cond.field.currency(subject)
    if currency is None:
        return raw, "no currency_code, so the amount cannot be read"
    actual = f"{to_major(raw, currency)} {currency}"
    threshold = cond.expected
    if isinstance(threshold, MoneyThreshold) and threshold.major_for(currency) is None:
        return actual, f"the threshold has no value for {currency}"
    return actual, None


def _mark(passed: Verdict) -> Text:
    if passed is None:
        return Text("? ", style="yellow")
    return Text("✔ ", style="green") if passed else Text("✘ ", style="red")


def _condition_label(trace: ConditionTrace) -> Text:
    label = _mark(trace.passed)
    if trace.kind != "field":
        label.append(f"{trace.kind}", style="bold")
        label.append(f"  (line {trace.line})", style="dim")
        return label
    label.append(f"{trace.field} {trace.operator} {trace.expected}")
    label.append(f"   actual: {trace.actual_text}", style="cyan")
    if trace.note:
        label.append(f"  [{trace.note}]", style="yellow")
    label.append(f"  (line {trace.line})", style="dim")
    return label


def _add(tree: Tree, trace: ConditionTrace) -> None:
    branch = tree.add(_condition_label(trace))
    for child in trace.children:
        _add(branch, child)


def format_explanation(expl: Explanation) -> Group:
    """A rich renderable: one tree per rule, then the decision. Print it with a rich Console."""
    header = Text()
    header.append(f"event {expl.event_id or '?'} ({expl.event_type or 'no event_type'})", style="bold")
    header.append(f"  at {expl.now.isoformat()}  rules {expl.rules_version}  mode {expl.mode}")
    parts: list[Any] = [header]
    for rule in expl.rules:
        title = _mark(None if not rule.skipped_by_on and rule.when.passed is None else rule.matched)
        title.append(f"rule {rule.name}", style="bold")
        title.append(f" → {rule.action}  (line {rule.line})")
        if rule.skipped_by_on:
            title.append(f"  skipped: event type not in on: {list(rule.on or ())}", style="yellow")
        elif rule.decided:
            title.append("  ← decided", style="bold green")
        tree = Tree(title)
        _add(tree, rule.when)
        parts.append(tree)
    d = expl.decision
    verdict = Text("decision: ", style="bold")
    verdict.append(d.action.upper(), style="bold green" if d.action == "write_off" else "bold yellow")
    verdict.append(f" — {d.reason}")
    if d.dry_run:
        verdict.append("  (dry run: nothing will be called)", style="dim")
    parts.append(verdict)
    if d.comment:
        parts.append(Text(f"comment: {d.comment}"))
    return Group(*parts)
