"""Fail closed: a condition that cannot be evaluated stops the decision; it never reads as "false".

Only the errors a comparison can legitimately meet on odd data (wrong type, a number no float
holds) make a condition false. Anything else, RQ's job timeout above all, propagates: read as
"false", it would let a protective skip rule be passed over and a later write_off rule decide.
"""

from __future__ import annotations

import dataclasses

import pytest
from rq.timeouts import JobTimeoutException

from reactor.rules import decide
from reactor.rules.conditions import Condition, _leaf_test, _money_test, _resource_field_test
from reactor.rules.fields import Subject, parse_field
from reactor.rules.model import Rule, RuleSet
from reactor.rules.operators import Compiled
from reactor.rules.plan import COMPILE_AFTER

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
