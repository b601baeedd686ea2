"""What a rules change would change: two verdicts per open invoice and trigger, compared (`reactor
rules diff`).

Pure: the caller (reactor/console/rules_diff.py) lists the invoices, completes the facts and decides
under both files on each trigger of the preview plan (reactor/rules/preview.py); this module turns
the two decisions into verdicts, applies the budgets (`apply_budgets`) and compares. No Redis, HTTP
or clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from .approvals import ApprovalTier, approval_needed
from .event_types import SWEEP_EVENT_TYPE
from .model import Decision, Limits
from .money import minor_factor, to_major
from .preview import PreviewPlan

# A verdict's outcome: what the reactor would do with the invoice under one rules file. UNKNOWN: the
# decision rests on a field only the event carries (reactor/rules/preview.py `blind_read`).
WRITE_OFF, DRY_RUN, HELD, BLOCKED, SKIP, NO_MATCH = "write_off", "dry_run", "held", "blocked", "skip", "no_match"
AWAITS_APPROVAL = "awaits_approval"  # a write-off above an approval tier (reactor/rules/approvals.py)
UNKNOWN = "not_previewed"
OUTCOMES = (WRITE_OFF, DRY_RUN, HELD, BLOCKED, SKIP, NO_MATCH, UNKNOWN, AWAITS_APPROVAL)

# A change's kind, from the old verdict to the new one.
NEWLY_WRITTEN_OFF = "newly_written_off"
NO_LONGER_WRITTEN_OFF = "no_longer_written_off"
OTHER_RULE = "other_rule"
OTHER_COMMENT = "other_comment"
NEWLY_HELD = "held"
NEWLY_AWAITING = "awaits_approval"
NEWLY_BLOCKED = "blocked"
OTHER_OUTCOME = "other_outcome"
NOT_PREVIEWED = "not_previewed"
CHANGE_KINDS = (
    NEWLY_WRITTEN_OFF,
    NO_LONGER_WRITTEN_OFF,
    OTHER_RULE,
    OTHER_COMMENT,
    NEWLY_HELD,
    NEWLY_BLOCKED,
    OTHER_OUTCOME,
    NOT_PREVIEWED,
    NEWLY_AWAITING,
)
CHANGE_MEANINGS = {
    NEWLY_WRITTEN_OFF: "written off under the new rules, not under the old",
    NO_LONGER_WRITTEN_OFF: "written off under the old rules, not under the new",
    OTHER_RULE: "written off under both, by another rule",
    OTHER_COMMENT: "written off under both by the same rule, with another comment",
    NEWLY_HELD: "a write-off under the new rules that a budget would hold",
    NEWLY_BLOCKED: "a write_off rule matches under the new rules, but a safety check or a missing fact blocks it",
    OTHER_OUTCOME: "no write-off either way, decided otherwise (skip, no match, dry run)",
    NOT_PREVIEWED: "the files decide otherwise, and a decision rests on a field only the event carries: unknown",
    NEWLY_AWAITING: "a write-off under the new rules that waits for approvers (approvals: tiers)",
}


@dataclass(frozen=True)
class Verdict:
    """What the reactor would do with one invoice under one rules file."""

    outcome: str
    rule: str | None = None
    comment: str | None = None
    reason: str = ""

    @property
    def writes_off(self) -> bool:
        return self.outcome == WRITE_OFF


def verdict_of(
    decision: Decision, facts_blocked: str | None = None, approvals: tuple[ApprovalTier, ...] = ()
) -> Verdict:
    """The verdict of a decision; `facts_blocked` is why a write-off cannot rest on the facts known
    (reactor/rules/facts.py `unresolved`), which blocks it as the worker would (`facts_missing`);
    `approvals` the file's tiers: a live write-off above one waits for approvers."""
    if decision.action == "write_off":
        if facts_blocked is not None:
            return Verdict(BLOCKED, decision.rule, None, f"facts missing: {facts_blocked}")
        need = approval_needed(approvals, decision.currency, decision.amount_due_major)
        if need is not None and not decision.dry_run:
            return Verdict(AWAITS_APPROVAL, decision.rule, decision.comment, f"awaits approval: {need.why}")
        return Verdict(DRY_RUN if decision.dry_run else WRITE_OFF, decision.rule, decision.comment, decision.reason)
    if decision.action == "skip":
        return Verdict(BLOCKED if decision.blocked_by else SKIP, decision.rule, None, decision.reason)
    return Verdict(NO_MATCH, None, None, decision.reason)


@dataclass(frozen=True)
class InvoiceVerdicts:
    """One open invoice, as listed, with its verdict under the old and the new rules on one trigger:
    `sweep` (as the sweep finds it) or an event type (if Chargebee's next such event arrived now)."""

    invoice_id: str
    customer_id: str
    currency: str
    amount_due: int  # Chargebee's minor units
    amount_major: Decimal
    old: Verdict
    new: Verdict
    on: str = SWEEP_EVENT_TYPE


@dataclass(frozen=True)
class BudgetsUsed:
    """What the budget counters had used when read: minor units per currency in the UTC day `day`
    (YYYY-MM-DD) and write-offs in the UTC hour `hour` (YYYY-MM-DDTHH); `source` says where from."""

    spent: dict[str, int]
    count: int
    day: str
    hour: str
    source: str = "Redis"

    def at(self, now: datetime) -> BudgetsUsed:
        """What of it counts at `now`: another UTC day's amounts or another hour's count count nothing."""
        utc = now.astimezone(timezone.utc)
        same_day, same_hour = utc.strftime("%Y-%m-%d") == self.day, utc.strftime("%Y-%m-%dT%H") == self.hour
        return replace(self, spent=self.spent if same_day else {}, count=self.count if same_hour else 0)

    def as_dict(self) -> dict[str, Any]:
        return {"spent": dict(sorted(self.spent.items())), "count": self.count, "day": self.day, "hour": self.hour}

    @classmethod
    def from_dict(cls, data: object, source: str) -> BudgetsUsed | None:
        """The counts a snapshot kept (`as_dict`), or None when it kept none (null). Anything else
        raises ValueError naming the field: counts that cannot be read would start the budgets from
        a wrong place (a negative count gives a budget more than it has)."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ValueError("budgets_used must be an object (or null)")
        spent, count, day, hour = data.get("spent"), data.get("count"), data.get("day"), data.get("hour")
        if not isinstance(spent, dict):
            raise ValueError("budgets_used.spent must be an object of minor units per currency")
        for currency, amount in spent.items():
            if not is_counter(amount):
                raise ValueError(f"budgets_used.spent[{currency!r}] must be a whole number from 0 to {COUNTER_MAX}")
        if not is_counter(count):
            raise ValueError(f"budgets_used.count must be a whole number from 0 to {COUNTER_MAX}")
        if not (isinstance(day, str) and _written_as(day, "%Y-%m-%d")):
            raise ValueError("budgets_used.day must be a UTC day, YYYY-MM-DD")
        if not (isinstance(hour, str) and _written_as(hour, "%Y-%m-%dT%H")):
            raise ValueError("budgets_used.hour must be a UTC hour, YYYY-MM-DDTHH")
        return cls(dict(spent), count, day, hour, source)


COUNTER_MAX = 2**63 - 1
"""The most a Redis counter holds (a signed 64-bit integer); Chargebee's amounts are int64 too."""


def is_counter(value: object) -> bool:
    """A count or an amount in minor units as Redis counts it: a whole number from 0 to COUNTER_MAX."""
    return type(value) is int and 0 <= value <= COUNTER_MAX


def _written_as(text: str, layout: str) -> bool:
    """Whether `text` is a time as strftime(`layout`) writes it (zero-padded, ASCII digits)."""
    try:
        return datetime.strptime(text, layout).strftime(layout) == text
    except ValueError:
        return False


def budgets_start(used: BudgetsUsed | None, limits: Limits, now: datetime) -> str:
    """One line: what the budgets of `limits` start from at `now`, e.g. `budgets: USD 120.00 of 500
    used today, 3 of 10 write-offs this hour (Redis, 2026-11-26T12)`."""
    day, hourly = limits.max_per_day, limits.max_count_per_hour
    if day is None and hourly is None:
        return "budgets: none (no limits.max_per_day or limits.max_count_per_hour)"
    if used is None:
        return "budgets: from zero (the snapshot predates kept budget counts: as on a fresh day and hour)"
    counted = used.at(now)
    parts = []
    if day is not None:
        for currency in sorted(set(counted.spent) | set(day.per_currency)):
            amount, cap = to_major(counted.spent.get(currency, 0), currency), day.major_for(currency)
            parts.append(f"{currency} {amount} of {cap if cap is not None else 'no budget'} used today")
        if not parts:
            parts.append(f"nothing of {day.describe()} used today")
    if hourly is not None:
        parts.append(f"{counted.count} of {hourly} write-offs this hour")
    stale = "" if counted == used else "; the counts are of another day or hour, so from zero where they differ"
    return f"budgets: {', '.join(parts)} ({used.source}, day {used.day}, hour {used.hour}{stale})"


def held_verdict(reason: str, rule: str | None = None) -> Verdict:
    """The verdict on an invoice parked in the held list (reactor/jobs/held.py: an undo, a budget):
    held under both files and on every trigger, whatever the rules say, until a person releases it."""
    return Verdict(HELD, rule, None, f"held ({reason or 'no reason recorded'}) until `reactor held release`")


def holds_line(held: Mapping[str, str] | None, listed: Iterable[str], source: str = "Redis") -> str:
    """One line: which listed invoices are held and stay held, e.g. `held: 1 listed invoice is held
    and stays held under both files: inv_1 (undone) (Redis)`; `held: unknown ...` when not known."""
    if held is None:
        return "held: unknown (the snapshot predates kept holds): a held invoice shows as the rules decide it"
    ids = [invoice_id for invoice_id in listed if invoice_id in held]
    if not ids:
        return f"held: no listed invoice is held ({source})"
    shown = ", ".join(f"{i} ({held[i] or 'no reason'})" for i in ids[:HELD_SHOWN])
    more = f" and {len(ids) - HELD_SHOWN} more" if len(ids) > HELD_SHOWN else ""
    verb = "invoice is held and stays" if len(ids) == 1 else "invoices are held and stay"
    return f"held: {len(ids)} listed {verb} held under both files: {shown}{more} ({source})"


HELD_SHOWN = 10  # held invoices named in the `held:` line


def apply_budgets(
    limits: Limits, rows: Iterable[InvoiceVerdicts], side: str, used: BudgetsUsed | None = None
) -> list[InvoiceVerdicts]:
    """`rows` with the write-offs of `side` ("old" or "new") that would pass a budget turned to
    `held`, walked in the order given from what `used` had already taken (from zero when None);
    the same reasons as reactor/jobs/budget.py `reserve`."""
    # Budgets (`limits.max_per_day`, `limits.max_count_per_hour`) are counted as reactor/jobs/budget.py
    # counts them, as they would be on the day: each trigger on its own (the one thing that happens
    # next), from what today's counters had already used at the diff's instant (`BudgetsUsed`, read
    # by the caller without reserving anything; from zero when not known, e.g. a snapshot taken
    # before it kept them), then in listing order, as if every would-be write-off ran at that
    # instant: a write-off that would pass a budget is `held` and takes nothing from it, so a smaller
    # one after it may still fit.
    day, hourly = limits.max_per_day, limits.max_count_per_hour
    spent: dict[str, int] = dict(used.spent) if used is not None else {}
    count = used.count if used is not None else 0
    result = []
    for row in rows:
        verdict: Verdict = getattr(row, side)
        if not verdict.writes_off or (day is None and hourly is None):
            result.append(row)
            continue
        why = None
        if day is not None:
            major = day.major_for(row.currency)
            cap = int(major * minor_factor(row.currency)) if major is not None else 0
            if spent.get(row.currency, 0) + row.amount_due > cap:
                why = (
                    f"limits.max_per_day has no budget for {row.currency}"
                    if major is None
                    else f"limits.max_per_day for {row.currency} ({day.describe(row.currency)}) would be passed today"
                )
        if why is None and hourly is not None and count + 1 > hourly:
            why = f"limits.max_count_per_hour ({hourly}) reached this hour"
        if why is not None:
            result.append(replace(row, **{side: replace(verdict, outcome=HELD, reason=why)}))
            continue
        spent[row.currency] = spent.get(row.currency, 0) + row.amount_due
        count += 1
        result.append(row)
    return result


def change_kind(old: Verdict, new: Verdict, alike: bool = False) -> str | None:
    """The kind of change from `old` to `new`, or None when nothing that matters changed. A verdict
    that could not be previewed is a change unless both files decide the trigger `alike`, rule for
    rule: whatever the unknown field holds, they then decide the same."""
    if UNKNOWN in (old.outcome, new.outcome):
        return None if alike else NOT_PREVIEWED
    if old.writes_off and new.writes_off:
        if old.rule != new.rule:
            return OTHER_RULE
        return OTHER_COMMENT if old.comment != new.comment else None
    if new.writes_off:
        return NEWLY_WRITTEN_OFF
    if old.outcome == new.outcome:
        return None
    if new.outcome == HELD:
        return NEWLY_HELD
    if new.outcome == AWAITS_APPROVAL:
        return NEWLY_AWAITING
    if new.outcome == BLOCKED:
        return NEWLY_BLOCKED
    if old.writes_off:
        return NO_LONGER_WRITTEN_OFF
    return OTHER_OUTCOME


@dataclass(frozen=True)
class Change:
    row: InvoiceVerdicts
    kind: str


Money = dict[str, tuple[int, Decimal]]  # currency → (count, amount in major units)


def _add(sums: Money, currency: str, amount: Decimal, sign: int = 1) -> None:
    count, total = sums.get(currency, (0, Decimal(0)))
    sums[currency] = (count + sign, total + sign * amount)


@dataclass
class Totals:
    """The totals of one trigger's verdicts."""

    by_kind: dict[str, Money] = field(default_factory=dict)  # change kind → per currency
    written_off: dict[str, Money] = field(default_factory=lambda: {"old": {}, "new": {}})  # side → per currency
    by_rule: dict[str, dict[str, Money]] = field(default_factory=dict)  # rule → "old"/"new" → per currency
    outcomes: dict[str, dict[str, int]] = field(
        default_factory=lambda: {side: dict.fromkeys(OUTCOMES, 0) for side in ("old", "new")}
    )  # "old"/"new" → outcome → count

    def kind_counts(self) -> dict[str, int]:
        return {kind: sum(n for n, _ in self.by_kind.get(kind, {}).values()) for kind in CHANGE_KINDS}


@dataclass
class RulesDiff:
    """The comparison: every change on every trigger, and the totals people read first.

    `by_kind`, `written_off`, `by_rule`, `outcomes` and `kind_counts()` are the sweep's (as a swept
    invoice is decided); `totals` holds them per trigger, the sweep's too."""

    rows: list[InvoiceVerdicts]
    changes: list[Change] = field(default_factory=list)
    totals: dict[str, Totals] = field(default_factory=dict)  # trigger → its totals, in the plan's order
    newly_written_off: Money = field(default_factory=dict)  # per currency, each invoice once on any trigger
    plan: PreviewPlan = field(default_factory=PreviewPlan)
    budgets: str = ""  # what the budgets started from (budgets_start), one line
    held: str = ""  # which listed invoices are held (holds_line), one line

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def invoices(self) -> int:
        """How many invoices were listed (each has one row per trigger)."""
        return len({row.invoice_id for row in self.rows})

    @property
    def changed_invoices(self) -> int:
        """How many invoices change on some trigger."""
        return len({change.row.invoice_id for change in self.changes})

    @property
    def not_previewed(self) -> bool:
        """A change could not be previewed: a decision rests on a field only the event carries, or a
        rule reading one changed between the files. Never "no change"."""
        return any(c.kind == NOT_PREVIEWED for c in self.changes) or bool(self.plan.blind_changed)

    def _sweep(self) -> Totals:
        return self.totals.get(SWEEP_EVENT_TYPE) or Totals()

    @property
    def by_kind(self) -> dict[str, Money]:
        return self._sweep().by_kind

    @property
    def written_off(self) -> dict[str, Money]:
        return self._sweep().written_off

    @property
    def by_rule(self) -> dict[str, dict[str, Money]]:
        return self._sweep().by_rule

    @property
    def outcomes(self) -> dict[str, dict[str, int]]:
        return self._sweep().outcomes

    def kind_counts(self) -> dict[str, int]:
        return self._sweep().kind_counts()


def compare(rows: Iterable[InvoiceVerdicts], plan: PreviewPlan | None = None) -> RulesDiff:
    """Every invoice whose verdict changed on a trigger, with totals per trigger, change kind,
    currency and rule; and what is newly written off on any trigger, each invoice counted once (it
    is written off at most once, whichever event comes first)."""
    plan = plan if plan is not None else PreviewPlan()
    diff = RulesDiff(rows=list(rows), plan=plan)
    diff.totals = {trigger: Totals() for trigger in plan.triggers}
    newly: set[str] = set()
    for row in diff.rows:
        totals = diff.totals.setdefault(row.on, Totals())
        for side in ("old", "new"):
            verdict: Verdict = getattr(row, side)
            totals.outcomes[side][verdict.outcome] += 1
            if verdict.writes_off:
                _add(totals.written_off[side], row.currency, row.amount_major)
                per_rule = totals.by_rule.setdefault(verdict.rule or "", {"old": {}, "new": {}})
                _add(per_rule[side], row.currency, row.amount_major)
        kind = change_kind(row.old, row.new, alike=row.on in plan.alike)
        if kind is None:
            continue
        diff.changes.append(Change(row, kind))
        _add(totals.by_kind.setdefault(kind, {}), row.currency, row.amount_major)
        if kind == NEWLY_WRITTEN_OFF and row.invoice_id not in newly:
            newly.add(row.invoice_id)
            _add(diff.newly_written_off, row.currency, row.amount_major)
    for totals in diff.totals.values():
        totals.by_rule = dict(sorted(totals.by_rule.items()))
    return diff
