"""The nouns of the rules engine: problems found in a rule file, compiled rules, decisions.

Everything here is immutable: a RuleSet is compiled once and then shared by every decision
(the web process and the workers may hold one for hours), and a Decision is a record that goes
to the audit log unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
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
    sites: frozenset[str] | None = None  # `sites:`: the Chargebee sites it applies to; None: every site
    site_positions: tuple[tuple[str, int, int], ...] = field(default=(), compare=False)  # each name's line, col

    def applies_to(self, event_type: object) -> bool:
        """Whether the `on:` filter lets this event type through."""
        return self.on is None or event_type in self.on

    def applies_to_site(self, site: str | None) -> bool:
        """Whether the `sites:` filter lets an event of `site` through. A site left unsaid (`None`: a
        tool deciding without naming one) passes a limited skip rule, which then protects, and
        stops a limited write_off rule, which then cannot act: doubt never writes off."""
        if self.sites is None:
            return True
        if site is None:
            return self.action == "skip"
        return site in self.sites


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
    all_rules: tuple[Rule, ...] | None = None  # every rule of the file when `rules` is one site's view
    site: str | None = None  # the site `rules` was chosen for (`for_site`); None: no site named

    def __post_init__(self) -> None:
        # (on, tests that must all hold, rule): a top-level `all` is unrolled into the loop of
        # `first_match`, saving a call per rule on the hot path.
        plan = tuple((rule.on, rule.condition.top_level_tests(), rule) for rule in self.rules)
        object.__setattr__(self, "plan", plan)

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry_run"

    @property
    def every_rule(self) -> tuple[Rule, ...]:
        """Every rule of the file, in file order, whichever site `rules` was chosen for."""
        return self.rules if self.all_rules is None else self.all_rules

    @property
    def site_limited(self) -> bool:
        """Whether any rule names `sites:`."""
        return any(rule.sites is not None for rule in self.every_rule)

    def for_site(self, site: str | None) -> RuleSet:
        """The rules that apply to events of `site` (Rule.applies_to_site), in file order, with the
        same version, mode and limits: what every decision about that site's invoices reads. A file
        without `sites:` is its own view. Views are kept on this (immutable) RuleSet."""
        if not self.site_limited:
            return self
        views: dict[str | None, RuleSet] = self.__dict__.setdefault("_site_views", {})  # shared by all views
        view = views.get(site)
        if view is None:
            every = self.every_rule
            chosen = tuple(rule for rule in every if rule.applies_to_site(site))
            view = replace(self, rules=chosen, all_rules=every, site=site)
            view.__dict__["_site_views"] = views
            views[site] = view
        return view

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
