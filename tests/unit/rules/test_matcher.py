"""The generated matchers (reactor/rules/plan.py `compile_matcher` and `inline_expression`) decide as
the condition closures do, on well-formed events and on every odd shape that makes them fall back to
the closures."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any

from reactor.rules import parse_rules
from reactor.rules.engine import first_match
from reactor.rules.fields import Subject
from reactor.rules.plan import COMPILE_AFTER, compile_matcher, rule_plan

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
DAY = 86400
RULES = """
version: 1
mode: live
rules:
  - name: named-account
    when:
      - customer.id: {starts_with: ent_}
    action: skip
  - name: disputed-or-partner
    when:
      - any:
          - customer.cf_dispute_open: true
          - customer.cf_partner: {exists: true}
    action: skip
  - name: sanctioned
    when:
      - invoice.billing_address.country: {in: [IR, KP]}
    action: skip
  - name: small-old-usd-eur
    on: [payment_failed]
    when:
      - invoice.dunning_status: exhausted
      - invoice.amount_due: {lte: {USD: 25, EUR: 20}}
      - days_overdue: {gte: 30}
    action: write_off
  - name: large
    when:
      - invoice.amount_due: {gt: 100}
      - customer.cf_segment: smb
    action: skip
  - name: recent-any
    when:
      - days_overdue: {lt: 10}
      - invoice.amount_due: {lte: 5}
    action: write_off
"""


def _plain_first_match(ruleset: Any, subject: Subject) -> Any:
    for on, tests, rule in ruleset.plan:
        if (on is None or subject.event_type in on) and all(test(subject) for test in tests):
            return rule
    return None


def _event(customer: Any, country: Any, currency: Any, amount: Any, due_days_ago: Any, dunning: Any) -> dict[str, Any]:
    invoice: dict[str, Any] = {"id": "inv_1", "status": "not_paid", "dunning_status": dunning}
    if currency is not None:
        invoice["currency_code"] = currency
    if amount is not None:
        invoice["amount_due"] = amount
    if due_days_ago is not None:
        invoice["due_date"] = int(NOW.timestamp()) - due_days_ago * DAY
    if country is not None:
        invoice["billing_address"] = country
    return {"event_type": "payment_failed", "content": {"invoice": invoice, "customer": customer}}


def _compiled_first_match(ruleset: Any, subject: Subject, compiled: dict[int, Any]) -> Any:
    selection = rule_plan(ruleset).by_type.get(subject.event_type, rule_plan(ruleset).default).selection(subject)
    if id(selection) not in compiled:
        compiled[id(selection)] = compile_matcher(selection.plan)
    return compiled[id(selection)](subject)


def test_generated_matchers_pick_the_rule_the_condition_closures_pick() -> None:
    ruleset = parse_rules(RULES)
    combos = itertools.product(
        [
            {"id": "ent_1"},
            {"id": "cus_1", "cf_segment": "smb"},
            {"cf_dispute_open": True},
            {"cf_dispute_open": 1, "cf_partner": None},
            {"cf_partner": "p_1"},
            {},
            None,
            ["not", "a", "dict"],
        ],
        [{"country": "IR"}, {"country": "FR"}, {}, "IR", None],
        ["USD", "EUR", "JPY", None, 7],
        [400, 2500, 20000, None, "400"],
        [2, 45, None],
        ["exhausted", None],
        ["payment_failed", "invoice_updated"],
    )
    compiled: dict[int, Any] = {}
    checked = 0
    for *fields, event_type in combos:
        subject = Subject({**_event(*fields), "event_type": event_type}, NOW)
        expected = _plain_first_match(ruleset, subject)
        assert _compiled_first_match(ruleset, subject, compiled) is expected, (fields, event_type)
        assert first_match(ruleset, subject) is expected, (fields, event_type)
        checked += 1
    assert checked == 8 * 5 * 5 * 5 * 3 * 2 * 2


def test_a_plan_is_compiled_once_it_has_been_used_often() -> None:
    ruleset = parse_rules(RULES)
    subject = Subject(_event({"id": "cus_1"}, {"country": "FR"}, "USD", 400, 45, "exhausted"), NOW)
    selection = rule_plan(ruleset).by_type["payment_failed"].selection(subject)
    for _ in range(COMPILE_AFTER):
        assert first_match(ruleset, subject) is ruleset.rule("small-old-usd-eur")
    assert "days is not MISSING and days >=" in selection.match.source
    assert ".startswith(" in selection.match.source
