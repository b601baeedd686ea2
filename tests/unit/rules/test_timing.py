"""earliest_match(): when waiting alone can make a days_overdue rule match, and when it cannot."""

from __future__ import annotations

from datetime import datetime, timezone

from reactor.rules import earliest_match, earliest_recheck
from reactor.rules.fields import Subject

from .helpers import DAY, NOW, event, invoice, rules

DUE = int(NOW.timestamp()) - 10 * DAY  # the default invoice is 10 days overdue


def rule(when: str, on: str = ""):
    return rules(f"- name: r\n{on}  when: {when}\n  action: write_off\n").rules[0]


def at_day(days: int) -> datetime:
    return datetime.fromtimestamp(DUE + days * DAY, tz=timezone.utc)


def test_gte_becomes_true_on_the_day_it_names() -> None:
    assert earliest_match(rule("{days_overdue: {gte: 30}}"), Subject(event(), NOW), NOW) == at_day(30)


def test_gt_becomes_true_the_day_after() -> None:
    assert earliest_match(rule("{days_overdue: {gt: 30}}"), Subject(event(), NOW), NOW) == at_day(31)


def test_fractional_threshold_rounds_to_the_next_whole_day() -> None:
    assert earliest_match(rule("{days_overdue: {gte: 30.5}}"), Subject(event(), NOW), NOW) == at_day(31)


def test_between_in_the_future_starts_at_its_low_end() -> None:
    assert earliest_match(rule("{days_overdue: {between: [20, 25]}}"), Subject(event(), NOW), NOW) == at_day(20)


def test_a_rule_that_matches_already_returns_now() -> None:
    assert earliest_match(rule("{days_overdue: {gte: 5}}"), Subject(event(), NOW), NOW) == NOW


def test_a_time_window_already_passed_never_matches() -> None:
    assert earliest_match(rule("{days_overdue: {lte: 5}}"), Subject(event(), NOW), NOW) is None


def test_another_failing_condition_means_waiting_does_not_help() -> None:
    when = "[{days_overdue: {gte: 30}}, {invoice.status: paid}]"
    assert earliest_match(rule(when), Subject(event(), NOW), NOW) is None


def test_an_invoice_without_due_date_never_matches_by_waiting() -> None:
    assert earliest_match(rule("{days_overdue: {gte: 30}}"), Subject(event(invoice(due_date=...)), NOW), NOW) is None


def test_a_rule_without_days_overdue_never_matches_by_waiting() -> None:
    assert earliest_match(rule("{invoice.status: paid}"), Subject(event(), NOW), NOW) is None


def test_a_rule_filtered_out_by_on_never_matches_by_waiting() -> None:
    filtered = rule("{days_overdue: {gte: 30}}", on="  on: [invoice_updated]\n")
    assert earliest_match(filtered, Subject(event(event_type="payment_failed"), NOW), NOW) is None


def test_combined_time_conditions_take_the_first_day_both_hold() -> None:
    when = "{any: [{days_overdue: {gte: 60}}, {all: [{days_overdue: {gte: 30}}, {invoice.amount_due: {lte: 20}}]}]}"
    assert earliest_match(rule(when), Subject(event(), NOW), NOW) == at_day(30)
    assert earliest_match(rule(when), Subject(event(invoice(amount_due=5000)), NOW), NOW) == at_day(60)


def test_not_yet_due_invoice_counts_from_its_due_date() -> None:
    due = int(NOW.timestamp()) + 3 * DAY
    moment = earliest_match(rule("{days_overdue: {gte: 1}}"), Subject(event(invoice(due_date=due)), NOW), NOW)
    assert moment == datetime.fromtimestamp(due + DAY, tz=timezone.utc)


def test_earliest_recheck_is_the_soonest_future_moment_of_any_rule() -> None:
    ruleset = rules(
        "- name: a\n  when: {days_overdue: {gte: 60}}\n  action: write_off\n"
        "- name: b\n  when: {days_overdue: {gte: 45}}\n  action: write_off\n"
    )
    assert earliest_recheck(ruleset, Subject(event(), NOW), NOW) == at_day(45)
