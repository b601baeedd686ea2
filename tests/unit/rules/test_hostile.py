"""Hostile rule files (docs/security.md "Hostile rules files"): catastrophic regexes, huge files,
Python tags, bad money maps, empty lists and deep nesting are refused at their own file:line:col,
quickly, and what loads decides in bounded time in `decide`, `explain` and `reactor rules test`."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from reactor.rules import RulesError, decide, explain, load_rules, parse_rules
from reactor.rules.cases import Case, CasesError, load_cases, run_cases
from reactor.rules.conditions import MAX_CONDITIONS
from reactor.rules.fields import parse_field
from reactor.rules.live import LiveRules
from reactor.rules.loader import MAX_RULES
from reactor.rules.operators import MAX_MATCH_TEXT, OperandError, compile_operator
from reactor.rules.yamlnodes import MAX_EXPANDED_NODES, MAX_FILE_BYTES, MAX_NESTING

from .helpers import NOW, event, invoice, one_rule, problem_at, problems

HEAD = "version: 1\nmode: live\nrules:\n  - name: r\n    when:\n"


def rule_file(condition: str) -> str:
    return HEAD + f"      - {condition}\n    action: skip\n"


def _best_of(runs: int, call) -> float:
    """The least CPU time of this thread over `runs` calls: time spent waiting for a core on a busy
    machine is not counted, so a cost compared with another measured here is the work's alone."""
    best = float("inf")
    for _ in range(runs):
        started = time.thread_time()
        call()
        best = min(best, time.thread_time() - started)
    return best


# --- 1. `matches` is linear-time (RE2) -------------------------------------------------------


def _decide(ruleset, ev):
    decide(ruleset, ev, NOW)


def _explain(ruleset, ev):
    explain(ruleset, ev, NOW)


def _rules_test(ruleset, ev):
    run_cases(ruleset, [Case("c", 1, ev, NOW, None, "none")], NOW)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("entry", [_decide, _explain, _rules_test], ids=["decide", "explain", "rules test"])
@pytest.mark.parametrize("pattern", ["^(a+)+$", "(a|aa)*$", "(a*)*b", "^(a|a?)+$", "(.*a){12}$"])
def test_a_catastrophic_pattern_costs_about_what_a_trivial_one_does(entry, pattern: str) -> None:
    """Python's backtracking `re` takes longer than the age of the universe on these; RE2 is linear."""
    text = "a" * (MAX_MATCH_TEXT - 1) + "!"
    ev = event(invoice(customer_id=text))
    trivial = one_rule("invoice.customer_id: {matches: '[0-9]'}")
    hostile = one_rule(f"invoice.customer_id: {{matches: '{pattern}'}}")
    baseline = _best_of(5, lambda: entry(trivial, ev))
    cost = _best_of(5, lambda: entry(hostile, ev))
    assert cost < 50 * baseline + 0.002, f"{pattern}: {cost * 1e6:.0f} µs against {baseline * 1e6:.0f} µs"


def test_matches_still_finds_the_pattern_anywhere_in_the_text() -> None:
    ruleset = one_rule("invoice.customer_id: {matches: '^(a+)+$'}")
    assert decide(ruleset, event(invoice(customer_id="a" * 41)), NOW).rule == "r"
    assert decide(ruleset, event(invoice(customer_id="a" * 41 + "!")), NOW).rule is None
    assert decide(one_rule("invoice.customer_id: {matches: 'cus_[0-9]'}"), event(), NOW).rule == "r"


def test_a_text_up_to_the_cap_is_matched_and_a_longer_one_cannot_be_evaluated() -> None:
    ruleset = one_rule("invoice.customer_id: {matches: a$}")
    assert decide(ruleset, event(invoice(customer_id="b" * (MAX_MATCH_TEXT - 1) + "a")), NOW).rule == "r"
    long = event(invoice(customer_id="b" * MAX_MATCH_TEXT + "a"))
    decision = decide(ruleset, long, NOW)
    assert (decision.action, decision.rule, decision.blocked_by) == ("skip", "r", "unevaluable")
    assert f"{MAX_MATCH_TEXT:,}" in decision.reason
    leaf = explain(ruleset, long, NOW).rules[0].when
    assert leaf.passed is None and f"{MAX_MATCH_TEXT:,}" in (leaf.note or "")


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("(?=ent_)", "lookahead"),
        ("(?!ent_)", "lookahead"),
        ("(?<=x)y", "lookbehind"),
        ("(?<!x)y", "lookbehind"),
        ("(a)\\1", "backreference"),
        ("(?P<x>a)(?P=x)", "backreference"),
        ("a++", "possessive"),
        ("(?>a)", "atomic"),
    ],
)
def test_a_construct_re2_does_not_support_is_named_at_the_operand(pattern: str, words: str) -> None:
    message = problem_at(rule_file(f"invoice.status: {{matches: '{pattern}'}}"), 6, 35)
    assert words in message and "not supported" in message and "RE2" in message


def test_a_pattern_too_large_to_run_quickly_is_refused() -> None:
    assert "too complex" in problem_at(rule_file("invoice.status: {matches: 'a[ab]{999}c'}"), 6, 35)


def test_a_lone_surrogate_in_a_pattern_is_refused_not_a_crash() -> None:
    """YAML refuses the escape "\\udc80" itself; text handed to parse_rules may still hold one."""
    node = yaml.ScalarNode("tag:yaml.org,2002:str", "a\udc80", yaml.Mark("rules.yaml", 0, 5, 34, None, None))
    with pytest.raises(OperandError, match="not valid text"):
        compile_operator(parse_field("invoice.status"), "matches", node)


# --- 2. Size and counts, refused before parsing -----------------------------------------------


def test_a_file_over_the_size_limit_is_refused_at_1_1_before_parsing(monkeypatch) -> None:
    huge = "version: 1\nrules:\n" + "# padding\n" * (MAX_FILE_BYTES // 10 + 1)

    def compose(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a file over the size limit was handed to the YAML parser")

    monkeypatch.setattr(yaml, "compose", compose)
    found = problems(huge)
    assert len(found) == 1 and found[0][:2] == (1, 1) and "too large" in found[0][2]
    assert f"{MAX_FILE_BYTES // 1024} KiB" in found[0][2]


@pytest.mark.parametrize(
    ("name", "head", "load", "error"),
    [
        ("rules.yaml", b"version: 1\nrules: []\n", load_rules, RulesError),
        ("rules.cases.yaml", b"cases: []\n", load_cases, CasesError),
    ],
    ids=["load_rules", "load_cases"],
)
def test_a_file_read_from_disk_over_the_size_limit_is_refused_at_1_1(
    tmp_path: Path, name: str, head: bytes, load: Callable[[Path], object], error: type[Exception]
) -> None:
    path = tmp_path / name
    path.write_bytes(head + b"#" * MAX_FILE_BYTES)
    with pytest.raises(error) as refused:
        load(path)
    (problem,) = refused.value.problems
    assert (problem.line, problem.col) == (1, 1) and "too large" in problem.message


def test_a_file_with_more_rules_than_the_limit_is_refused_at_the_first_one_too_many() -> None:
    rule = "  - {{name: r{0}, when: {{invoice.status: x}}, action: skip}}\n"
    text = "version: 1\nrules:\n" + "".join(rule.format(i) for i in range(MAX_RULES + 1))
    assert f"more than {MAX_RULES} rules" in problem_at(text, 3 + MAX_RULES, 5)


@pytest.mark.parametrize(
    ("conditions", "line", "col"),
    [
        # one per line of the `when` list: the first one too many is on line 6 + MAX_CONDITIONS
        ("".join(f"      - invoice.customer_id: c{i}\n" for i in range(MAX_CONDITIONS + 1)), 6 + MAX_CONDITIONS, 30),
        # under `any`, which counts as one
        ("      - any:\n" + "".join(f"        - invoice.customer_id: c{i}\n" for i in range(MAX_CONDITIONS)), 5006, 32),
        # all in one mapping, on line 6
        ("      - {" + ", ".join(f"customer.cf_f{i}: x" for i in range(MAX_CONDITIONS + 1)) + "}\n", 6, None),
    ],
    ids=["when-list", "any", "one-mapping"],
)
def test_conditions_past_the_limit_are_refused_at_the_first_one_too_many(conditions: str, line: int, col) -> None:
    text = HEAD + conditions + "    action: skip\n"
    assert len(text.encode()) < MAX_FILE_BYTES
    ((at_line, at_col, message),) = problems(text)
    assert f"more than {MAX_CONDITIONS} conditions" in message
    assert at_line == line and (col is None or at_col == col), (at_line, at_col)


def test_conditions_reached_through_an_alias_count_each_time_they_are_used() -> None:
    shared = ", ".join(f"customer.cf_f{i}: x" for i in range(100))
    text = f"version: 1\nmode: live\nrules:\n  - name: r0\n    when: &m {{{shared}}}\n    action: skip\n"
    text += "".join(f"  - {{name: r{i}, when: *m, action: skip}}\n" for i in range(1, MAX_CONDITIONS // 100 + 10))
    ((line, _, message),) = problems(text)
    assert line == 5 and f"more than {MAX_CONDITIONS} conditions" in message and "alias" in message


def test_aliases_that_expand_past_what_a_file_can_hold_are_refused() -> None:
    """2,000 values read 200 times: 400,000 values from a 27 KiB file (5 million from 100 KiB took
    12 s and 650 MB to load)."""
    values = ", ".join(f"c{i}" for i in range(2000))
    text = f"version: 1\nmode: live\nrules:\n  - name: r0\n    when: {{invoice.customer_id: {{in: &l [{values}]}}}}\n"
    text += "    action: skip\n" + "".join(
        f"  - {{name: r{i}, when: {{invoice.customer_id: {{in: *l}}}}, action: skip}}\n" for i in range(1, 200)
    )
    assert MAX_EXPANDED_NODES < 400_000 and len(text.encode()) < MAX_FILE_BYTES // 8
    ((line, col, message),) = problems(text)
    assert (line, col) == (4, 3) and "YAML aliases" in message and str(MAX_EXPANDED_NODES) in message


def test_a_node_that_contains_itself_through_an_alias_is_named() -> None:
    assert "contains itself" in problem_at(HEAD.replace("when:\n", "when: &loop {not: *loop}\n"), 5, 11)


def test_aliases_that_share_a_few_conditions_still_load() -> None:
    text = (
        "version: 1\nmode: live\nrules:\n"
        "  - {name: a, when: &gone {invoice.status: {in: [voided, paid]}}, action: skip}\n"
        "  - {name: b, when: {all: [*gone, {invoice.customer_id: cus_1}]}, action: skip}\n"
    )
    assert decide(parse_rules(text), event(invoice(status="paid")), NOW).rule == "a"


def test_a_running_reactor_keeps_its_rules_when_the_file_grows_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nrules: []\n")
    live = LiveRules(path)
    good = live.current()
    path.write_bytes(b"version: 1\nrules: []\n" + b"#" * (MAX_FILE_BYTES * 4))
    assert live.current() is good
    assert live.status()["errors"] == [f"{path}:1:1: the file is too large"]
    assert live.status(detail=True)["errors"][0].endswith(live.error.problems[0].message)
    assert live.refused_digest is not None


# --- 10. Messages --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        ("version: !!python/object/apply:os.system ['true']\nrules: []\n", 1, 10),
        ("version: 1\nrules: !!python/name:os.system\n", 2, 8),
        ("version: 1\nrules: []\nmode: !!python/object:os.Foo {a: 1}\n", 3, 7),
    ],
)
def test_a_python_tag_is_named_as_such(text: str, line: int, col: int) -> None:
    message = problem_at(text, line, col)
    assert "Python" in message and "!!python/" in message


def test_a_custom_tag_is_named() -> None:
    assert "tag '!custom'" in problem_at(rule_file("invoice.status: !custom x"), 6, 25)


def test_every_bad_entry_of_a_limits_money_map_is_reported() -> None:
    text = "version: 1\nlimits:\n  max_write_off: {USD: 500, EUR: abc, GBP: -1, usd: 5}\nrules: []\n"
    found = problems(text)
    assert [(line, col) for line, col, _ in found] == [(3, 34), (3, 44), (3, 48)]
    assert "needs a number" in found[0][2] and "positive" in found[1][2] and "three capital" in found[2][2]


def test_every_bad_entry_of_a_condition_money_map_is_reported() -> None:
    found = problems(rule_file("invoice.amount_due: {lte: {USD: 5, EUR: abc, gbp: 1}}"))
    assert [(line, col) for line, col, _ in found] == [(6, 49), (6, 54)]


@pytest.mark.parametrize("op", ["in", "not_in"])
@pytest.mark.parametrize("field", ["invoice.status", "invoice.amount_due"])
def test_an_empty_in_list_says_it_is_empty(op: str, field: str) -> None:
    message = problem_at(rule_file(f"{field}: {{{op}: []}}"), 6, len(field) + len(op) + 14)
    assert "is empty" in message


def test_flow_nesting_too_deep_points_at_its_own_position() -> None:
    text = "version: 1\nrules: []\nmode: " + "[" * 5000 + "]" * 5000 + "\n"
    ((line, col, message),) = problems(text)
    assert line == 3 and col > 1 and "nested" in message


def test_block_nesting_too_deep_points_at_its_own_position() -> None:
    deep = "".join("  " * i + f"k{i}:\n" for i in range(MAX_NESTING + 20))
    found = problems("version: 1\nrules: []\nextra:\n" + "\n".join("  " + ln for ln in deep.splitlines()) + "\n")
    nested = [(line, col) for line, col, message in found if "nested" in message]
    assert nested and nested[0] != (1, 1) and nested[0][0] > MAX_NESTING // 2


def test_a_thousand_rules_of_the_benchmarks_kind_fit_under_the_size_limit() -> None:
    """What the refusal says: the size limit holds MAX_RULES rules like bench/rules_50.yaml's."""
    bench = (Path(__file__).resolve().parents[3] / "bench" / "rules_50.yaml").read_text()
    head, body = bench.split("\nrules:\n")
    copies = [re.sub(r"(- name: )(\S+)", rf"\1\2-{i}", body) for i in range(MAX_RULES // 50)]
    text = head + "\nrules:\n" + "".join(copies)
    assert len(parse_rules(text).rules) == MAX_RULES
    size = len(text.encode())
    assert size < MAX_FILE_BYTES
    message = problems(text + "#" * (MAX_FILE_BYTES - size + 1))[0][2]
    stated = int(re.search(r"take about (\d+) KiB", message).group(1))
    assert abs(stated - size / 1024) < 15, (stated, size / 1024)


def test_a_file_at_the_limits_loads_in_bounded_time() -> None:
    rule = (
        "  - {{name: r{0}, on: [payment_failed], when: {{invoice.status: x, days_overdue: {{gte: 3}}}}, action: skip}}"
    )
    rule += "\n"
    text = "version: 1\nrules:\n" + "".join(rule.format(i) for i in range(MAX_RULES))
    assert len(text.encode()) < MAX_FILE_BYTES
    small = "version: 1\nrules:\n" + "".join(rule.format(i) for i in range(10))
    baseline = _best_of(3, lambda: parse_rules(small))
    assert _best_of(2, lambda: parse_rules(text)) < 3 * MAX_RULES / 10 * baseline + 1.0
