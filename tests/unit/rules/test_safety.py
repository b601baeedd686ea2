"""Built-in safety (reactor/rules/safety.py): what decide() never writes off, whatever the rules say."""

from __future__ import annotations

import pytest

from reactor.rules import decide
from reactor.rules.safety import collecting_reason, gone_reason

from .helpers import DAY, NOW, event, invoice, rules

NOW_TS = int(NOW.timestamp())
WRITE_OFF_ANY = "- name: crumbs\n  when:\n    - invoice.amount_due: {lte: 25}\n  action: write_off\n"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"dunning_status": "in_progress", "next_retry_at": NOW_TS + DAY}, "dunning_status 'in_progress'"),
        ({"dunning_status": "in_progress", "next_retry_at": NOW_TS - DAY}, "dunning_status 'in_progress'"),
        ({"dunning_status": "in_progress"}, "dunning_status 'in_progress'"),
        ({"dunning_status": "paused_by_a_feature_we_do_not_know"}, "still collecting"),
        ({"dunning_status": None, "next_retry_at": NOW_TS + 60}, "a payment retry is scheduled"),
        ({"dunning_status": "stopped", "expected_payment_date": NOW_TS + DAY}, "promise to pay"),
    ],
)
def test_chargebee_still_collecting_is_recognised(fields: dict, expected: str) -> None:
    assert expected in (collecting_reason(invoice(**fields), NOW_TS) or "")


@pytest.mark.parametrize(
    "fields",
    [
        {"dunning_status": "exhausted"},
        {"dunning_status": "exhausted", "next_retry_at": NOW_TS - DAY},
        {"dunning_status": "stopped"},
        {"dunning_status": ...},  # offline collection: never in dunning
        {"dunning_status": ..., "expected_payment_date": NOW_TS - DAY},  # the promised day has passed
        {"dunning_status": "exhausted", "next_retry_at": "tomorrow"},  # not a time: not a retry either
    ],
)
def test_chargebee_done_collecting_is_not_blocked(fields: dict) -> None:
    assert collecting_reason(invoice(**fields), NOW_TS) is None


def test_a_timestamp_no_calendar_holds_does_not_crash_the_check() -> None:
    reason = collecting_reason(invoice(dunning_status="in_progress", next_retry_at=10**30), NOW_TS)
    assert reason is not None and "not a real time" in reason


def test_deleted_and_voided_invoices_are_gone() -> None:
    assert gone_reason(invoice(deleted=True)) == "the invoice is deleted in Chargebee"
    assert gone_reason(invoice(status="voided")) == "the invoice is voided in Chargebee"
    assert gone_reason(invoice(deleted=False)) is None


def test_a_write_off_rule_does_not_write_off_while_dunning_is_in_progress() -> None:
    decision = decide(
        rules(WRITE_OFF_ANY), event(invoice(dunning_status="in_progress", next_retry_at=NOW_TS + DAY)), NOW
    )
    assert (decision.action, decision.rule, decision.blocked_by) == ("skip", "crumbs", "collecting")
    assert decision.reason == (
        "rule crumbs matched but Chargebee is still collecting (dunning_status 'in_progress', next retry"
        " 2024-06-02 12:00:00Z): nothing is written off while it may still be paid; decided again on the event"
        " Chargebee sends then, or by the sweep"
    )
    assert "while_collecting" not in decision.reason  # the bypass is documented in rules.yaml, not offered here


@pytest.mark.parametrize(
    ("fields", "again"),
    [
        ({"dunning_status": "in_progress"}, "decided again on Chargebee's next event about it, or by the sweep"),
        ({"dunning_status": None, "next_retry_at": NOW_TS + DAY}, "decided again on the event Chargebee sends then"),
        (
            {"dunning_status": "stopped", "expected_payment_date": NOW_TS + DAY},
            "decided again on Chargebee's next event after it",
        ),
    ],
)
def test_the_collecting_reason_says_why_it_waits_and_when_it_decides_again(fields: dict, again: str) -> None:
    reason = collecting_reason(invoice(**fields), NOW_TS) or ""
    assert "nothing is written off" in reason and again in reason and "while_collecting" not in reason


def test_a_rule_that_opts_in_writes_off_while_chargebee_collects() -> None:
    ruleset = rules(WRITE_OFF_ANY + "  while_collecting: write_off\n")
    decision = decide(ruleset, event(invoice(dunning_status="in_progress", next_retry_at=NOW_TS + DAY)), NOW)
    assert (decision.action, decision.rule) == ("write_off", "crumbs")


def test_opting_in_never_overrides_a_payment_in_flight_or_a_deleted_invoice() -> None:
    ruleset = rules(WRITE_OFF_ANY + "  while_collecting: write_off\n")
    paying = invoice(linked_payments=[{"txn_id": "txn_1", "txn_status": "in_progress"}])
    assert decide(ruleset, event(paying), NOW).blocked_by == "invoice.linked_payments"
    assert decide(ruleset, event(invoice(deleted=True)), NOW).blocked_by == "invoice.deleted"


def test_a_deleted_invoice_is_never_written_off() -> None:
    decision = decide(rules(WRITE_OFF_ANY), event(invoice(deleted=True)), NOW)
    assert (decision.action, decision.blocked_by) == ("skip", "invoice.deleted")


@pytest.mark.parametrize(
    "fields",
    [
        {"deleted": "true"},
        {"deleted": 1},
        {"status": ["not_paid"]},
        {"dunning_status": {"value": "exhausted"}},
        {"dunning_status": ["exhausted"]},
        {"linked_payments": [{"txn_id": "t", "txn_status": "IN_PROGRESS"}]},
        {"linked_payments": [{"txn_id": "t", "txn_status": "needs_attention"}]},
        {"dunning_status": "in_progress", "next_retry_at": 10**400},
    ],
)
def test_odd_shapes_never_write_off_and_never_raise(fields: dict) -> None:
    """Shapes Chargebee does not send: no exception (the job would retry into the dead letters), and
    no write-off."""
    decision = decide(rules(WRITE_OFF_ANY), event(invoice(**fields)), NOW)
    assert decision.action == "skip" and decision.blocked_by is not None


def test_a_lowercase_zero_decimal_currency_is_compared_in_its_own_unit() -> None:
    ruleset = rules(WRITE_OFF_ANY, limits="5000")
    for _ in range(20):  # past the plan's compile threshold: the compiled matcher too
        yen = decide(ruleset, event(invoice(currency_code="jpy", amount_due=2500)), NOW)
        assert yen.action == "none"  # 2,500 yen is not at most 25
    assert decide(ruleset, event(invoice(currency_code="jpy", amount_due=20)), NOW).action == "write_off"
