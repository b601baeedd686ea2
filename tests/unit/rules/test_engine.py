"""decide(): first match wins, `on:` filters, skip and write_off, guardrails, comments, records."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest

from reactor.rules import Decision, decide

from .helpers import NOW, event, invoice, rules

WRITE_OFF = "- name: w\n  when:\n    - invoice.status: not_paid\n  action: write_off\n"


def test_no_matching_rule_decides_none() -> None:
    decision = decide(rules("- name: r\n  when:\n    - invoice.status: paid\n  action: write_off\n"), event(), NOW)
    assert (decision.action, decision.rule, decision.reason) == ("none", None, "no rule matched")
    assert decision.comment is None and decision.blocked_by is None


@pytest.mark.parametrize(
    ("first_when", "action", "rule"),
    [("not_paid", "skip", "first"), ("paid", "write_off", "second")],
    ids=["both-hold-the-first-decides", "the-first-does-not-hold-the-next-decides"],
)
def test_the_first_rule_that_holds_decides(first_when: str, action: str, rule: str) -> None:
    ruleset = rules(
        f"""\
        - name: first
          when: [{{invoice.status: {first_when}}}]
          action: skip
        - name: second
          when: [{{invoice.status: not_paid}}]
          action: write_off
        """
    )
    decision = decide(ruleset, event(), NOW)
    assert (decision.action, decision.rule, decision.reason) == (action, rule, f"rule {rule} matched")


def test_on_filter_skips_rules_for_other_event_types() -> None:
    ruleset = rules(
        """\
        - name: only-updates
          on: invoice_updated
          when: [{invoice.status: not_paid}]
          action: skip
        - name: fallback
          when: [{invoice.status: not_paid}]
          action: write_off
        """
    )
    assert decide(ruleset, event(event_type="payment_failed"), NOW).rule == "fallback"
    assert decide(ruleset, event(event_type="invoice_updated"), NOW).rule == "only-updates"


def test_on_filter_accepts_a_list_of_event_types() -> None:
    ruleset = rules(
        "- name: r\n  on: [payment_failed, invoice_updated]\n  when: [{invoice.status: not_paid}]\n  action: skip\n"
    )
    assert decide(ruleset, event(event_type="invoice_updated"), NOW).rule == "r"
    assert decide(ruleset, event(event_type="invoice_generated"), NOW).rule is None


def test_write_off_decision_carries_the_invoice_facts() -> None:
    decision = decide(rules(WRITE_OFF), event(), NOW)
    assert decision.action == "write_off" and decision.rule == "w" and decision.blocked_by is None
    assert (decision.invoice_id, decision.currency, decision.amount_due) == ("inv_1", "USD", 1250)
    assert decision.amount_due_major == Decimal("12.50")
    assert decision.dry_run is False


def test_dry_run_mode_marks_the_decision() -> None:
    assert decide(rules(WRITE_OFF, mode="dry_run"), event(), NOW).dry_run is True


def test_decision_records_the_rules_version() -> None:
    ruleset = rules(WRITE_OFF)
    assert decide(ruleset, event(), NOW).rules_version == ruleset.version


def test_default_comment_names_the_rule() -> None:
    assert decide(rules(WRITE_OFF), event(), NOW).comment == "Written off by chargebee-reactor rule w"


def test_comment_placeholders_are_rendered() -> None:
    template = "{rule}|{invoice_id}|{customer_id}|{amount_due}|{currency}|{days_overdue}|{event_type}"
    ruleset = rules(WRITE_OFF + f'  comment: "{template}"\n')
    assert decide(ruleset, event(), NOW).comment == "w|inv_1|cus_1|12.50|USD|10|payment_failed"


def test_comment_amount_in_jpy_has_no_decimals() -> None:
    ruleset = rules(WRITE_OFF + '  comment: "{amount_due} {currency}"\n')
    assert decide(ruleset, event(invoice(amount_due=3000, currency_code="JPY")), NOW).comment == "3000 JPY"


def test_rendered_comment_is_cut_to_300_characters() -> None:
    ruleset = rules(WRITE_OFF + '  comment: "' + "x" * 280 + '{invoice_id}"\n')
    comment = decide(ruleset, event(invoice(id="inv_" + "9" * 40)), NOW).comment
    assert comment == "x" * 280 + "inv_" + "9" * 16


def test_skip_has_no_comment() -> None:
    ruleset = rules("- name: s\n  when: [{invoice.status: not_paid}]\n  action: skip\n")
    assert decide(ruleset, event(), NOW).comment is None


def test_limit_blocks_a_write_off_over_it() -> None:
    decision = decide(rules(WRITE_OFF, limits="{USD: 500}"), event(invoice(amount_due=61200)), NOW)
    assert (decision.action, decision.rule, decision.blocked_by) == ("skip", "w", "limits.max_write_off")
    assert decision.reason == "rule w matched but 612.00 USD is over limits.max_write_off (500 USD)"
    assert decision.comment is None


def test_limit_allows_a_write_off_equal_to_it() -> None:
    decision = decide(rules(WRITE_OFF, limits="{USD: 500}"), event(invoice(amount_due=50000)), NOW)
    assert decision.action == "write_off"


def test_limit_map_blocks_a_currency_it_does_not_list() -> None:
    decision = decide(rules(WRITE_OFF, limits="{USD: 500}"), event(invoice(currency_code="CHF")), NOW)
    assert decision.action == "skip" and decision.blocked_by == "limits.max_write_off"
    assert "no limit for CHF" in decision.reason


def test_plain_number_limit_applies_to_every_currency() -> None:
    ruleset = rules(WRITE_OFF, limits="100")
    assert decide(ruleset, event(invoice(currency_code="CHF", amount_due=10000)), NOW).action == "write_off"
    assert decide(ruleset, event(invoice(currency_code="JPY", amount_due=101)), NOW).action == "skip"


@pytest.mark.parametrize(
    ("inv", "blocked_by", "words"),
    [
        (invoice(amount_due=0), "amount_due", "nothing to write off"),
        (invoice(amount_due=-5), "amount_due", "nothing to write off"),
        (invoice(amount_due=...), "amount_due", "nothing to write off"),
        (invoice(id=...), "invoice", "nothing to write off"),
        (invoice(currency_code=...), "currency_code", "currency_code is missing"),
        (invoice(status="paid"), "invoice.status", "nothing due: the invoice is paid"),
        (invoice(status="pending"), "invoice.status", "only payment_due, posted or not_paid"),
        (invoice(linked_payments=[{"txn_status": "in_progress"}]), "invoice.linked_payments", "in progress"),
    ],
)
def test_write_off_is_blocked_when_the_invoice_cannot_be_written_off(inv, blocked_by: str, words: str) -> None:
    ruleset = rules("- name: w\n  when: [{invoice.customer_id: cus_1}]\n  action: write_off\n")
    decision = decide(ruleset, event(inv), NOW)
    assert (decision.action, decision.rule, decision.blocked_by) == ("skip", "w", blocked_by)
    assert words in decision.reason and decision.comment is None


@pytest.mark.parametrize("inv", [invoice(status="paid", amount_due=0), invoice(status="paid"), invoice(amount_due=0)])
def test_an_invoice_with_nothing_due_reads_as_nothing_due_not_as_a_rule_that_matched(inv) -> None:
    ruleset = rules("- name: w\n  when: [{invoice.customer_id: cus_1}]\n  action: write_off\n")
    decision = decide(ruleset, event(inv), NOW)
    assert (decision.action, decision.rule) == ("skip", "w")
    assert decision.reason.startswith("nothing due: ") and "matched" not in decision.reason
    assert decision.reason.endswith("nothing to write off")


def test_skip_rules_are_not_subject_to_guardrails() -> None:
    ruleset = rules("- name: s\n  when: [{invoice.customer_id: cus_1}]\n  action: skip\n", limits="{EUR: 1}")
    decision = decide(ruleset, event(invoice(amount_due=...)), NOW)
    assert (decision.action, decision.blocked_by) == ("skip", None)


def test_as_dict_is_json_safe_and_keeps_the_decimal_digits() -> None:
    data = decide(rules(WRITE_OFF), event(), NOW).as_dict()
    assert json.loads(json.dumps(data))["amount_due_major"] == "12.50"
    assert set(data) == set(Decision.__dataclass_fields__)


def test_decision_without_amount_serialises_to_none() -> None:
    data = decide(rules(WRITE_OFF), {"id": "ev"}, NOW).as_dict()
    assert data["amount_due_major"] is None and data["action"] == "none"


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(rules(WRITE_OFF), event(), datetime(2024, 6, 1))


def test_decide_does_not_mutate_the_event() -> None:
    ev = event()
    before = json.dumps(ev, sort_keys=True)
    decide(rules(WRITE_OFF), ev, NOW)
    assert json.dumps(ev, sort_keys=True) == before


def test_an_event_type_that_is_not_text_passes_no_on_filter() -> None:
    ruleset = rules("- name: r\n  on: [payment_failed]\n  when: [{invoice.status: not_paid}]\n  action: skip\n")
    assert decide(ruleset, event(event_type=["payment_failed"]), NOW).action == "none"  # type: ignore[arg-type]
