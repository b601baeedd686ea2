"""`when:` conditions: validated from YAML nodes and compiled into predicate closures.

Each condition becomes a Condition whose `test(subject)` is a closure built once at load time, so
deciding an event is only dict lookups and comparisons (`ConditionCompiler`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from . import operators as ops
from .fields import CONTENT_ROOTS, DAYS_OVERDUE, MISSING, FieldRef, Subject, did_you_mean, parse_field
from .money import ZERO_DECIMAL_CURRENCIES, MoneyThreshold
from .problems import ProblemKind, Problems
from .yamlnodes import describe, mapping_items, position

COMBINATORS = ("all", "any", "not")
MAX_DEPTH = 32
MAX_CONDITIONS = 5000
"""Comparisons (`field: {op: operand}`) and `all`/`any`/`not` in one file, counted wherever they
are, a YAML alias (`*name`) once for each use; refused at the first one too many."""

Test = Callable[[Subject], bool]
Verdict = bool | None
"""A condition in three-valued logic: True, False, or None when it cannot be known."""

# Run-time safety: a missing field or a value of the wrong type makes that condition false, and so do
# the errors a comparison can legitimately meet on odd data (EXPECTED_ERRORS). A comparison that
# cannot be made on this event (a text longer than `matches` reads) raises operators.Unevaluable:
# `decide` catches it and weighs the rules again in three-valued logic (`kleene` below), so that a
# write-off never rests on it. Anything else (RQ's job timeout, a bug, running out of recursion)
# propagates and stops the decision: turning it into "false" would let a protective skip rule be
# passed over and a later write_off rule match.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (TypeError, ValueError, ArithmeticError)
"""What a comparison may raise on data of an unexpected shape (text against a number, a Decimal
that is not finite, an int too large for a float); each makes the condition false."""


@dataclass(frozen=True, eq=False)
class Condition:
    """A node of a compiled `when`: a combinator ("all", "any", "not") or a "field" comparison."""

    kind: str
    test: Test
    line: int
    col: int
    children: tuple[Condition, ...] = ()
    field: FieldRef | None = None
    operator: str | None = None
    expected: Any = None  # the operand as written (str, number, list, MoneyThreshold ...)
    expected_text: str = ""
    read: Callable[[Subject], Any] | None = None
    days_points: tuple[Any, ...] = ()  # numbers a days_overdue comparison turns on (for timing)

    def top_level_tests(self) -> tuple[Test, ...]:
        """Tests that must all hold: the children of an `all`, else this node's own test."""
        if self.kind == "all":
            return tuple(child.test for child in self.children)
        return (self.test,)

    def leaves(self) -> list[Condition]:
        """Every field comparison under this node, in file order."""
        if self.kind == "field":
            return [self]
        return [leaf for child in self.children for leaf in child.leaves()]


def kleene(condition: Condition, subject: Subject, unknown: frozenset[str] = frozenset()) -> Verdict:
    """The condition in three-valued logic: a leaf that cannot be evaluated (Unevaluable), or that
    reads a resource in `unknown` (`customer`, reactor/rules/facts.py) or a field in it
    (`transaction.amount`, reactor/rules/preview.py), is None; a combinator is None only when
    its children leave its value open. Where no leaf is None, this is `condition.test`."""
    if condition.kind != "field":
        return combine(condition.kind, [kleene(child, subject, unknown) for child in condition.children])
    field = condition.field
    if field is not None and (field.root in unknown or field.path in unknown):
        return None
    try:
        return bool(condition.test(subject))
    except ops.Unevaluable:
        return None


def combine(kind: str, verdicts: list[Verdict]) -> Verdict:
    """`all`, `any` or `not` over its children's verdicts, in Kleene's three-valued logic."""
    if kind == "not":
        return None if verdicts[0] is None else not verdicts[0]
    if kind == "any":
        if True in verdicts:
            return True
        return None if None in verdicts else False
    if False in verdicts:  # "all"
        return False
    return None if None in verdicts else True


def unevaluable(condition: Condition, subject: Subject) -> tuple[Condition, str] | None:
    """The first leaf of `condition` that cannot be evaluated on `subject`, and why; None if none."""
    for leaf in condition.leaves():
        try:
            leaf.test(subject)
        except ops.Unevaluable as exc:
            return leaf, str(exc)
    return None


def all_of(tests: list[Test]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda subject: first(subject) and second(subject)
    frozen = tuple(tests)

    def test(subject: Subject) -> bool:
        for one in frozen:  # noqa: SIM110 - a plain loop beats all(<genexpr>) on the hot path
            if not one(subject):
                return False
        return True

    return test


def any_of(tests: list[Test]) -> Test:
    frozen = tuple(tests)

    def test(subject: Subject) -> bool:
        for one in frozen:  # noqa: SIM110 - a plain loop beats any(<genexpr>) on the hot path
            if one(subject):
                return True
        return False

    return test


def _negate(inner: Test) -> Test:
    return lambda subject: not inner(subject)


class ConditionCompiler:
    """Turns the node under `when:` into a Condition, reporting every problem it finds.

    Each closure is built with the field path pre-split, the regex compiled and money thresholds
    pre-scaled to minor units. The tree keeps positions and the values as written so `explain` can
    show ops every comparison. The hottest leaf closures also carry a `test.inline` tag (kind, field,
    operand) from which plan.py writes the same comparison out as an expression in its compiled
    matchers (`inline_expression`); the closure here stays the reference."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.count = 0

    def compile(self, node: Node, depth: int = 0) -> Condition | None:
        if depth > MAX_DEPTH or self.count > MAX_CONDITIONS:
            if depth == MAX_DEPTH + 1:
                self.problems.add(
                    node, f"conditions are nested more than {MAX_DEPTH} levels deep", ProblemKind.OVER_LIMIT
                )
            return None
        if isinstance(node, SequenceNode):
            return self._list(node, depth)
        if isinstance(node, MappingNode):
            return self._mapping(node, depth)
        self.problems.add(
            node,
            f"a condition must be a mapping such as `invoice.status: paid`, not {describe(node)}",
            ProblemKind.WRONG_TYPE,
        )
        return None

    def _counted(self, node: Node) -> bool:
        """Count one more condition at `node`; False once there are more than MAX_CONDITIONS."""
        self.count += 1
        if self.count == MAX_CONDITIONS + 1:
            self.problems.add(
                node,
                f"the rule file has more than {MAX_CONDITIONS} conditions "
                "(a condition reached through a YAML alias counts each time it is used)",
                ProblemKind.OVER_LIMIT,
            )
        return self.count <= MAX_CONDITIONS

    def _list(self, node: SequenceNode, depth: int, what: str = "a list of conditions") -> Condition | None:
        if not node.value:
            self.problems.add(node, f"{what} is empty; give at least one condition")
            return None
        children = []
        for item in node.value:
            if not isinstance(item, MappingNode):
                self.problems.add(
                    item,
                    f"each item of a condition list must be a mapping such as `invoice.status: paid`, "
                    f"not {describe(item)}",
                    ProblemKind.WRONG_TYPE,
                )
                continue
            children.append(self._mapping(item, depth + 1))
        return self._group("all", node, children)

    def _group(self, kind: str, node: Node, children: list[Condition | None]) -> Condition | None:
        if any(child is None for child in children) or not children:
            return None
        kids: list[Condition] = children  # type: ignore[assignment]
        if kind == "all" and len(kids) == 1:
            return kids[0]
        test = all_of([c.test for c in kids]) if kind == "all" else any_of([c.test for c in kids])
        return Condition(kind, test, *position(node), children=tuple(kids))

    def _mapping(self, node: MappingNode, depth: int) -> Condition | None:
        if self.count > MAX_CONDITIONS:
            return None
        items = mapping_items(node, self.problems)
        if not node.value:
            self.problems.add(node, "an empty mapping is not a condition")
            return None
        combinators = [(k, kn, v) for k, kn, v in items if k in COMBINATORS]
        if combinators:
            if len(node.value) > 1:
                key = combinators[0][0]
                self.problems.add(
                    combinators[0][1],
                    f"'{key}' must be the only key of its mapping; put the other conditions inside it",
                    ProblemKind.MISPLACED,
                )
                return None
            return self._combinator(*combinators[0], depth)
        children = [self._field(key, key_node, value, depth) for key, key_node, value in items]
        if len(items) < len(node.value):
            return None
        return self._group("all", node, children)

    def _combinator(self, key: str, key_node: Node, value: Node, depth: int) -> Condition | None:
        if not self._counted(key_node):
            return None
        if key == "not":
            if isinstance(value, ScalarNode):
                self.problems.add(
                    value, f"'not' needs a condition to negate, not {describe(value)}", ProblemKind.WRONG_TYPE
                )
                return None
            inner = self.compile(value, depth + 1)
            if inner is None:
                return None
            return Condition("not", _negate(inner.test), *position(key_node), children=(inner,))
        if not isinstance(value, SequenceNode):
            self.problems.add(
                value, f"'{key}' needs a list of conditions, not {describe(value)}", ProblemKind.WRONG_TYPE
            )
            return None
        if not value.value:
            self.problems.add(value, f"'{key}' has an empty list; give at least one condition")
            return None
        children = []
        for item in value.value:
            children.append(self.compile(item, depth + 1))
        result = self._group(key, key_node, children)
        if result is not None and result.kind != key:  # a one-item `all` collapses; keep the node
            result = Condition(key, result.test, *position(key_node), children=(result,))
        return result

    def _field(self, key: str, key_node: Node, value: Node, depth: int) -> Condition | None:
        if key in ops.OPERATORS:
            self.problems.add(
                key_node,
                f"'{key}' is an operator; put it under a field, e.g. `invoice.amount_due: {{{key}: 5}}`",
                ProblemKind.MISPLACED,
            )
            return None
        field = parse_field(key)
        if isinstance(field, str):
            self.problems.add(key_node, field, ProblemKind.UNKNOWN_FIELD)
            return None
        if isinstance(value, SequenceNode):
            self.problems.add(
                value,
                f"a list is not a value for '{key}'; use `{{in: [...]}}` to accept any of several values",
                ProblemKind.WRONG_TYPE,
            )
            return None
        if isinstance(value, ScalarNode):
            return self._leaf(field, "eq", value, value)
        pairs = mapping_items(value, self.problems)  # type: ignore[arg-type]
        if not value.value:
            self.problems.add(
                value, f"no operator given for '{key}'; write e.g. `{key}: {{eq: ...}}`", ProblemKind.MISSING_KEY
            )
            return None
        leaves = []
        for op, op_node, operand in pairs:
            if op not in ops.OPERATORS:
                hint = " (all, any and not go around fields, not under them)" if op in COMBINATORS else ""
                self.problems.add(
                    op_node,
                    f"unknown operator '{op}' for '{key}'{hint}; operators are {', '.join(ops.OPERATORS)}"
                    f"{did_you_mean(op, ops.OPERATORS)}",
                    ProblemKind.UNKNOWN_OPERATOR,
                )
                leaves.append(None)
                continue
            leaves.append(self._leaf(field, op, operand, op_node))
        if len(pairs) < len(value.value):
            return None
        return self._group("all", value, leaves)

    def _leaf(self, field: FieldRef, op: str, operand: Node, at: Node) -> Condition | None:
        if not self._counted(at):
            return None
        try:
            compiled = ops.compile_operator(field, op, operand)
        except ops.OperandError as exc:
            for node, sentence in exc.problems:
                self.problems.add(node or operand, sentence)
            return None
        read = field.getter()
        test = _leaf_test(field, read, compiled)
        if op == "eq" and compiled.expected.__class__ is bool and field.root in CONTENT_ROOTS and len(field.rest) == 1:
            test.inline = ("is", field.root, field.rest[0], compiled.expected)  # type: ignore[attr-defined]
        return Condition(
            "field",
            test,
            *position(at),
            field=field,
            operator=op,
            expected=compiled.expected,
            expected_text=compiled.text,
            read=read,
            days_points=compiled.days_points,
        )


def _leaf_test(field: FieldRef, read: Callable[[Subject], Any], compiled: ops.Compiled) -> Test:
    check = compiled.check
    if compiled.exists is not None:
        want = compiled.exists
        exists = lambda subject: (read(subject) is not MISSING) is want  # noqa: E731
        if field.root in CONTENT_ROOTS and len(field.rest) == 1:
            exists.inline = ("exists", field.root, field.rest[0], want)  # type: ignore[attr-defined]
        return exists
    if field.is_money:
        if compiled.money_test is not None and len(field.rest) == 1:
            return _money_field_test(field, read, check, *compiled.money_test)
        return _money_test(field, read, check)
    if field.root == DAYS_OVERDUE and compiled.ordering is not None:
        return _days_test(*compiled.ordering)
    if field.root in CONTENT_ROOTS and len(field.rest) == 1:
        if compiled.text_test is not None:
            return _text_field_test(field.root, field.rest[0], read, *compiled.text_test)
        return _resource_field_test(field.root, field.rest[0], read, check)
    if compiled.text_test is not None:
        text_test = _text_test(read, *compiled.text_test)
        if field.root in CONTENT_ROOTS and len(field.rest) == 2 and not field.rest[0].isdigit():
            text_test.inline = ("nested_text", field.root, field.rest, *compiled.text_test)  # type: ignore[attr-defined]
        return text_test

    def test(subject: Subject) -> bool:
        value = read(subject)
        if value is MISSING:
            return False
        try:
            return bool(check(value))
        except EXPECTED_ERRORS:
            return False

    return test


def _money_test(field: FieldRef, read: Callable[[Subject], Any], check: Callable[..., bool]) -> Test:
    currency_of = field.currency

    def money_test(subject: Subject) -> bool:
        value = read(subject)
        if value.__class__ is not int:
            return False
        currency = currency_of(subject)
        if currency is None:
            return False
        try:
            return bool(check(value, currency))
        except EXPECTED_ERRORS:
            return False

    return money_test


def _money_field_test(
    field: FieldRef,
    read: Callable[[Subject], Any],
    check: Callable[..., bool],
    compare: Callable[[Any, Any], bool],
    threshold: MoneyThreshold,
) -> Test:
    """`invoice.amount_due: {lte: {USD: 25}}` with the read, the currency and the bound inlined.

    The bound per currency (in minor units) is one dict lookup; a currency that the threshold has
    no value for finds None and the condition is false, as in `MoneyThreshold.minor_for`.
    """
    root, key, currency_of = field.root, field.rest[0], field.currency
    if threshold.any_currency is None:
        bounds = {cur: threshold.minor_for(cur) for cur in threshold.per_currency}
        default = None
    else:
        bounds = {cur: threshold.minor_for(cur) for cur in ZERO_DECIMAL_CURRENCIES}
        default = threshold.minor_for("USD")
    get = bounds.get
    slow = _money_test(field, read, check)

    def test(subject: Subject) -> bool:
        resource = subject.content.get(root)
        if resource.__class__ is not dict:
            return slow(subject)
        value = resource.get(key)
        if value.__class__ is not int:
            return False
        currency = resource.get("currency_code")
        if currency.__class__ is not str or not currency.isupper():
            currency = currency_of(subject)
            if currency is None:
                return False
        bound = get(currency, default)
        return bound is not None and compare(value, bound)

    test.inline = ("money", root, key, compare, bounds, default)  # type: ignore[attr-defined]
    return test


def _days_test(compare: Callable[[Any, Any], bool], bound: Any) -> Test:
    """`days_overdue: {gte: 90}`: the day count is an int computed once per event, or MISSING."""

    def test(subject: Subject) -> bool:
        days = subject.days_overdue()
        return days is not MISSING and compare(days, bound)

    test.inline = ("days", compare, bound)  # type: ignore[attr-defined]
    return test


def _text_test(read: Callable[[Subject], Any], op: str, operand: Any) -> Test:
    """Text comparisons on deeper paths (`invoice.billing_address.country: {in: [...]}`)."""
    if op == "eq":
        return lambda subject: (value := read(subject)).__class__ is str and value == operand
    if op == "in":
        return lambda subject: (value := read(subject)).__class__ is str and value in operand
    return lambda subject: (value := read(subject)).__class__ is str and value.startswith(operand)


def _resource_field_test(root: str, key: str, read: Callable[[Subject], Any], check: Callable[[Any], bool]) -> Test:
    """`invoice.status`-style leaves with the read inlined: the hot path of most rule files."""

    def test(subject: Subject) -> bool:
        resource = subject.content.get(root)
        if resource.__class__ is dict:
            value = resource.get(key)
            if value is None:
                return False
        else:
            value = read(subject)
            if value is MISSING:
                return False
        try:
            return check(value)
        except EXPECTED_ERRORS:
            return False

    return test


def _text_field_test(root: str, key: str, read: Callable[[Subject], Any], op: str, operand: Any) -> Test:
    """Fully inlined text comparisons (eq, in, starts_with): one call per condition.

    Nothing here can raise: a missing value is None or MISSING, neither of which is a str.
    """
    if op == "eq":

        def test(subject: Subject) -> bool:
            resource = subject.content.get(root)
            value = resource.get(key) if resource.__class__ is dict else read(subject)
            return value.__class__ is str and value == operand

    elif op == "in":

        def test(subject: Subject) -> bool:
            resource = subject.content.get(root)
            value = resource.get(key) if resource.__class__ is dict else read(subject)
            return value.__class__ is str and value in operand

    else:

        def test(subject: Subject) -> bool:
            resource = subject.content.get(root)
            value = resource.get(key) if resource.__class__ is dict else read(subject)
            return value.__class__ is str and value.startswith(operand)

    test.inline = ("text", root, key, op, operand)  # type: ignore[attr-defined]
    return test
