"""Approval tiers (rules.yaml `approvals:`): how many distinct people must approve a write-off of a
given amount before it is made. Parsed and validated here with file:line:col; `approval_needed` is the
pure decision every caller shares (the worker, `rules diff`, `rules test`).

```yaml
approvals:
  - above: {USD: 100, EUR: 90}     # major units, as everywhere in rules.yaml
    approvers: 1
  - above: {USD: 1000, EUR: 900}
    approvers: 2
```

A write-off whose amount due is above a tier's amount waits for that many approvers (the highest
tier it is above decides). Fail closed: a currency that no tier names, or an amount that is unknown,
cannot be judged against the tiers, so it waits for the approvers of the highest tier.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .fields import did_you_mean
from .operators import OperandError, _decimal
from .problems import ProblemKind, Problems
from .yamlnodes import describe, mapping_items, position, scalar_value

TIER_KEYS = ("above", "approvers")
MAX_TIERS = 20
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class ApprovalTier:
    """One tier: above these amounts (major units per currency), this many distinct approvers."""

    number: int  # 1-based, in file order (the amounts increase with it)
    above: Mapping[str, Decimal]
    approvers: int
    line: int = 0
    col: int = 0

    def describe(self, currency: str | None) -> str:
        amount = self.above.get(currency or "")
        over = f"above {amount} {currency}" if amount is not None else "the highest"
        return f"tier {self.number} ({over}, {self.approvers} approver{'s' if self.approvers != 1 else ''})"


@dataclass(frozen=True)
class ApprovalNeed:
    """What a write-off must wait for: `approvers` distinct approvals at `tier` (1-based) or above."""

    tier: int
    approvers: int
    why: str


def approval_needed(
    tiers: tuple[ApprovalTier, ...], currency: str | None, amount_major: Decimal | None
) -> ApprovalNeed | None:
    """The approvals a write-off of `amount_major` `currency` waits for, or None when it needs none."""
    if not tiers:
        return None
    top = tiers[-1]
    if currency is None or amount_major is None or currency not in top.above:
        what = f"no approval tier names {currency}" if currency else "the invoice has no currency"
        if currency is not None and currency in top.above:
            what = f"the amount in {currency} is unknown"
        why = f"{what}, so it cannot be judged against the tiers: it waits for {top.describe(None)}"
        return ApprovalNeed(top.number, top.approvers, why)
    above = [tier for tier in tiers if amount_major > tier.above[currency]]
    if not above:
        return None
    tier = above[-1]
    return ApprovalNeed(tier.number, tier.approvers, f"{amount_major} {currency} is in {tier.describe(currency)}")


def parse_approvals(node: Node, problems: Problems) -> tuple[ApprovalTier, ...]:
    """`approvals:` as written: a list of tiers; every problem goes to `problems`."""
    if isinstance(node, ScalarNode) and node.value in ("", "~", "null"):
        return ()
    if not isinstance(node, SequenceNode):
        problems.add(
            node,
            "`approvals` must be a list of tiers such as `- above: {USD: 100}` with `approvers: 1`, "
            f"not {describe(node)}",
            ProblemKind.WRONG_TYPE,
        )
        return ()
    if len(node.value) > MAX_TIERS:
        problems.add(node.value[MAX_TIERS], f"`approvals` has more than {MAX_TIERS} tiers", ProblemKind.OVER_LIMIT)
        return ()
    before = len(problems.items)
    tiers = [_tier(item, number, problems) for number, item in enumerate(node.value, start=1)]
    if len(problems.items) > before:
        return ()
    found = tuple(t for t in tiers if t is not None)
    _check_order(found, node, problems)
    return found if len(problems.items) == before else ()


def _tier(node: Node, number: int, problems: Problems) -> ApprovalTier | None:
    if not isinstance(node, MappingNode):
        problems.add(
            node, f"approval tier #{number} must be a mapping with `above` and `approvers`, not {describe(node)}"
        )
        return None
    entries: dict[str, tuple[Node, Node]] = {}
    for key, key_node, value in mapping_items(node, problems):
        if key not in TIER_KEYS:
            hint = did_you_mean(key, TIER_KEYS)
            problems.add(
                key_node,
                f"unknown key '{key}' in approval tier #{number}; allowed keys are above, approvers{hint}",
                ProblemKind.UNKNOWN_KEY,
            )
        else:
            entries.setdefault(key, (key_node, value))
    for missing in (k for k in TIER_KEYS if k not in entries):
        problems.add(node, f"approval tier #{number} has no `{missing}`", ProblemKind.MISSING_KEY)
    above = _amounts(entries["above"][1], number, problems) if "above" in entries else None
    approvers = _approvers(entries["approvers"][1], number, problems) if "approvers" in entries else None
    if above is None or approvers is None:
        return None
    line, col = position(node)
    return ApprovalTier(number, above, approvers, line, col)


def _amounts(node: Node, number: int, problems: Problems) -> dict[str, Decimal] | None:
    if not isinstance(node, MappingNode) or not node.value:
        problems.add(
            node,
            f"`above` of approval tier #{number} must be a currency map such as {{USD: 100, EUR: 90}}"
            f" (amounts in different currencies are not comparable), not {describe(node)}",
            ProblemKind.WRONG_TYPE,
        )
        return None
    amounts: dict[str, Decimal] = {}
    bad = False
    for cur_node, amount_node in node.value:
        code = cur_node.value if isinstance(cur_node, ScalarNode) else ""
        if not _CURRENCY.fullmatch(code):
            problems.add(cur_node, f"currency codes are three capital letters such as USD, not {describe(cur_node)}")
            bad = True
            continue
        try:
            amount = _decimal(amount_node, f"approvals tier #{number}")
        except OperandError as exc:
            problems.add(exc.node or amount_node, str(exc))
            bad = True
            continue
        if amount < 0:
            problems.add(amount_node, f"approval tier #{number}: {code} must be 0 or more, not {amount}")
            bad = True
        amounts[code] = amount
    return None if bad else amounts


def _approvers(node: Node, number: int, problems: Problems) -> int | None:
    try:
        value = scalar_value(node) if isinstance(node, ScalarNode) else None
    except Exception:
        value = None
    if type(value) is not int or value < 1:
        problems.add(
            node, f"`approvers` of approval tier #{number} must be a whole number, 1 or more, not {describe(node)}"
        )
        return None
    return value


def _check_order(tiers: tuple[ApprovalTier, ...], node: SequenceNode, problems: Problems) -> None:
    """Every tier names the same currencies, and each currency's amounts increase strictly from tier
    to tier (so that "the highest tier it is above" is one tier)."""
    if not tiers:
        return
    first = set(tiers[0].above)
    for tier in tiers:
        item = node.value[tier.number - 1]
        if set(tier.above) != first:
            extra, missing = sorted(set(tier.above) - first), sorted(first - set(tier.above))
            said = "; ".join(
                part
                for part in (
                    f"it names {', '.join(extra)}, which tier #1 does not" if extra else "",
                    f"it lacks {', '.join(missing)}, which tier #1 names" if missing else "",
                )
                if part
            )
            problems.add(item, f"approval tier #{tier.number} must name the same currencies as tier #1: {said}")
    for previous, tier in pairwise(tiers):
        item = node.value[tier.number - 1]
        for currency, amount in tier.above.items():
            earlier = previous.above.get(currency)
            if earlier is not None and amount <= earlier:
                problems.add(
                    item,
                    f"approval tier #{tier.number}: {currency} {amount} must be above tier #{previous.number}'s"
                    f" {earlier}; tiers go from the smallest amount to the largest",
                )
