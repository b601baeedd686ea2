"""Every operator and combinator holds when it should and only then; oddities never raise."""

from __future__ import annotations

from typing import Any

import pytest

from reactor.rules import decide

from .helpers import DAY, NOW, event, invoice, one_rule, rules


def holds(condition: str, ev: dict[str, Any] | None = None) -> bool:
    """Whether a one-rule file with `condition` decides on `ev` (default: event())."""
    return decide(one_rule(condition), ev if ev is not None else event(), NOW).rule == "r"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("invoice.status: not_paid", True),
        ("invoice.status: paid", False),
        ("invoice.status: {eq: not_paid}", True),
        ("invoice.status: {ne: paid}", True),
        ("invoice.status: {ne: not_paid}", False),
        ("invoice.status: {in: [not_paid, payment_due]}", True),
        ("invoice.status: {in: [paid, voided]}", False),
        ("invoice.status: {not_in: [paid, voided]}", True),
        ("invoice.status: {not_in: [not_paid]}", False),
        ("invoice.customer_id: {starts_with: cus_}", True),
        ("invoice.customer_id: {starts_with: ent_}", False),
        ("invoice.customer_id: {matches: '^cus_[0-9]+$'}", True),
        ("invoice.customer_id: {matches: '^ent_'}", False),
        ("invoice.customer_id: {matches: '_1'}", True),  # search, not a full match
        ("invoice.dunning_status: {exists: true}", True),
        ("invoice.dunning_status: {exists: false}", False),
        ("invoice.net_term_days: {exists: false}", True),
        ("invoice.net_term_days: {exists: true}", False),
        ("invoice.due_date: {lt: 9999999999}", True),
        ("invoice.due_date: {gt: 9999999999}", False),
        ("invoice.due_date: {gte: 0, lt: 9999999999}", True),
        ("invoice.due_date: {gte: 0, lt: 1}", False),
        ("invoice.due_date: {between: [0, 9999999999]}", True),
        ("invoice.due_date: {between: [0, 1]}", False),
    ],
)
def test_operator_on_a_plain_field(condition: str, expected: bool) -> None:
    assert holds(condition) is expected


@pytest.mark.parametrize(
    ("condition", "amount_due", "expected"),
    [
        ("invoice.amount_due: {lte: 12.5}", 1250, True),
        ("invoice.amount_due: {lte: 12.49}", 1250, False),
        ("invoice.amount_due: {lt: 12.5}", 1250, False),
        ("invoice.amount_due: {gt: 12.49}", 1250, True),
        ("invoice.amount_due: {gte: 12.51}", 1250, False),
        ("invoice.amount_due: 12.5", 1250, True),
        ("invoice.amount_due: {ne: 12.5}", 1250, False),
        ("invoice.amount_due: {between: [10, 12.50]}", 1250, True),
        ("invoice.amount_due: {between: [12.51, 20]}", 1250, False),
        ("invoice.amount_due: {in: [5, 12.50]}", 1250, True),
        ("invoice.amount_due: {not_in: [5, 12.50]}", 1250, False),
        ("invoice.amount_due: {lte: {USD: 25}}", 2500, True),
        ("invoice.amount_due: {lte: {USD: 25}}", 2501, False),
        ("invoice.amount_due: {between: {USD: [1, 25]}}", 2500, True),
    ],
)
def test_money_compares_in_major_units_of_usd(condition: str, amount_due: int, expected: bool) -> None:
    assert holds(condition, event(invoice(amount_due=amount_due))) is expected


def test_money_in_jpy_is_already_in_major_units() -> None:
    jpy = event(invoice(amount_due=3000, currency_code="JPY"))
    assert holds("invoice.amount_due: {lte: {USD: 25, JPY: 3000}}", jpy)
    assert not holds("invoice.amount_due: {lte: 2999}", jpy)


def test_money_threshold_map_without_the_invoice_currency_does_not_match() -> None:
    assert not holds("invoice.amount_due: {lte: {USD: 25, EUR: 20}}", event(invoice(currency_code="CHF")))


def test_money_threshold_map_without_the_currency_does_not_match_for_ne_either() -> None:
    assert not holds("invoice.amount_due: {ne: {USD: 1}}", event(invoice(currency_code="CHF")))


def test_money_without_any_currency_does_not_match() -> None:
    assert not holds("invoice.amount_due: {lte: 1000}", event(invoice(currency_code=...)))


def test_money_uses_the_resources_own_currency_before_the_invoices() -> None:
    ev = event(subscription={"id": "sub_1", "mrr": 1000, "currency_code": "JPY"})
    assert holds("subscription.mrr: {gte: 1000}", ev)  # 1000 yen, not 10.00 dollars


def test_money_falls_back_to_the_invoice_currency() -> None:
    ev = event(transaction={"id": "txn_1", "amount": 1000})
    assert holds("transaction.amount: 10", ev)


def test_money_that_is_not_an_integer_does_not_match() -> None:
    assert not holds("invoice.amount_due: {lte: 1000}", event(invoice(amount_due="12.50")))
    assert not holds("invoice.amount_due: {lte: 1000}", event(invoice(amount_due=12.5)))


@pytest.mark.parametrize(
    "condition",
    [
        "invoice.cf_risk: high",
        "invoice.cf_risk: {ne: high}",
        "invoice.cf_risk: {in: [high]}",
        "invoice.cf_risk: {not_in: [high]}",
        "invoice.cf_risk: {starts_with: h}",
        "invoice.cf_risk: {matches: .}",
        "invoice.cf_risk: {gte: 0}",
        "invoice.cf_risk: {between: [0, 1]}",
        "invoice.cf_risk: {exists: true}",
        "invoice.billing_address.country: US",
        "customer.cf_segment: smb",
        "days_overdue: {gte: 0}",
    ],
)
def test_a_missing_field_makes_its_condition_false(condition: str) -> None:
    assert not holds(condition, event(invoice(due_date=...)))


def test_a_null_field_counts_as_missing() -> None:
    assert holds("invoice.dunning_status: {exists: false}", event(invoice(dunning_status=None)))
    assert not holds("invoice.dunning_status: {ne: exhausted}", event(invoice(dunning_status=None)))


@pytest.mark.parametrize(
    ("condition", "inv"),
    [
        ("invoice.status: {gte: 5}", invoice()),  # text against a number
        ("invoice.due_date: {starts_with: '1'}", invoice()),  # number against text
        ("invoice.due_date: {matches: '1'}", invoice()),
        ("invoice.due_date: {eq: '1'}", invoice(due_date=1)),
        ("invoice.due_date: {ne: 'x'}", invoice()),
        ("invoice.status: {ne: 5}", invoice()),
        ("invoice.status: {not_in: [1, 2]}", invoice()),
        ("invoice.recurring: {eq: 1}", invoice(recurring=True)),  # True is not 1
        ("invoice.status: {between: [1, 2]}", invoice(status=[1])),
        ("invoice.status: {gte: 5}", invoice(status=float("nan"))),
        ("invoice.status: {gte: 5}", invoice(status={"nested": 1})),
    ],
)
def test_a_type_mismatch_is_false_not_an_error(condition: str, inv: dict[str, Any]) -> None:
    assert not holds(condition, event(inv))


def test_booleans_compare_with_true_and_false() -> None:
    assert holds("invoice.recurring: true", event(invoice(recurring=True)))
    assert not holds("invoice.recurring: true", event(invoice(recurring=False)))


def test_yes_and_off_are_text_not_booleans() -> None:
    assert holds("customer.auto_collection: off", event(customer={"auto_collection": "off"}))


def test_nested_paths_and_list_indexes_are_followed() -> None:
    ev = event(invoice(billing_address={"country": "DE"}, linked_payments=[{"txn_status": "failure"}]))
    assert holds("invoice.billing_address.country: DE", ev)
    assert holds("invoice.linked_payments.0.txn_status: failure", ev)
    assert not holds("invoice.linked_payments.1.txn_status: failure", ev)


def test_event_fields_are_read_from_the_envelope() -> None:
    assert holds("event.source: scheduled_job")
    assert holds("event.event_type: payment_failed")


def test_days_overdue_counts_whole_days_since_the_due_date() -> None:
    ten_and_a_half = event(invoice(due_date=int(NOW.timestamp()) - 10 * DAY - DAY // 2))
    assert holds("days_overdue: 10", ten_and_a_half)


def test_days_overdue_is_zero_before_the_due_date() -> None:
    assert holds("days_overdue: 0", event(invoice(due_date=int(NOW.timestamp()) + 5 * DAY)))


def test_a_list_under_when_means_all_of() -> None:
    ruleset = rules(
        "- name: r\n  when:\n    - invoice.status: not_paid\n    - invoice.currency_code: EUR\n  action: skip\n"
    )
    assert decide(ruleset, event(), NOW).action == "none"
    assert decide(ruleset, event(invoice(currency_code="EUR")), NOW).action == "skip"


def test_a_mapping_with_several_fields_means_all_of() -> None:
    ruleset = rules("- name: r\n  when: {invoice.status: not_paid, invoice.currency_code: EUR}\n  action: skip\n")
    assert decide(ruleset, event(), NOW).action == "none"
    assert decide(ruleset, event(invoice(currency_code="EUR")), NOW).action == "skip"


def test_any_holds_when_one_condition_holds() -> None:
    assert holds("any: [{invoice.status: paid}, {invoice.currency_code: USD}]")
    assert not holds("any: [{invoice.status: paid}, {invoice.currency_code: EUR}]")


def test_all_holds_only_when_every_condition_holds() -> None:
    assert holds("all: [{invoice.status: not_paid}, {invoice.currency_code: USD}]")
    assert not holds("all: [{invoice.status: not_paid}, {invoice.currency_code: EUR}]")


def test_not_inverts_its_condition() -> None:
    assert holds("not: {invoice.status: paid}")
    assert not holds("not: {invoice.status: not_paid}")


def test_not_of_a_missing_field_holds() -> None:
    assert holds("not: {customer.cf_segment: enterprise}")


def test_combinators_nest() -> None:
    condition = (
        "all: [{days_overdue: {gte: 5}}, {any: [{invoice.amount_due: {lte: 5}}, {not: {invoice.status: paid}}]}]"
    )
    assert holds(condition)
    assert not holds(condition, event(invoice(status="paid")))


def test_an_event_without_content_matches_nothing() -> None:
    ruleset = one_rule("invoice.status: {exists: false}")
    assert decide(ruleset, {"id": "ev"}, NOW).rule == "r"
    assert decide(one_rule("invoice.status: not_paid"), {"content": "garbage"}, NOW).action == "none"


def test_an_event_that_is_not_a_mapping_decides_none() -> None:
    assert decide(one_rule("invoice.status: not_paid"), ["not", "an", "event"], NOW).action == "none"  # type: ignore[arg-type]
