"""Approval tiers (reactor/rules/approvals.py): parsed with file:line:col for every problem, and
`approval_needed`, the pure decision the worker, `rules diff` and `rules test` share."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from reactor.rules import RulesError, parse_rules
from reactor.rules.approvals import approval_needed
from reactor.rules.cases import load_cases, run_cases
from reactor.rules.diff import AWAITS_APPROVAL, NEWLY_AWAITING, WRITE_OFF, change_kind, verdict_of
from reactor.rules.engine import decide

TIERS = """\
approvals:
  - above: {USD: 100, EUR: 90}
    approvers: 1
  - above: {USD: 1000, EUR: 900}
    approvers: 2
"""
RULES = (
    "version: 1\nmode: live\nlimits: {max_write_off: {USD: 10000, EUR: 10000, GBP: 10000}}\n"
    + TIERS
    + """\
rules:
  - name: exhausted
    when: [{invoice.dunning_status: exhausted}]
    action: write_off
"""
)


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules("version: 1\nmode: live\n" + text + "rules: []\n")
    return [f"{p.line}:{p.col}: {p.message}" for p in caught.value.problems]


@pytest.mark.parametrize(
    ("currency", "amount", "expected"),
    [
        ("USD", "50", None),
        ("USD", "100", None),  # above, not at
        ("USD", "100.01", (1, 1)),
        ("USD", "500", (1, 1)),
        ("EUR", "950", (2, 2)),
        ("USD", "5000", (2, 2)),
        ("GBP", "1", (2, 2)),  # a currency no tier names: fail closed, the highest tier
        (None, "1", (2, 2)),
        ("USD", None, (2, 2)),  # an unknown amount: the highest tier
    ],
)
def test_the_highest_tier_the_amount_is_above_decides(currency, amount, expected):
    tiers = parse_rules(RULES).approvals
    need = approval_needed(tiers, currency, None if amount is None else Decimal(amount))
    assert (None if need is None else (need.tier, need.approvers)) == expected


def test_a_currency_no_tier_names_says_why_it_waits_for_the_highest():
    need = approval_needed(parse_rules(RULES).approvals, "GBP", Decimal(1))
    assert need is not None and "no approval tier names GBP" in need.why and "tier 2" in need.why


def test_no_tiers_need_no_approval():
    assert parse_rules("version: 1\nrules: []\n").approvals == ()
    assert approval_needed((), "USD", Decimal(10**9)) is None


def test_every_problem_of_the_tiers_is_reported_at_its_place():
    found = problems(
        "approvals:\n"
        "  - above: {USD: 100, usd: 5}\n"  # line 4
        "    approvers: 0\n"
        "  - above: 5\n"
        "    approver: 2\n"
    )
    assert found == [
        "4:23: currency codes are three capital letters such as USD, not the text 'usd'",
        "5:16: `approvers` of approval tier #1 must be a whole number, 1 or more, not the number 0",
        "6:5: approval tier #2 has no `approvers`",
        "6:12: `above` of approval tier #2 must be a currency map such as {USD: 100, EUR: 90}"
        " (amounts in different currencies are not comparable), not the number 5",
        "7:5: unknown key 'approver' in approval tier #2; allowed keys are above, approvers; did you mean 'approvers'?",
    ]


def test_amounts_increase_strictly_and_every_tier_names_the_same_currencies():
    found = problems(
        "approvals:\n"
        "  - above: {USD: 100, EUR: 90}\n"
        "    approvers: 1\n"
        "  - above: {USD: 100, GBP: 900}\n"  # line 6
        "    approvers: 2\n"
    )
    assert any(p.startswith("6:5: approval tier #2 must name the same currencies as tier #1") for p in found)
    assert any("USD 100 must be above tier #1's 100" in p for p in found)


def test_approvals_must_be_a_list():
    assert problems("approvals: {USD: 100}\n")[0].startswith("3:12: `approvals` must be a list of tiers")


def invoice_event(amount: int, currency: str = "USD") -> dict:
    invoice = {"id": "inv_1", "dunning_status": "exhausted", "status": "not_paid", "amount_due": amount}
    return {"event_type": "payment_failed", "content": {"invoice": {**invoice, "currency_code": currency}}}


NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)


def test_rules_diff_shows_awaits_approval_as_its_own_outcome():
    ruleset = parse_rules(RULES)
    small, large = (decide(ruleset, invoice_event(a), NOW) for a in (5000, 50000))
    assert verdict_of(small, None, ruleset.approvals).outcome == WRITE_OFF
    waits = verdict_of(large, None, ruleset.approvals)
    assert waits.outcome == AWAITS_APPROVAL and waits.reason.startswith("awaits approval: 500.00 USD")
    assert change_kind(verdict_of(large), waits) == NEWLY_AWAITING


def test_rules_test_cases_can_expect_awaits_approval(tmp_path: Path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    cases = tmp_path / "rules.cases.yaml"
    cases.write_text(
        "cases:\n"
        "  - name: small goes through\n"
        "    invoice: {id: inv_1, dunning_status: exhausted, status: not_paid, amount_due: 5000, currency_code: USD}\n"
        "    expect: {rule: exhausted, action: write_off}\n"
        "  - name: large waits\n"
        "    invoice: {id: inv_2, dunning_status: exhausted, status: not_paid, amount_due: 50000, currency_code: USD}\n"
        "    expect: {rule: exhausted, action: awaits_approval}\n"
        "  - name: large expected as a plain write-off fails\n"
        "    invoice: {id: inv_3, dunning_status: exhausted, status: not_paid, amount_due: 50000, currency_code: USD}\n"
        "    expect: {rule: exhausted, action: write_off}\n"
    )
    ruleset = parse_rules(RULES)
    results = run_cases(ruleset, load_cases(cases, ruleset).cases, NOW)
    assert [(r.outcome, r.passed) for r in results] == [
        ("write_off", True),
        ("awaits_approval", True),
        ("awaits_approval", False),
    ]
