"""Operators (`eq`, `in`, `lte`, `between`, `matches` ...): operand validation and check closures.

Every check is type-guarded: comparing text with a number is simply false. Money checks take
(minor_amount, currency) and compare against thresholds already scaled to minor units.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import re2
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .fields import DAYS_OVERDUE, FieldRef
from .money import MoneyThreshold, to_major
from .yamlnodes import ScalarValueError, describe, scalar_value

OPERATORS = (
    "eq",
    "ne",
    "in",
    "not_in",
    "lt",
    "lte",
    "gt",
    "gte",
    "between",
    "starts_with",
    "matches",
    "exists",
)
_ORDERING = {"lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge}
_NUMBERS = frozenset({int, float, Decimal})
_CURRENCY = re.compile(r"[A-Z]{3}")

MAX_MATCH_TEXT = 1024 * 1024
"""Characters a `matches` condition reads: 1 MiB, the webhook's default body limit
(REACTOR_MAX_BODY_BYTES), so every text an event can carry is matched. A longer text (under a
raised body limit, or in a resource fetched from Chargebee) cannot be evaluated: the condition
raises Unevaluable, it is neither true nor false, and `decide` blocks every write-off that could
depend on it. The cap bounds the cost: RE2 is linear in the text, but for a pattern whose
automaton does not fit its cache it falls back to a slower simulation whose cost is text length
times pattern size, seconds for the worst pattern MAX_PATTERN_SIZE allows on a 1 MiB text;
everyday patterns take a few milliseconds there (docs/benchmarks.md)."""
MAX_PATTERN_SIZE = 300
"""Largest RE2 program (instructions, `programsize`) a `matches` pattern may compile to. Everyday
patterns are 5 to 30 (`^cus_[0-9]+$` is 6); together with MAX_MATCH_TEXT this keeps the worst
pattern on the worst text far below a job's time (docs/benchmarks.md, docs/security.md)."""
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is reported at its file:line:col, not on stderr
_RE2_OPTIONS.never_capture = True  # a condition only asks "found or not": no group bookkeeping
_UNSUPPORTED = (  # (what RE2 says or the pattern holds, the construct it means)
    ("(?=", "lookahead (?=...)"),
    ("(?!", "lookahead (?!...)"),
    ("(?<=", "lookbehind (?<=...)"),
    ("(?<!", "lookbehind (?<!...)"),
    ("(?P=", "the backreference (?P=name)"),
    ("(?>", "the atomic group (?>...)"),
    ("(?#", "the comment (?#...)"),
)
_BACKREFERENCE = re.compile(r"\\[1-9]")
_POSSESSIVE = re.compile(r"bad repetition operator: [*+?}]\+")


class Unevaluable(Exception):
    """A comparison that cannot be made on this event: neither true nor false (a text longer than
    `matches` reads). Not one of the errors that make a condition false (conditions.EXPECTED_ERRORS):
    `decide` answers it in three-valued logic and blocks a write-off that could rest on it."""


class OperandError(Exception):
    """The operand of an operator is unusable; `problems` lists its (node, sentence) pairs, several
    when a currency map has several bad entries (ops fix them all in one round)."""

    def __init__(self, message: str, node: Node | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.problems: list[tuple[Node | None, str]] = [(node, message)]

    @classmethod
    def of(cls, errors: list[OperandError]) -> OperandError:
        """One error carrying the problems of all of `errors` (the first gives its message)."""
        combined = cls(str(errors[0]), errors[0].node)
        combined.problems = [pair for error in errors for pair in error.problems]
        return combined


@dataclass(frozen=True)
class Compiled:
    check: Callable[..., bool]
    expected: Any
    text: str
    days_points: tuple[Any, ...] = ()
    exists: bool | None = None
    text_test: tuple[str, Any] | None = None  # ("eq" | "in" | "starts_with", operand) on text
    ordering: tuple[Callable[[Any, Any], bool], Any] | None = None  # (operator.le, 90) on a number
    money_test: tuple[Callable[[Any, Any], bool], MoneyThreshold] | None = None  # (operator.le, threshold)


def compile_operator(field: FieldRef, op: str, node: Node) -> Compiled:
    """Validate `node` as the operand of `op` on `field` and build its check."""
    text = node_text(node)
    if op == "exists":
        value = _scalar(node)
        if not isinstance(value, bool):
            raise OperandError(f"'exists' needs true or false, not {describe(node)}", node)
        return Compiled(lambda v: True, value, text, exists=value)
    if op in ("starts_with", "matches"):
        return _text_operator(field, op, node, text)
    if field.is_money:
        return _money_operator(field, op, node, text)
    if op in ("eq", "ne"):
        expected = _single_value(field, op, node)
        check = _equals(expected) if op == "eq" else _differs(expected)
        fast = ("eq", expected) if op == "eq" and expected.__class__ is str else None
        return Compiled(check, expected, text, _points(field, [expected]), text_test=fast)
    if op in ("in", "not_in"):
        values = _value_list(field, op, node)
        fast = ("in", frozenset(values)) if op == "in" and all(v.__class__ is str for v in values) else None
        return Compiled(_membership(values, op == "in"), values, text, _points(field, values), text_test=fast)
    if op in _ORDERING:
        bound = _number(_no_currency_map(field, op, node), f"'{op}'")
        compare = _ORDERING[op]
        return Compiled(
            lambda v: v.__class__ in _NUMBERS and compare(v, bound),
            bound,
            text,
            _points(field, [bound]),
            ordering=(compare, bound),
        )
    low, high = _range(_no_currency_map(field, op, node))
    return Compiled(
        lambda v: v.__class__ in _NUMBERS and low <= v <= high, [low, high], text, _points(field, [low, high])
    )


def _points(field: FieldRef, values: list[Any]) -> tuple[Any, ...]:
    if field.root != DAYS_OVERDUE:
        return ()
    return tuple(v for v in values if v.__class__ in _NUMBERS)


def _text_operator(field: FieldRef, op: str, node: Node, text: str) -> Compiled:
    if field.is_money or field.root == DAYS_OVERDUE:
        raise OperandError(f"'{op}' compares text, but '{field.path}' is a number", node)
    value = _scalar(node)
    if not isinstance(value, str) or not value:
        raise OperandError(f"'{op}' needs a non-empty text, not {describe(node)}; quote it if needed", node)
    if op == "starts_with":
        return Compiled(lambda v: v.__class__ is str and v.startswith(value), value, text, text_test=(op, value))
    search = _pattern(value, node).search
    limit = MAX_MATCH_TEXT

    def check(v: Any) -> bool:
        if v.__class__ is not str:
            return False
        if len(v) > limit:
            raise Unevaluable(f"the text is {len(v):,} characters, more than the {limit:,} that `matches` reads")
        return search(v) is not None

    return Compiled(check, value, text)


def _pattern(value: str, node: Node) -> Any:
    """The RE2 pattern of a `matches` operand. RE2 runs in time linear in the text, whatever the
    pattern: `^(a+)+$`, which holds Python's backtracking `re` for minutes on 40 characters, costs
    microseconds. The price is that constructs only backtracking can run are refused."""
    try:
        pattern = re2.compile(value, _RE2_OPTIONS)
    except UnicodeEncodeError as exc:
        raise OperandError("the pattern for 'matches' is not valid text (it holds a lone surrogate)", node) from exc
    except re2.error as exc:
        raise OperandError(_pattern_problem(value, exc), node) from exc
    if pattern.programsize > MAX_PATTERN_SIZE:
        raise OperandError(
            f"the pattern for 'matches' is too complex (size {pattern.programsize}, at most {MAX_PATTERN_SIZE}); "
            "use fewer or smaller {n} repetitions and character classes",
            node,
        )
    return pattern


def _pattern_problem(value: str, exc: Exception) -> str:
    reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    construct = next((name for marker, name in _UNSUPPORTED if marker in value), None)
    if construct is None and _BACKREFERENCE.search(value) and "invalid escape sequence" in reason:
        construct = "a backreference such as \\1"
    if construct is None and _POSSESSIVE.search(reason):
        construct = "a possessive quantifier such as a++"
    if construct is not None:
        return (
            f"{construct} is not supported in 'matches': patterns use RE2 syntax, which runs in linear time "
            "and so has no lookarounds, backreferences, atomic groups or possessive quantifiers"
        )
    if "too large" in reason or "repetition size" in reason:
        return f"the pattern for 'matches' is too complex ({reason}); repetition counts go up to 1000"
    return f"invalid regular expression for 'matches' (RE2 syntax): {reason}"


def _money_operator(field: FieldRef, op: str, node: Node, text: str) -> Compiled:
    if op in ("in", "not_in"):
        if isinstance(node, SequenceNode) and not node.value:
            raise OperandError(f"the list of '{op}' is empty; give at least one amount, e.g. [25, 50]", node)
        if not isinstance(node, SequenceNode):
            raise OperandError(f"'{op}' needs a non-empty list of amounts, not {describe(node)}", node)
        amounts = frozenset(Decimal(str(_number(item, f"'{op}'"))) for item in node.value)
        want = op == "in"
        return Compiled(lambda v, cur: (to_major(v, cur) in amounts) is want, sorted(amounts), text)
    if op == "between":
        low, high = _money_range(node)
        return Compiled(lambda v, cur: _between_minor(v, cur, low, high), [low, high], text)
    threshold = _money(node, op)
    compare = {"eq": operator.eq, "ne": operator.ne, **_ORDERING}[op]

    def check(value: int, currency: str) -> bool:
        bound = threshold.minor_for(currency)
        return bound is not None and compare(value, bound)

    return Compiled(check, threshold, text, money_test=(compare, threshold))


def _between_minor(value: int, currency: str, low: MoneyThreshold, high: MoneyThreshold) -> bool:
    lo, hi = low.minor_for(currency), high.minor_for(currency)
    return lo is not None and hi is not None and lo <= value <= hi


def _money(node: Node, op: str) -> MoneyThreshold:
    if isinstance(node, MappingNode):
        return MoneyThreshold(per_currency=_currency_map(node, lambda n: _decimal(n, f"'{op}'")))
    return MoneyThreshold(any_currency=_decimal(node, f"'{op}'"))


def _money_range(node: Node) -> tuple[MoneyThreshold, MoneyThreshold]:
    if isinstance(node, MappingNode):
        ranges = _currency_map(node, _range)
        low = {cur: Decimal(str(r[0])) for cur, r in ranges.items()}
        high = {cur: Decimal(str(r[1])) for cur, r in ranges.items()}
        return MoneyThreshold(per_currency=low), MoneyThreshold(per_currency=high)
    lo, hi = _range(node)
    return MoneyThreshold(any_currency=Decimal(str(lo))), MoneyThreshold(any_currency=Decimal(str(hi)))


def _currency_map(node: MappingNode, parse: Callable[[Node], Any]) -> dict[str, Any]:
    if not node.value:
        raise OperandError("the currency map is empty; give at least one currency, e.g. {USD: 25}", node)
    result, errors = {}, []
    for key, value in node.value:
        code = key.value if isinstance(key, ScalarNode) else None
        try:
            if code is None or not _CURRENCY.fullmatch(code):
                raise OperandError(f"currency codes are three capital letters such as USD, not {describe(key)}", key)
            result[code] = parse(value)
        except OperandError as exc:
            errors.append(exc)
    if errors:
        raise OperandError.of(errors)
    return result


def _no_currency_map(field: FieldRef, op: str, node: Node) -> Node:
    if isinstance(node, MappingNode):
        keys = [k.value for k, _ in node.value if isinstance(k, ScalarNode)]
        if keys and all(_CURRENCY.fullmatch(k) for k in keys):
            raise OperandError(
                "currency maps only apply to money fields such as amount_due, total or amount_paid; "
                f"'{field.path}' is not one, so give '{op}' a plain value",
                node,
            )
        raise OperandError(f"'{op}' on '{field.path}' needs a single value, not a mapping", node)
    return node


def _range(node: Node) -> tuple[int | float, int | float]:
    if not isinstance(node, SequenceNode) or len(node.value) != 2:
        raise OperandError(f"'between' needs a list of two numbers [low, high], not {describe(node)}", node)
    low, high = (_number(item, "'between'") for item in node.value)
    if low > high:
        raise OperandError(f"'between' needs low <= high, but {low} > {high}", node)
    return low, high


def _scalar(node: Node) -> Any:
    if not isinstance(node, ScalarNode):
        return node
    try:
        return scalar_value(node)
    except ScalarValueError as exc:
        raise OperandError(str(exc), node) from exc


def _number(node: Node, what: str) -> int | float:
    value = _scalar(node)
    if value.__class__ not in (int, float):
        raise OperandError(f"{what} needs a number, not {describe(node)}", node)
    if not math.isfinite(value):
        raise OperandError(f"{what} needs a finite number, not {node.value}", node)  # type: ignore[attr-defined]
    return value


def _decimal(node: Node, what: str) -> Decimal:
    if isinstance(node, SequenceNode):
        raise OperandError(f"{what} needs a number or a currency map such as {{USD: 25}}, not a list", node)
    return Decimal(str(_number(node, what)))


def _single_value(field: FieldRef, op: str, node: Node) -> Any:
    _no_currency_map(field, op, node)
    value = _scalar(node)
    if isinstance(node, SequenceNode):
        raise OperandError(f"'{op}' needs a single value; use 'in' or 'not_in' for a list", node)
    return _check_value(field, op, node, value)


def _check_value(field: FieldRef, op: str, node: Node, value: Any) -> Any:
    if value is None:
        raise OperandError(f"'{op}' cannot compare with null; use `exists: false` for a missing field", node)
    if field.root == DAYS_OVERDUE and value.__class__ not in (int, float):
        raise OperandError(f"days_overdue is a number of days, so '{op}' needs a number, not {describe(node)}", node)
    if value.__class__ in (int, float) and (field.leaf == "id" or field.leaf.endswith("_id")):
        raise OperandError(f'Chargebee ids are text; quote the value: "{node.value}"', node)  # type: ignore[attr-defined]
    if value.__class__ is float and not math.isfinite(value):
        raise OperandError(f"'{op}' needs a finite number, not {node.value}", node)  # type: ignore[attr-defined]
    return value


def _value_list(field: FieldRef, op: str, node: Node) -> list[Any]:
    if isinstance(node, SequenceNode) and not node.value:
        raise OperandError(f"the list of '{op}' is empty; give at least one value, e.g. [not_paid, payment_due]", node)
    if not isinstance(node, SequenceNode):
        raise OperandError(f"'{op}' needs a non-empty list such as [not_paid, payment_due], not {describe(node)}", node)
    values = []
    for item in node.value:
        if not isinstance(item, ScalarNode):
            raise OperandError(f"each value of '{op}' must be a single value, not {describe(item)}", item)
        values.append(_check_value(field, op, item, _scalar(item)))
    return values


def _kind_pool(value: Any) -> str | None:
    cls = value.__class__
    if cls is str:
        return "text"
    if cls is bool:
        return "bool"
    if cls in _NUMBERS:
        return "number"
    return None


def _equals(expected: Any) -> Callable[[Any], bool]:
    """Same kind and equal: 1 == True and "5" == 5 must not hold in a money-moving rule."""
    if expected.__class__ is str:
        return lambda v: v.__class__ is str and v == expected
    if expected.__class__ is bool:
        return lambda v: v is expected
    return lambda v: v.__class__ in _NUMBERS and v == expected


def _differs(expected: Any) -> Callable[[Any], bool]:
    """Same kind and different; a value of another kind is a mismatch, hence false."""
    if expected.__class__ is str:
        return lambda v: v.__class__ is str and v != expected
    if expected.__class__ is bool:
        return lambda v: v.__class__ is bool and v is not expected
    return lambda v: v.__class__ in _NUMBERS and v != expected


def _membership(values: list[Any], want: bool) -> Callable[[Any], bool]:
    pools: dict[str, frozenset[Any]] = {}
    for kind in ("text", "bool", "number"):
        members = [v for v in values if _kind_pool(v) == kind]
        if members:
            pools[kind] = frozenset(members)

    def check(value: Any) -> bool:
        pool = pools.get(_kind_pool(value))  # type: ignore[arg-type]
        return pool is not None and (value in pool) is want

    return check


def node_text(node: Node, depth: int = 0) -> str:
    """The operand as ops wrote it, compactly: `exhausted`, `[a, b]`, `{USD: 25, EUR: 20}`."""
    if isinstance(node, ScalarNode):
        return node.value
    if depth > 4:  # YAML aliases can make a node contain itself
        return "..."
    if isinstance(node, SequenceNode):
        return "[" + ", ".join(node_text(item, depth + 1) for item in node.value) + "]"
    if isinstance(node, MappingNode):
        pairs = (f"{node_text(k, depth + 1)}: {node_text(v, depth + 1)}" for k, v in node.value)
        return "{" + ", ".join(pairs) + "}"
    return "?"
