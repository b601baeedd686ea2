"""What a write_off rule can reach before a country's VAT relief delay (reactor/rules/relief.py)."""

from __future__ import annotations

import pytest

from reactor.rules import load_rules
from reactor.rules.relief import least_days_overdue, longest_days, relief_warnings


def rules(tmp_path, when: str, action: str = "write_off"):
    path = tmp_path / "rules.yaml"
    path.write_text(f"version: 1\nrules:\n  - name: r\n    when:\n{when}    action: {action}\n")
    return load_rules(path).rules


@pytest.mark.parametrize(("months", "days"), [(0, 0), (1, 31), (6, 184), (12, 366)])
def test_the_longest_span_of_months(months, days):
    assert longest_days(months) == days


@pytest.mark.parametrize(
    ("when", "days"),
    [
        ("      - days_overdue: {gte: 90}\n", 90),
        ("      - days_overdue: {gt: 90}\n", 91),
        ("      - days_overdue: {between: [100, 200]}\n", 100),
        ("      - invoice.amount_due: {lte: 5}\n", 0),
        ("      - days_overdue: {lte: 300}\n", 0),
        ("      - not: {days_overdue: {lt: 300}}\n", 0),  # bounded in truth, read as unbounded: warns more
        ("      any: [{days_overdue: {gte: 200}}, {days_overdue: {gte: 30}}]\n", 30),
        ("      - days_overdue: {gte: 30}\n      - days_overdue: {gte: 200}\n", 200),
    ],
)
def test_the_least_days_overdue_a_rule_needs(tmp_path, when, days):
    [rule] = rules(tmp_path, when)
    assert least_days_overdue(rule.condition) == days


@pytest.mark.parametrize(
    ("when", "warned"),
    [
        ("      - days_overdue: {gte: 183}\n", ["GB"]),
        ("      - days_overdue: {gte: 184}\n", []),
        ("      - invoice.billing_address.country: GB\n", ["GB"]),
        ("      - invoice.billing_address.country: {in: [DE, FR]}\n", []),
        ("      - invoice.billing_address.country: {ne: GB}\n", []),
        ("      - invoice.tax: {lte: 0}\n", []),
        ("      - invoice.tax: {lte: {GBP: 0, EUR: 1}}\n", ["GB"]),  # taxed EUR invoices may be GB ones
    ],
)
def test_gb_is_warned_unless_the_rule_waits_or_rules_gb_or_tax_out(tmp_path, when, warned):
    found = relief_warnings(rules(tmp_path, when), {"GB": 6, "DE": 0})
    assert [w.country for w in found] == warned


def test_a_skip_rule_is_never_warned(tmp_path):
    assert relief_warnings(rules(tmp_path, "      - days_overdue: {gte: 1}\n", action="skip"), {"GB": 6}) == []
