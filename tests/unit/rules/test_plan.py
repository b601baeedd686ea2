"""The rule index (reactor/rules/plan.py) only skips rules that could not match: decisions through it
are those of trying every rule in file order."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

from reactor.rules import parse_rules
from reactor.rules.engine import first_match
from reactor.rules.fields import Subject
from reactor.rules.plan import rule_plan

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
RULES = """
version: 1
mode: live
rules:
  - name: protect
    when:
      - customer.cf_segment: {in: [enterprise, strategic]}
    action: skip
  - name: exhausted-usd
    on: [payment_failed]
    when:
      - invoice.dunning_status: exhausted
      - invoice.currency_code: USD
      - invoice.amount_due: {lte: 25}
    action: write_off
  - name: exhausted-eur-smb
    on: [payment_failed, invoice_updated]
    when:
      - invoice.dunning_status: exhausted
      - invoice.currency_code: {in: [EUR, GBP]}
      - customer.cf_segment: smb
    action: write_off
  - name: guard-only
    on: [invoice_updated]
    when:
      - invoice.dunning_status: stopped
      - invoice.currency_code: USD
    action: skip
  - name: catch-all
    when:
      - invoice.amount_due: {lte: 1}
    action: write_off
"""


def _plain_first_match(ruleset, subject):  # type: ignore[no-untyped-def]
    for on, tests, rule in ruleset.plan:
        if (on is None or subject.event_type in on) and all(test(subject) for test in tests):
            return rule
    return None


def _event(event_type, dunning, currency, segment, amount):  # type: ignore[no-untyped-def]
    invoice = {"id": "inv_1", "status": "not_paid", "amount_due": amount}
    if dunning is not None:
        invoice["dunning_status"] = dunning
    if currency is not None:
        invoice["currency_code"] = currency
    customer = {} if segment is None else {"cf_segment": segment}
    return {"id": "ev_1", "event_type": event_type, "content": {"invoice": invoice, "customer": customer}}


def test_the_index_picks_the_rule_a_plain_loop_over_every_rule_picks() -> None:
    ruleset = parse_rules(RULES)
    combos = itertools.product(
        ["payment_failed", "invoice_updated", "invoice_generated", None],
        ["exhausted", "stopped", "in_progress", None, 7],
        ["USD", "EUR", "GBP", "JPY", None, ["USD"]],
        ["enterprise", "smb", "other", None],
        [50, 2500, 90000],
    )
    checked = 0
    for combo in combos:
        subject = Subject(_event(*combo), NOW)
        assert first_match(ruleset, subject) is _plain_first_match(ruleset, subject), combo
        checked += 1
    assert checked == 4 * 5 * 6 * 4 * 3


def test_guard_fields_are_chosen_from_text_conditions_shared_by_rules() -> None:
    plan = rule_plan(parse_rules(RULES)).by_type["payment_failed"]
    assert {frozenset(values) for _, values in plan.guards} >= {
        frozenset({"exhausted"}),
        frozenset({"USD", "EUR", "GBP"}),
    }
