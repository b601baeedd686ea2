"""Warnings: conditions that are always or never true, skip rules on events without an invoice.

A file with warnings loads (the worker runs it); `reactor rules check` prints them.
"""

from __future__ import annotations

import pytest

from reactor.rules import decide, parse_rules

from .helpers import NOW, event, invoice, problem_at, rules

HEAD = "version: 1\nmode: live\nrules:\n"


def warnings_of(*conditions: str, on: str = "", action: str = "skip") -> list[tuple[int, int, str]]:
    """(line, col, message) of each warning for rule `r` (line 4) whose `when` list starts on line 6."""
    text = HEAD + "  - name: r\n    when:\n" + "".join(f"      - {c}\n" for c in conditions) + f"    action: {action}\n"
    if on:
        text += f"    on: {on}\n"
    return [(w.line, w.col, w.message) for w in parse_rules(text).warnings]


DAYS = "days_overdue is never negative (it is 0 until the due date)"


@pytest.mark.parametrize(
    ("condition", "col", "message"),
    [
        (
            "days_overdue: {gte: -5}",
            24,
            f"in rule 'r', `days_overdue: {{gte: -5}}` is always true for every invoice with a due date: {DAYS}; "
            "the condition does nothing",
        ),
        (
            "days_overdue: {gte: 0}",
            24,
            f"in rule 'r', `days_overdue: {{gte: 0}}` is always true for every invoice with a due date: {DAYS}; "
            "the condition does nothing",
        ),
        (
            "days_overdue: {gt: -1}",
            24,
            f"in rule 'r', `days_overdue: {{gt: -1}}` is always true for every invoice with a due date: {DAYS}; "
            "the condition does nothing",
        ),
        (
            "days_overdue: {lt: 0}",
            24,
            f"in rule 'r', `days_overdue: {{lt: 0}}` is never true: {DAYS}; the rule cannot match through it",
        ),
        (
            "days_overdue: {lte: -1}",
            24,
            f"in rule 'r', `days_overdue: {{lte: -1}}` is never true: {DAYS}; the rule cannot match through it",
        ),
        (
            "days_overdue: -3",
            23,
            f"in rule 'r', `days_overdue: {{eq: -3}}` is never true: {DAYS}; the rule cannot match through it",
        ),
        (
            "days_overdue: {between: [-10, -1]}",
            24,
            f"in rule 'r', `days_overdue: {{between: [-10, -1]}}` is never true: {DAYS}; "
            "the rule cannot match through it",
        ),
        (
            "invoice.amount_due: {gte: 0}",
            30,
            "in rule 'r', `invoice.amount_due: {gte: 0}` is always true whenever the field is present: "
            "Chargebee never sends a negative amount_due; the condition does nothing",
        ),
        (
            "invoice.amount_due: {lt: {USD: 0, EUR: 0}}",
            30,
            "in rule 'r', `invoice.amount_due: {lt: {USD: 0, EUR: 0}}` is never true: "
            "Chargebee never sends a negative amount_due; the rule cannot match through it",
        ),
        (
            "invoice.total: {lte: -1}",
            25,
            "in rule 'r', `invoice.total: {lte: -1}` is never true: "
            "Chargebee never sends a negative total; the rule cannot match through it",
        ),
    ],
)
def test_always_and_never_true_comparisons_are_warned_at_the_operator(condition: str, col: int, message: str) -> None:
    assert warnings_of(condition) == [(6, col, message)]


@pytest.mark.parametrize(
    "condition",
    [
        "days_overdue: {gte: 1}",
        "days_overdue: {lt: 30}",
        "days_overdue: {between: [0, 5]}",
        "days_overdue: 0",
        "invoice.amount_due: {gt: 0}",
        "invoice.amount_due: {gte: {USD: 0, EUR: 5}}",  # only true for USD; EUR still filters
        "invoice.round_off_amount: {lt: 0}",  # can be negative
        "invoice.date: {gte: 0}",  # not a money field or a day count
    ],
)
def test_ordinary_comparisons_are_not_warned(condition: str) -> None:
    assert warnings_of(condition) == []


def test_bounds_that_exclude_each_other_are_warned() -> None:
    assert warnings_of("days_overdue: {gte: 10, lte: 5}") == [
        (
            6,
            24,
            "in rule 'r', the bounds on days_overdue under one `all` exclude each other "
            "(at least 10, at most 5), so they are never all true",
        )
    ]


def test_bounds_split_over_a_when_list_are_warned_once() -> None:
    assert [
        (line, col)
        for line, col, _ in warnings_of("invoice.net_term_days: {gt: 30}", "invoice.net_term_days: {lt: 30}")
    ] == [(6, 33)]


def test_bounds_in_different_branches_of_any_are_fine() -> None:
    assert warnings_of("any: [{days_overdue: {gte: 10}}, {days_overdue: {lte: 5}}]") == []


def test_between_with_low_above_high_stays_an_error() -> None:
    # operators.py already refuses it: an error is stricter than the warning it would otherwise get
    text = HEAD + "  - name: r\n    when:\n      - days_overdue: {between: [10, 5]}\n    action: skip\n"
    assert "'between' needs low <= high, but 10 > 5" in problem_at(text, 6, 33)


def test_a_skip_rule_on_events_without_an_invoice_is_only_warned() -> None:
    assert warnings_of("invoice.status: x", on="[credit_note_created]") == [
        (
            8,
            9,
            "rule 'r' skips on credit_note_created only, which carries no invoice, so the rule can never act; "
            "name events that carry one, such as invoice_updated, payment_failed, payment_succeeded, "
            "dunning_updated or sweep",
        )
    ]


def test_a_mixed_skip_rule_is_warned_per_invoiceless_event() -> None:
    assert warnings_of("invoice.status: x", on="[payment_failed, customer_changed]") == [
        (
            8,
            26,
            "rule 'r' skips, but customer_changed carries no invoice, so the rule can never act on it; "
            "remove it from `on` (events that carry one: invoice_updated, payment_failed, payment_succeeded, "
            "dunning_updated or sweep)",
        )
    ]


def test_a_rule_set_with_warnings_still_decides() -> None:
    ruleset = rules(
        """
        - name: r
          when:
            - days_overdue: {gte: 0}
          action: write_off
        """
    )
    assert len(ruleset.warnings) == 1
    assert decide(ruleset, event(invoice(dunning_status="exhausted")), NOW).rule == "r"
