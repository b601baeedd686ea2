"""The nouns of the rules engine: problems found in a rule file, compiled rules, decisions.

Everything here is immutable: a RuleSet is compiled once and then shared by every decision
(the web process and the workers may hold one for hours), and a Decision is a record that goes
to the audit log unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .money import MoneyThreshold
from .problems import RuleProblem

if TYPE_CHECKING:
    from .approvals import ApprovalTier
    from .conditions import Condition


@dataclass(frozen=True)
class Limits:
    """Guardrails no rule can pass. `max_write_off` is per invoice, in major units.

    `max_per_day` (major units per currency per UTC day) and `max_count_per_hour` (write-offs per
    UTC clock hour) are budgets: they need counters in Redis, so the job layer checks them right
    before calling write_off (reactor/jobs/budget.py) and holds what would pass them."""

    max_write_off: MoneyThreshold | None = None
    max_per_day: MoneyThreshold | None = None
    max_count_per_hour: int | None = None


@dataclass(frozen=True, eq=False)
class Rule:
    """One compiled rule. `condition` is a predicate tree built once at load time."""

    name: str
    action: str  # "write_off" | "skip"
    condition: Condition
    on: frozenset[str] | None = None  # None: any event type
    comment: str | None = None  # the template as written; None uses DEFAULT_COMMENT
    description: str | None = None
    line: int = 0
    col: int = 0
    while_collecting: str = "wait"  # "wait" | "write_off": may it write off while Chargebee still collects?
    apply_credits_first: bool = False  # apply the customer's refundable credits before writing off the rest

    def applies_to(self, event_type: object) -> bool:
        """Whether the `on:` filter lets this event type through."""
        return self.on is None or event_type in self.on


@dataclass(frozen=True, eq=False)
class RuleSet:
    """A whole, valid rule file. `version` identifies its exact text (first 12 hex of sha256)."""

    version: str
    mode: str  # "live" | "dry_run"
    rules: tuple[Rule, ...]
    limits: Limits = field(default_factory=Limits)
    filename: str = "rules.yaml"
    warnings: tuple[RuleProblem, ...] = ()  # not errors: the file is in force; `rules check` shows them
    approvals: tuple[ApprovalTier, ...] = ()  # `approvals:` tiers (reactor/rules/approvals.py); empty: none

    def __post_init__(self) -> None:
        # (on, tests that must all hold, rule): a top-level `all` is unrolled into the loop of
        # `first_match`, saving a call per rule on the hot path.
        plan = tuple((rule.on, rule.condition.top_level_tests(), rule) for rule in self.rules)
        object.__setattr__(self, "plan", plan)

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry_run"

    def rule(self, name: str) -> Rule | None:
        """The rule called `name`, if any."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        return None


@dataclass(frozen=True)
class Decision:
    """What the rules say about one event; recorded as is by the audit log."""

    action: str  # "write_off" | "skip" | "none"
    rule: str | None
    reason: str
    comment: str | None
    invoice_id: str | None
    currency: str | None
    amount_due: int | None
    amount_due_major: Decimal | None
    dry_run: bool
    rules_version: str
    blocked_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: Decimal becomes its string, so "12.50" keeps its digits."""
        data = asdict(self)
        if self.amount_due_major is not None:
            data["amount_due_major"] = str(self.amount_due_major)
        return data
