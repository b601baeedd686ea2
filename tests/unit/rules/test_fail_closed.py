"""Fail closed: a condition that cannot be evaluated never reads as "false".

Only the errors a comparison can legitimately meet on odd data (wrong type, a number no float
holds) make a condition false. A comparison that cannot be made on the event (a text longer than
`matches` reads) leaves the condition open, and a write-off that could rest on it is blocked with
the reason. Anything else, RQ's job timeout above all, propagates: read as "false", it would let a
protective skip rule be passed over and a later write_off rule decide.
"""

from __future__ import annotations

import dataclasses

import pytest
from rq.timeouts import JobTimeoutException

from reactor.rules import decide, earliest_recheck, explain
from reactor.rules.conditions import Condition, _leaf_test, _money_test, _resource_field_test
from reactor.rules.facts import walk_subject
from reactor.rules.fields import Subject, parse_field
from reactor.rules.model import Rule, RuleSet
from reactor.rules.operators import MAX_MATCH_TEXT, Compiled, Unevaluable
from reactor.rules.plan import COMPILE_AFTER, compile_matcher, rule_plan

from .helpers import NOW, event, invoice, rules

PROTECT_THEN_WRITE_OFF = """\
- name: protect-everyone
  when:
    - invoice.status: not_paid
  action: skip
- name: write-off-all
  when:
    - invoice.amount_due: {gt: 0}
  action: write_off
"""

UNEXPECTED = [JobTimeoutException("Task exceeded maximum timeout value (120 seconds)"), RuntimeError("a bug")]


def raising(exc: BaseException):
    def check(*_args):
        raise exc

    return check


@pytest.mark.parametrize("exc", UNEXPECTED, ids=lambda e: type(e).__name__)
def test_a_leaf_propagates_what_it_did_not_expect(exc: BaseException) -> None:
    subject = Subject(event(invoice(billing_address={"country": "US"})), NOW)
    nested = parse_field("invoice.billing_address.country")
    flat = parse_field("invoice.status")
    money = parse_field("invoice.amount_due")
    tests = [
        _leaf_test(nested, nested.getter(), Compiled(raising(exc), "x", "x")),
        _resource_field_test("invoice", "status", flat.getter(), raising(exc)),
        _money_test(money, money.getter(), raising(exc)),
    ]
    for test in tests:
        with pytest.raises(type(exc)):
            test(subject)


@pytest.mark.parametrize("exc", [TypeError("str < int"), ValueError("odd"), OverflowError("int too large")])
def test_a_leaf_reads_an_expected_error_as_false(exc: BaseException) -> None:
    subject = Subject(event(invoice(billing_address={"country": "US"})), NOW)
    nested = parse_field("invoice.billing_address.country")
    money = parse_field("invoice.amount_due")
    assert _leaf_test(nested, nested.getter(), Compiled(raising(exc), "x", "x"))(subject) is False
    assert _money_test(money, money.getter(), raising(exc))(subject) is False


def protective_rule_that_raises(exc: BaseException) -> RuleSet:
    """`protect-everyone` (skip) whose only condition raises, then a write_off rule that matches."""
    base = rules(PROTECT_THEN_WRITE_OFF)
    skip = base.rules[0]
    status = parse_field("invoice.status")
    test = _resource_field_test("invoice", "status", status.getter(), raising(exc))  # as the loader builds it
    condition = Condition("field", test, skip.condition.line, skip.condition.col, field=status)
    return dataclasses.replace(base, rules=(Rule(skip.name, "skip", condition), base.rules[1]))


@pytest.mark.parametrize("exc", UNEXPECTED, ids=lambda e: type(e).__name__)
def test_a_protective_rule_that_raises_never_lets_a_later_write_off_rule_through(exc: BaseException) -> None:
    ruleset = protective_rule_that_raises(exc)
    # Enough decisions for the plan to switch from its loop to the compiled matcher: both must raise.
    for _ in range(COMPILE_AFTER + 2):
        with pytest.raises(type(exc)):
            decide(ruleset, event(), NOW)


def test_without_the_raise_the_same_rules_protect() -> None:
    """The control: the rule file above decides skip when its condition can be evaluated."""
    ruleset = rules(PROTECT_THEN_WRITE_OFF)
    assert (decide(ruleset, event(), NOW).action, decide(ruleset, event(), NOW).rule) == ("skip", "protect-everyone")


def test_a_due_date_no_calendar_holds_is_a_missing_day_count_not_a_crash() -> None:
    ruleset = rules("- name: old\n  when:\n    - days_overdue: {gte: 90}\n  action: write_off\n")
    assert decide(ruleset, event(invoice(due_date=10**400)), NOW).action == "none"
    assert decide(ruleset, event(invoice(due_date=-(10**400))), NOW).action == "none"


def test_a_money_rule_on_a_resource_the_event_lacks_does_not_break_the_compiled_matcher() -> None:
    """`subscription.mrr` on an invoice_updated (no subscription): the compiled plan read the currency
    of the absent resource before checking it was there."""
    ruleset = rules(
        """\
        - name: big-accounts
          when:
            - subscription.mrr: {gte: 1000}
          action: skip
        - name: tiny
          when:
            - invoice.amount_due: {lte: 5}
          action: write_off
        """
    )
    for _ in range(COMPILE_AFTER * 2):
        assert decide(ruleset, event(invoice(amount_due=300), "invoice_updated"), NOW).rule == "tiny"


# --- `matches` on a long text ----------------------------------------------------------------

PROTECT_DISPUTES = """\
- name: protect-disputes
  when:
    - customer.cf_note: {matches: dispute}
  action: skip
- name: exhausted
  when:
    - invoice.dunning_status: exhausted
  action: write_off
"""


def note(length: int) -> str:
    """A customer note of `length` characters that says "dispute" at its end."""
    filler = "Called about the renewal; asked for the invoice again. " * (length // 50 + 1)
    return filler[: length - len(" dispute")] + " dispute"


def note_event(length: int) -> dict:
    return event(customer={"id": "cus_1", "cf_note": note(length)})


def reference_first_match(ruleset: RuleSet, subject: Subject):  # type: ignore[no-untyped-def]
    """The plain loop over every rule that plan.py's index and compiled matchers must agree with."""
    for on, tests, rule in ruleset.plan:
        if (on is None or subject.event_type in on) and all(test(subject) for test in tests):
            return rule
    return None


def compiled_first_match(ruleset: RuleSet, subject: Subject):  # type: ignore[no-untyped-def]
    """The fast path written out: the plan's selection for the event, compiled into one function."""
    plan = rule_plan(ruleset)
    return compile_matcher(plan.by_type.get(subject.event_type, plan.default).selection(subject).plan)(subject)


def test_a_5000_character_note_naming_a_dispute_protects_the_invoice_on_every_path() -> None:
    """It was past the 4,096 characters `matches` read: the skip rule was false and the invoice written off."""
    ruleset = rules(PROTECT_DISPUTES)
    ev = note_event(5000)
    protect = ruleset.rule("protect-disputes")
    assert reference_first_match(ruleset, Subject(ev, NOW)) is protect
    assert compiled_first_match(ruleset, Subject(ev, NOW)) is protect
    for _ in range(COMPILE_AFTER + 2):  # the plan's loop, then its compiled matcher
        decision = decide(ruleset, ev, NOW)
        assert (decision.action, decision.rule, decision.blocked_by) == ("skip", "protect-disputes", None)


def test_a_note_longer_than_matches_reads_blocks_the_write_off_with_the_reason() -> None:
    ruleset = rules(PROTECT_DISPUTES)
    ev = note_event(MAX_MATCH_TEXT + 1)
    for path in (reference_first_match, compiled_first_match):
        with pytest.raises(Unevaluable):
            path(ruleset, Subject(ev, NOW))
    for _ in range(COMPILE_AFTER + 2):
        decision = decide(ruleset, ev, NOW)
        assert (decision.action, decision.rule, decision.blocked_by) == ("skip", "protect-disputes", "unevaluable")
    assert decision.reason == (
        "skip rule protect-disputes might protect this invoice, but its condition customer.cf_note matches"
        f" dispute (line 6) cannot be evaluated: the text is {MAX_MATCH_TEXT + 1:,} characters, more than the"
        f" {MAX_MATCH_TEXT:,} that `matches` reads"
    )
    assert decide(rules(PROTECT_DISPUTES, mode="dry_run"), ev, NOW).action == "skip"  # no "would write off"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(  # the write_off rule might not hold
            "- name: w\n  when:\n    - not: {customer.cf_note: {matches: dispute}}\n  action: write_off\n",
            ("skip", "w", "unevaluable"),
            id="open write_off rule",
        ),
        pytest.param(  # false whatever the note says: the write_off rule after it decides
            "- name: s\n  when:\n    - customer.cf_note: {matches: dispute}\n    - invoice.status: paid\n"
            "  action: skip\n- name: w\n  when:\n    - invoice.status: not_paid\n  action: write_off\n",
            ("write_off", "w", None),
            id="false either way",
        ),
        pytest.param(  # true whatever the note says: that rule decides
            "- name: s\n  when:\n    any:\n      - customer.cf_note: {matches: dispute}\n"
            "      - invoice.dunning_status: exhausted\n  action: skip\n"
            "- name: w\n  when:\n    - invoice.status: not_paid\n  action: write_off\n",
            ("skip", "s", None),
            id="true either way",
        ),
        pytest.param(  # a rule that holds before the open one decides
            "- name: tiny\n  when:\n    - invoice.amount_due: {lte: 5000}\n  action: write_off\n"
            "- name: s\n  when:\n    - customer.cf_note: {matches: dispute}\n  action: skip\n",
            ("write_off", "tiny", None),
            id="decided before",
        ),
    ],
)
def test_an_open_condition_is_weighed_in_three_valued_logic(body: str, expected: tuple) -> None:
    ruleset = rules(body)
    ev = note_event(MAX_MATCH_TEXT + 1)
    for _ in range(COMPILE_AFTER + 2):
        decision = decide(ruleset, ev, NOW)
        assert (decision.action, decision.rule, decision.blocked_by) == expected


def test_explain_walk_and_timing_read_an_open_condition_as_unknown() -> None:
    ruleset = rules(PROTECT_DISPUTES)
    ev = note_event(MAX_MATCH_TEXT + 1)
    protect = explain(ruleset, ev, NOW).rules[0]
    assert protect.when.passed is None and not protect.matched and protect.decided
    assert "cannot be evaluated" in (protect.when.note or "")
    assert [step.verdict for step in walk_subject(ruleset, Subject(ev, NOW))] == [None, True]
    assert earliest_recheck(ruleset, Subject(ev, NOW), NOW) is None
