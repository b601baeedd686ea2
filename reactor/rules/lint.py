"""What a valid rule file may still get wrong: events without an invoice, conditions that are
always or never true.

The loader runs these checks once per load, on the compiled rules and their YAML nodes; `decide`
never sees them. Some findings are errors (a write_off rule that can never act is refused, like a
typo), others are warnings: the file loads and is in force, and `reactor rules check` prints them.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from yaml.nodes import Node, ScalarNode, SequenceNode

from .conditions import Condition
from .event_types import INVOICE_EXAMPLES, INVOICE_SOMETIMES, INVOICELESS_EVENT_TYPES
from .fields import DAYS_OVERDUE
from .money import MoneyThreshold
from .problems import Problems
from .yamlnodes import ScalarValueError, scalar_value

NON_NEGATIVE_MONEY: frozenset[str] = frozenset(
    {
        "amount_due",
        "total",
        "amount_paid",
        "amount_adjusted",
        "write_off_amount",
        "credits_applied",
        "amount_to_collect",
        "sub_total",
        "tax",
    }
)
"""Money fields Chargebee never sends below zero (round_off_amount, for one, can be negative)."""

_ORDERING = ("lt", "lte", "gt", "gte")


def check_on(on_node: Node, action: str | None, label: str, problems: Problems, warnings: Problems) -> None:
    """Event types in `on:` that bring no invoice: refused in a write_off rule, warned in a skip rule.

    A write_off rule acts on the event's invoice and on nothing else. When every listed type lacks
    one, the rule can never act: an error at `on`. When only some do, each of those is refused too
    (rather than warned): listed there, it tells the reader the rule covers an event it never acts
    on, and in a rule that moves money the file should say exactly what it does. A skip rule on
    such events harms nothing (nothing would be written off there anyway), so it is only warned.
    """
    items = on_node.value if isinstance(on_node, SequenceNode) else [on_node]
    listed = []
    for item in items:
        value = _text(item)
        if isinstance(value, str):
            listed.append((value, item))
    invoiceless = [(value, item) for value, item in listed if value in INVOICELESS_EVENT_TYPES]
    report = problems if action == "write_off" else warnings
    verb = "writes off" if action == "write_off" else "skips"
    examples = ", ".join(INVOICE_EXAMPLES[:-1]) + " or " + INVOICE_EXAMPLES[-1]
    if invoiceless and len(invoiceless) == len(listed):
        names = _names(value for value, _ in invoiceless)
        carry = "carries" if len(invoiceless) == 1 else "carry"
        report.add(
            on_node,
            f"{label} {verb} on {names} only, which {carry} no invoice, so the rule can never act; "
            f"name events that carry one, such as {examples}",
        )
    else:
        for value, item in invoiceless:
            report.add(
                item,
                f"{label} {verb}, but {value} carries no invoice, so the rule can never act on it; "
                f"remove it from `on` (events that carry one: {examples})",
            )
    if action == "write_off":
        for value, item in listed:
            if value in INVOICE_SOMETIMES:
                warnings.add(item, f"{label} writes off on {value}: {INVOICE_SOMETIMES[value]}")


def condition_warnings(condition: Condition) -> Iterator[tuple[int, int, str]]:
    """(line, col, sentence) for each comparison that is always or never true, in file order."""
    for leaf in condition.leaves():
        sentence = _leaf_warning(leaf)
        if sentence is not None:
            yield leaf.line, leaf.col, sentence
    yield from _contradictions(condition)


def _leaf_warning(leaf: Condition) -> str | None:
    field, op, expected = leaf.field, leaf.operator, leaf.expected
    assert field is not None and op is not None
    if field.root == DAYS_OVERDUE:
        what, why = "days_overdue", "days_overdue is never negative (it is 0 until the due date)"
        always_note = " for every invoice with a due date"
    elif field.is_money and field.leaf in NON_NEGATIVE_MONEY:
        what, why = field.path, f"Chargebee never sends a negative {field.leaf}"
        always_note = " whenever the field is present"
    else:
        return None
    if op == "between":  # [low, high] is as never-true as `lt: 0` when high < 0
        bounds, verdict = _bounds(expected[1]), False
        if bounds is None or not all(b < 0 for b in bounds):
            return None
    else:
        bounds = _bounds(expected)
        verdict = None if bounds is None else _verdict(op, bounds)
    if verdict is None:
        return None
    shown = f"`{what}: {{{op}: {leaf.expected_text}}}`"
    if verdict:
        return f"{shown} is always true{always_note}: {why}; the condition does nothing"
    return f"{shown} is never true: {why}; the rule cannot match through it"


def _verdict(op: str, bounds: list[Any]) -> bool | None:
    """True: always holds for a value >= 0; False: never does; None: depends on the value."""
    if op == "gte" and all(b <= 0 for b in bounds):
        return True
    if op == "gt" and all(b < 0 for b in bounds):
        return True
    if op == "lt" and all(b <= 0 for b in bounds):
        return False
    if op == "lte" and all(b < 0 for b in bounds):
        return False
    if op == "eq" and all(b < 0 for b in bounds):
        return False
    if op == "ne" and all(b < 0 for b in bounds):
        return True
    if op == "in" and all(b < 0 for b in bounds):
        return False
    return None


def _bounds(expected: Any) -> list[Any] | None:
    """The numbers an operand compares with: plain numbers, or the thresholds (major units) a
    money operand holds for every currency it names; None when the operand is anything else."""
    values = expected if isinstance(expected, list) else [expected]
    bounds: list[Any] = []
    for value in values:
        if isinstance(value, MoneyThreshold):
            if value.any_currency is not None:
                bounds.append(value.any_currency)
            bounds.extend(value.per_currency.values())
        elif _is_number(value):
            bounds.append(value)
        else:
            return None
    return bounds or None


def _contradictions(condition: Condition) -> Iterator[tuple[int, int, str]]:
    """Bounds on one number under one `all` that no value can meet: `{gte: 10, lte: 5}`."""
    if condition.kind == "field":
        return
    if condition.kind == "all":
        lows: dict[str, tuple[Any, bool, Condition]] = {}
        highs: dict[str, tuple[Any, bool]] = {}
        for child in condition.children:
            for leaf in _ordering_leaves(child):
                assert leaf.field is not None and leaf.operator is not None
                path, bound, strict = leaf.field.path, leaf.expected, leaf.operator in ("gt", "lt")
                if leaf.operator in ("gt", "gte"):
                    if path not in lows or bound > lows[path][0] or (bound == lows[path][0] and strict):
                        lows[path] = (bound, strict, leaf)
                elif path not in highs or bound < highs[path][0] or (bound == highs[path][0] and strict):
                    highs[path] = (bound, strict)
        for path, (low, low_strict, leaf) in lows.items():
            if path in highs:
                high, high_strict = highs[path]
                if low > high or (low == high and (low_strict or high_strict)):
                    yield (
                        leaf.line,
                        leaf.col,
                        f"the bounds on {path} under one `all` exclude each other (at least {low}, at most "
                        f"{high}{', both exclusive' if low == high else ''}), so they are never all true",
                    )
    for child in _below_all(condition):
        yield from _contradictions(child)


def _below_all(condition: Condition) -> Iterator[Condition]:
    """The children to look into next: an `all` inside an `all` was already flattened into it."""
    for child in condition.children:
        if condition.kind == "all" and child.kind == "all":
            yield from _below_all(child)
        else:
            yield child


def _ordering_leaves(condition: Condition) -> Iterator[Condition]:
    """The plain-number lt/lte/gt/gte leaves that must hold with their parent `all`."""
    if condition.kind == "all":
        for child in condition.children:
            yield from _ordering_leaves(child)
    elif (
        condition.kind == "field"
        and condition.operator in _ORDERING
        and _is_number(condition.expected)
        and condition.field is not None
        and not condition.field.is_money
    ):
        yield condition


def _is_number(value: Any) -> bool:
    return value.__class__ in (int, float, Decimal)


def _names(values: Iterator[str]) -> str:
    names = list(dict.fromkeys(values))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _text(node: Node) -> object:
    if not isinstance(node, ScalarNode):
        return None
    try:
        return scalar_value(node)
    except ScalarValueError:
        return None
