"""Properties: whatever ops type, parse_rules answers with a RuleSet or a RulesError, never a crash;
and whatever Chargebee sends, decide answers with a Decision."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reactor.rules import Decision, RulesError, RuleSet, decide, explain, parse_rules
from reactor.rules.operators import OPERATORS

from .helpers import NOW, one_rule

WORDS = st.sampled_from(
    [
        "version",
        "mode",
        "limits",
        "rules",
        "name",
        "when",
        "action",
        "on",
        "comment",
        "max_write_off",
        "all",
        "any",
        "not",
        *OPERATORS,
        "invoice.status",
        "invoice.amount_due",
        "days_overdue",
        "customer.cf_segment",
        "event.event_type",
        "write_off",
        "skip",
        "live",
        "dry_run",
        "USD",
        "JPY",
        "payment_failed",
        "{rule}",
        "{bad",
        "([",
        "1",
        "",
    ]
)
SCALARS = st.one_of(
    WORDS,
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(WORDS, children, max_size=4)),
    max_leaves=30,
)


def parses_or_refuses(text: str) -> None:
    try:
        result = parse_rules(text)
    except RulesError as exc:
        assert exc.problems and all(p.line >= 1 and p.col >= 1 and p.message for p in exc.problems)
    else:
        assert isinstance(result, RuleSet)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_is_refused(text: str) -> None:
    parses_or_refuses(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREES)
def test_arbitrary_yaml_structures_parse_or_are_refused(tree: object) -> None:
    parses_or_refuses(yaml.safe_dump(tree))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TREES, max_size=4))
def test_arbitrary_rule_bodies_parse_or_are_refused(rule_bodies: list[object]) -> None:
    named = [{"name": f"r{i}", **body} if isinstance(body, dict) else body for i, body in enumerate(rule_bodies)]
    parses_or_refuses(yaml.safe_dump({"version": 1, "mode": "live", "rules": named}))


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=6)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=20,
)
RULESET_WITH_ON = parse_rules(
    "version: 1\nrules:\n  - name: r\n    on: [payment_failed]\n    when: {invoice.status: x}\n    action: skip\n"
)
RULESET = one_rule(
    "any: [{invoice.amount_due: {lte: {USD: 25}}}, {days_overdue: {between: [1, 9]}}, "
    "{invoice.status: {in: [not_paid]}}, {invoice.customer_id: {matches: 'x'}}, {subscription.mrr: {gt: 1}}]",
    action="write_off",
)


INVOICE_KEYS = st.sampled_from(
    ["id", "amount_due", "currency_code", "due_date", "status", "customer_id", "linked_payments"]
)
INVOICES = st.one_of(JSON, st.dictionaries(INVOICE_KEYS, JSON))
CONTENTS = st.one_of(JSON, st.fixed_dictionaries({"invoice": INVOICES, "subscription": JSON}))
EVENTS = st.fixed_dictionaries({"event_type": st.one_of(st.text(max_size=4), JSON), "content": CONTENTS})


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_decide_answers_any_event_with_a_json_safe_decision(ev: dict) -> None:
    for ruleset in (RULESET, RULESET_WITH_ON):
        decision = decide(ruleset, ev, NOW)
        assert isinstance(decision, Decision) and decision.action in {"write_off", "skip", "none"}
        json.dumps(decision.as_dict())


NASTY = [
    "[" * 3000,
    "a: " + "{b: " * 3000,
    "- &a [*a]\n",
    "version: 1\nrules: &r [*r]\n",
    "version: !!python/object/apply:os.system ['true']\nrules: []\n",
    "version: 1\nrules: []\n---\nversion: 1\n",
    "\x00\x01",
    "version: 1\nrules: []\n<<: {mode: live}\n",
    "? [complex, key]\n: value\n",
    "version: 1\nrules:\n  - name: r\n    when: {invoice.amount_due: {lte: .nan}}\n    action: skip\n",
    "version: 1\nrules:\n  - name: r\n    when: {invoice.amount_due: {lte: !!binary aGVsbG8=}}\n    action: skip\n",
    "version: 1\nrules:\n  - name: r\n    when: {invoice.status: !custom x}\n    action: skip\n",
    "\ufeffversion: 1\nrules: []\n",
    "version: 1\r\nrules: []\r\n",
]


def _alias_bomb(depth: int, width: int, node: str) -> str:
    """A billion-laughs file: each rule's condition is `width` aliases of the previous one."""
    rules = [f"  - name: r0\n    when: &a0 {node}\n    action: skip"]
    for i in range(1, depth):
        rules.append(
            f"  - name: r{i}\n    when: &a{i} {{all: [{', '.join([f'*a{i - 1}'] * width)}]}}\n    action: skip"
        )
    return "version: 1\nrules:\n" + "\n".join(rules) + "\n"


NASTY += [
    _alias_bomb(12, 3, "{invoice.status: x}"),
    _alias_bomb(9, 9, "{invoice.status: {in: [a, b, c, d, e, f, g, h, i]}}"),
]


def test_hostile_inputs_are_refused_or_parsed_never_crash_nor_hang() -> None:
    """A hang guard, not a speed target: each nasty text may cost at most what loading the shipped
    rules.yaml costs 1000 times, and never less than half a second, both in this thread's CPU time
    (a busy machine's waits for a core count in neither). Today the worst (an alias bomb) costs
    about 150 loads."""
    shipped = (Path(__file__).resolve().parents[3] / "rules.yaml").read_text()
    baseline = min(_seconds(lambda: parses_or_refuses(shipped)) for _ in range(3))
    budget = max(0.5, 1000 * baseline)
    for text in NASTY:
        spent = _seconds(lambda text=text: parses_or_refuses(text))
        assert spent < budget, f"took {spent:.2f}s (budget {budget:.2f}s) on {text[:40]!r}"


def _seconds(work: Callable[[], object]) -> float:
    """CPU seconds of this thread spent in `work`."""
    started = time.thread_time()
    work()
    return time.thread_time() - started


def test_python_tags_are_never_executed() -> None:
    try:
        parse_rules("version: !!python/object/apply:os.system ['exit 3']\nrules: []\n")
    except RulesError as exc:
        assert exc.problems[0].line == 1
    else:
        raise AssertionError("a python tag was accepted as a version")


# Generated rule trees: all/any/not nesting over fields, operators and operands, regexes built from a
# small alphabet with quantifiers and alternation (some catastrophic for a backtracking engine, some
# using constructs RE2 refuses), decided on events built from JSON-like values.

REGEX_ATOMS = st.sampled_from(
    ["a", "b", ".", "[ab]", "\\d", "\\w", "^", "$", "(a+)+$", "(a|aa)*$", "(?=a)", "\\1", "(?<!b)"]
)
REGEXES = st.recursive(
    REGEX_ATOMS,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda p: f"{p[0]}|{p[1]}"),
        inner.map(lambda r: f"({r})"),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "{2,5}", "++", "{1001}"])).map(lambda p: f"({p[0]}){p[1]}"),
    ),
    max_leaves=8,
)
GEN_TEXT = st.text(alphabet="ab!0_", max_size=6)
GEN_FIELDS = st.sampled_from(
    [
        "invoice.status",
        "invoice.customer_id",
        "invoice.amount_due",
        "invoice.billing_address.country",
        "customer.cf_segment",
        "event.event_type",
        "days_overdue",
        "invoice.nonexistent_field",
    ]
)
GEN_NUMBERS = st.one_of(st.integers(-5, 100), st.floats(-5, 100, allow_nan=False))
GEN_OPERANDS = st.one_of(
    st.tuples(st.sampled_from(["eq", "ne", "starts_with"]), st.one_of(GEN_TEXT, GEN_NUMBERS)),
    st.tuples(st.sampled_from(["in", "not_in"]), st.lists(st.one_of(GEN_TEXT, GEN_NUMBERS), max_size=3)),
    st.tuples(
        st.sampled_from(["lt", "lte", "gt", "gte"]),
        st.one_of(GEN_NUMBERS, st.dictionaries(st.sampled_from(["USD", "EUR", "usd"]), GEN_NUMBERS, max_size=2)),
    ),
    st.tuples(st.just("between"), st.lists(GEN_NUMBERS, min_size=1, max_size=3)),
    st.tuples(st.just("matches"), REGEXES),
    st.tuples(st.just("exists"), st.booleans()),
)
GEN_LEAVES = st.builds(lambda field, op: {field: {op[0]: op[1]}}, GEN_FIELDS, GEN_OPERANDS)
GEN_CONDITIONS = st.recursive(
    GEN_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"all": items}),
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"any": items}),
        inner.map(lambda item: {"not": item}),
    ),
    max_leaves=10,
)
GEN_RULES = st.lists(
    st.tuples(GEN_CONDITIONS, st.sampled_from(["skip", "write_off"]), st.booleans()), min_size=1, max_size=4
)
GEN_VALUES = st.one_of(GEN_TEXT, st.text(alphabet="a", min_size=30, max_size=60).map(lambda t: t + "!"), JSON)
GEN_INVOICES = st.dictionaries(
    st.sampled_from(["id", "status", "customer_id", "amount_due", "currency_code", "due_date", "billing_address"]),
    st.one_of(GEN_VALUES, st.dictionaries(st.just("country"), GEN_VALUES, max_size=1)),
)
GEN_EVENTS = st.fixed_dictionaries(
    {
        "event_type": st.one_of(st.sampled_from(["payment_failed", "invoice_updated", "sweep"]), JSON),
        "content": st.one_of(
            JSON, st.fixed_dictionaries({"invoice": GEN_INVOICES, "customer": st.one_of(JSON, GEN_INVOICES)})
        ),
    }
)


def _generated_file(rules: list[tuple[object, str, bool]]) -> str:
    body = [
        {"name": f"r{i}", **({"on": ["payment_failed"]} if on else {}), "when": condition, "action": action}
        for i, (condition, action, on) in enumerate(rules)
    ]
    return yaml.safe_dump({"version": 1, "mode": "live", "limits": {"max_write_off": {"USD": 50}}, "rules": body})


# No Hypothesis deadline (wall time, which a busy machine stretches): each example is held to 2 s of
# this thread's CPU time instead, which examples keep easily (~10 ms) and a backtracking regex engine
# on the example below overruns by orders of magnitude.
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(GEN_RULES, st.lists(GEN_EVENTS, min_size=1, max_size=3))
@example(  # catastrophic for a backtracking engine: 2**36 steps
    [({"invoice.customer_id": {"matches": "(a+)+$"}}, "skip", False)],
    [{"event_type": "payment_failed", "content": {"invoice": {"customer_id": "a" * 36 + "!"}}}],
)
def test_generated_rule_trees_load_or_are_refused_in_place_and_decide_agrees_with_explain(
    rules: list[tuple[object, str, bool]], events: list[dict]
) -> None:
    spent = _seconds(lambda: _loads_or_is_refused_in_place_and_decide_agrees_with_explain(rules, events))
    assert spent < 2.0, f"{spent:.2f} s of CPU time on one example"


def _loads_or_is_refused_in_place_and_decide_agrees_with_explain(
    rules: list[tuple[object, str, bool]], events: list[dict]
) -> None:
    text = _generated_file(rules)
    lines = text.split("\n")
    try:
        ruleset = parse_rules(text)
    except RulesError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert 1 <= problem.line <= len(lines) and 1 <= problem.col <= len(lines[problem.line - 1]) + 1, problem
            assert problem.message
        return
    for ev in events:
        decision = decide(ruleset, ev, NOW)
        assert decision.action in {"write_off", "skip", "none"}
        json.dumps(decision.as_dict())
        explanation = explain(ruleset, ev, NOW)
        assert explanation.decision == decision
        first = next((rule.name for rule in explanation.rules if rule.matched), None)
        assert first == decision.rule
