"""explain(): every rule and every condition with expected and actual values, and the decision."""

from __future__ import annotations

from rich.console import Console

from reactor.rules import Explanation, decide, explain, format_explanation

from .helpers import NOW, event, invoice, rules

RULES = """\
- name: protect
  when: [{invoice.customer_id: {starts_with: ent_}}]
  action: skip
- name: small
  on: [invoice_updated]
  when: [{invoice.amount_due: {lte: {USD: 25}}}]
  action: write_off
- name: tiny
  when:
    any:
      - invoice.amount_due: {lte: 5}
      - not: {customer.cf_segment: enterprise}
  action: write_off
"""


def explained(ev=None) -> Explanation:
    return explain(rules(RULES), ev if ev is not None else event(), NOW)


def test_explanation_lists_every_rule_in_order() -> None:
    assert [trace.name for trace in explained().rules] == ["protect", "small", "tiny"]


def test_explanation_marks_the_deciding_rule() -> None:
    traces = explained().rules
    assert [(t.matched, t.decided) for t in traces] == [(False, False), (False, False), (True, True)]


def test_explanation_says_when_the_on_filter_skipped_a_rule() -> None:
    small = explained().rules[1]
    assert small.skipped_by_on and small.on == ("invoice_updated",)
    assert small.when.passed  # its condition holds; only the event type kept it out


def test_explanation_gives_field_operator_expected_actual_and_result() -> None:
    (leaf,) = explained().rules[0].when.leaves()
    assert (leaf.field, leaf.operator, leaf.expected, leaf.actual, leaf.passed) == (
        "invoice.customer_id",
        "starts_with",
        "ent_",
        "cus_1",
        False,
    )


def test_explanation_shows_money_in_major_units() -> None:
    (leaf,) = explained().rules[1].when.leaves()
    assert leaf.actual_text == "12.50 USD" and leaf.expected == "{USD: 25}"


def test_explanation_notes_a_currency_missing_from_a_threshold_map() -> None:
    (leaf,) = explained(event(invoice(currency_code="CHF"))).rules[1].when.leaves()
    assert leaf.note == "the threshold has no value for CHF" and not leaf.passed


def test_explanation_shows_missing_fields_as_missing() -> None:
    leaves = explained().rules[2].when.leaves()
    segment = next(leaf for leaf in leaves if leaf.field == "customer.cf_segment")
    assert segment.actual_text == "(missing)" and segment.note == "the field is missing or null"


def test_explanation_keeps_the_combinator_tree() -> None:
    tree = explained().rules[2].when
    assert tree.kind == "any" and [child.kind for child in tree.children] == ["field", "not"]
    assert [child.passed for child in tree.children] == [False, True]


def test_explanation_evaluates_every_condition_without_short_circuit() -> None:
    tree = explained(event(invoice(amount_due=100))).rules[2].when
    assert [child.passed for child in tree.children] == [True, True]


def test_explanation_carries_the_same_decision_as_decide() -> None:
    ev = event()
    assert explained(ev).decision == decide(rules(RULES), ev, NOW)


def test_formatted_explanation_is_readable_in_a_terminal() -> None:
    console = Console(record=True, width=160, color_system=None)
    console.print(format_explanation(explained()))
    text = console.export_text()
    assert "rule protect" in text and "invoice.customer_id starts_with ent_" in text
    assert "actual: 'cus_1'" in text and "skipped: event type not in on" in text
    assert "decision: WRITE_OFF — rule tiny matched" in text


def test_a_long_value_is_matched_whole_but_shown_cut_short() -> None:
    ruleset = rules("""\
- name: protect-disputes
  when: [{customer.cf_note: {matches: dispute}}]
  action: skip
""")
    note = "x" * 5_000 + " dispute"
    (leaf,) = explain(ruleset, event(customer={"id": "cus_1", "cf_note": note}), NOW).rules[0].when.leaves()
    assert leaf.passed is True  # the word past the first 200 characters still counts
    assert leaf.actual_text == f"{repr(note)[:200]}… (5,010 characters)"
