"""Write-offs before VAT bad-debt relief: which write_off rules can act on a taxed invoice of a
country that allows relief only some months after the due date (REACTOR_RELIEF_DELAYS, passed in:
the rules core reads no settings). `reactor rules check` warns of them; nothing is refused, since
writing off early is allowed, only the relief waits (docs/operations.md, "Month end").

What a rule can reach is read from its `when` conservatively: the least `days_overdue` it needs
(`gte`/`gt`/`eq`/`between` on the path to a match; an `any` needs only its weakest branch; a `not`
bounds nothing), and the countries and tax its top-level `all` rules out
(`invoice.billing_address.country` with `eq`/`in`/`ne`/`not_in`; `invoice.tax` at most 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from dateutil.relativedelta import relativedelta

from .conditions import Condition
from .fields import DAYS_OVERDUE
from .model import Rule
from .money import MoneyThreshold

COUNTRY_FIELD = "invoice.billing_address.country"
TAX_FIELD = "invoice.tax"


@dataclass(frozen=True)
class ReliefWarning:
    rule: str
    country: str
    months: int
    days: int  # the fewest days overdue the rule writes off at
    line: int
    col: int

    def message(self) -> str:
        return (
            f"rule {self.rule} can write off taxed {self.country} invoices {self.days} days overdue, before "
            f"{self.country}'s {self.months}-month wait for VAT bad-debt relief (REACTOR_RELIEF_DELAYS): "
            f"relief on them is claimable only later (reactor report bad-debt)"
        )


def longest_days(months: int) -> int:
    """The most days `months` calendar months can span (6: 184, July to December)."""
    starts = [date(year, month, 1) for year in (2023, 2024) for month in range(1, 13)]
    return max(((start + relativedelta(months=months)) - start).days for start in starts)


def least_days_overdue(condition: Condition) -> int:
    """The fewest days overdue at which `condition` can hold (0: any)."""
    if condition.kind == "all":
        return max((least_days_overdue(child) for child in condition.children), default=0)
    if condition.kind == "any":
        return min((least_days_overdue(child) for child in condition.children), default=0)
    if condition.kind != "field" or condition.field is None or condition.field.path != DAYS_OVERDUE:
        return 0
    expected = condition.expected
    if condition.operator == "between" and isinstance(expected, list) and expected:
        expected = expected[0]
    if isinstance(expected, bool) or not isinstance(expected, (int, float)):
        return 0
    bound = int(expected) + (1 if condition.operator == "gt" else 0)
    return max(bound, 0) if condition.operator in ("gte", "gt", "eq", "between") else 0


def reached_countries(condition: Condition, countries: Iterable[str]) -> list[str]:
    """Of `countries`, those the rule's top-level conditions leave reachable, on taxed invoices."""
    reachable = list(countries)
    for leaf in condition.children if condition.kind == "all" else (condition,):
        if leaf.kind != "field" or leaf.field is None:
            continue
        op, expected = leaf.operator, leaf.expected
        if leaf.field.path == TAX_FIELD and op in ("eq", "lte") and _no_tax(expected):
            return []  # untaxed invoices only: no VAT to claim back
        if leaf.field.path != COUNTRY_FIELD:
            continue
        named = {str(v).upper() for v in (expected if isinstance(expected, list) else [expected])}
        if op in ("eq", "in"):
            reachable = [c for c in reachable if c in named]
        elif op in ("ne", "not_in"):
            reachable = [c for c in reachable if c not in named]
    return reachable


def relief_warnings(rules: Iterable[Rule], delays: Mapping[str, int]) -> list[ReliefWarning]:
    """A warning per (write_off rule, country with a delay) the rule can reach before that delay."""
    found = []
    waiting = sorted((country, months) for country, months in delays.items() if months > 0)
    for rule in rules:
        if rule.action != "write_off":
            continue
        days = least_days_overdue(rule.condition)
        reachable = set(reached_countries(rule.condition, [c for c, _ in waiting]))
        for country, months in waiting:
            if country in reachable and days < longest_days(months):
                found.append(ReliefWarning(rule.name, country, months, days, rule.line, rule.col))
    return found


def _no_tax(expected: object) -> bool:
    """Whether a `tax` operand holds at most zero in every currency it names."""
    if isinstance(expected, MoneyThreshold):
        values = list(expected.per_currency.values())
        if expected.any_currency is not None:
            values.append(expected.any_currency)
        return bool(values) and all(v <= 0 for v in values)
    return not isinstance(expected, bool) and isinstance(expected, (int, float, Decimal)) and expected <= 0
