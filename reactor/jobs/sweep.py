"""The sweep: list every unpaid invoice from Chargebee and decide on each as a webhook would.

Webhooks are not enough on their own: Chargebee sends none on day 90, `updated_at` does not move
when `dunning_status` changes, and an event lost (a machine crash inside Redis's last fsync second)
is never resent. The sweep closes those gaps. Every call goes through the context's
ChargebeeClient, so the shared rate limit applies.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..ingest.envelope import Event
from ..keys import EVALUATE_JOB, Keys
from ..rules import Decision, RuleSet, decide, to_major
from ..rules.event_types import SWEEP_EVENT_TYPE
from ..rules.facts import facts_worth_fetching, unresolved
from ..rules.preview import PreviewPlan, preview_plan
from .audit import Outcome
from .context import JobContext, current_context
from .facts import RunFacts, complete_facts
from .preview import held_invoices, next_event, preview_decision
from .sweep_report import ANY_TRIGGER, HELD, NOT_PREVIEWED, Candidate

if TYPE_CHECKING:
    import redis

    from ..chargebee import ChargebeeClient

PAGE_SIZE = 100
SWEEP_JOB_TIMEOUT = 3600  # a sweep of 100,000 invoices lists 1,000 pages, within any rate limit
LIST_PARAMS: dict[str, Any] = {
    "status[in]": '["payment_due","not_paid"]',
    "sort_by[asc]": "date",
    "limit": PAGE_SIZE,
}


def pages(client: ChargebeeClient, offset: str | None = None) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
    """(invoices, next_offset) per page, starting at `offset` (None: the first page).

    `status[in]=["payment_due","not_paid"]`, 100 a page, sorted by `date`: a stable order, as
    Chargebee's offset encodes the last item's sort key. `due_date` is not a list filter at
    Chargebee, so `run_sweep` filters it (`min_days_overdue`)."""
    while True:
        params = dict(LIST_PARAMS)
        if offset:
            params["offset"] = offset
        invoices, offset = client.list_invoices(params)
        yield invoices, offset
        if not offset:
            return


def sweep_event(invoice: dict[str, Any], sweep_id: str, now: datetime) -> dict[str, Any]:
    """The envelope a swept invoice is decided in. Rules with an `on:` filter see swept invoices only
    if they list `sweep`; rules without `on:` see them too. A rule limited to `on: [payment_failed]`
    therefore does not start firing on a sweep unless ops add `sweep` to it."""
    return {
        "id": f"sweep-{sweep_id}-{invoice.get('id')}",
        "event_type": SWEEP_EVENT_TYPE,
        "source": "reactor_sweep",
        "object": "event",
        "api_version": "v2",
        "occurred_at": int(now.timestamp()),
        "content": {"invoice": invoice},
    }


@dataclass
class Checkpoint:
    """Where a sweep stands (`{prefix}:sweep:checkpoint`: the sweep id, the `next_offset` of the next
    page and the counts), saved after each page is fully handled. A crashed sweep resumes from it: at
    most the page in progress is listed again, and its events are duplicates of the first pass."""

    sweep_id: str
    next_offset: str | None = None
    pages: int = 0
    seen: int = 0
    matched: int = 0
    started_at: str = ""
    finished: bool = False

    @classmethod
    def load(cls, connection: redis.Redis, key: str) -> Checkpoint | None:
        raw = connection.get(key)
        try:
            data = json.loads(raw) if raw is not None else None
            return cls(**data) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            return None

    def save(self, connection: redis.Redis, key: str) -> None:
        connection.set(key, json.dumps(self.__dict__), ex=30 * 24 * 3600)


def checkpoint_key(prefix: str) -> str:
    return Keys(prefix).sweep_checkpoint()


@dataclass
class SweepResult:
    checkpoint: Checkpoint
    candidates: list[Candidate] = field(default_factory=list)  # would be written off (dry run), per trigger
    queued: int = 0
    plan: PreviewPlan = field(default_factory=PreviewPlan)  # the triggers a dry run decided on
    not_previewed: list[Candidate] = field(default_factory=list)  # dry run: decisions on a field only events carry
    held: list[Candidate] = field(default_factory=list)  # dry run: invoices in the held list, not decided


def days_overdue(invoice: dict[str, Any], now: datetime) -> int | None:
    due = invoice.get("due_date")
    if not isinstance(due, int | float):
        return None
    return max(0, int((now.timestamp() - due) // 86400))


def run_sweep(
    ctx: JobContext,
    *,
    dry_run: bool = False,
    resume: bool = True,
    min_days_overdue: int = 0,
    on_page: Callable[[Checkpoint, int], None] | None = None,
) -> SweepResult:
    """Sweep every unpaid invoice. `resume` continues an unfinished live sweep from its checkpoint.

    Live: a swept invoice whose decision is write_off is accepted exactly like a webhook event
    (`EventStore.accept`: dedupe by the event id, store, enqueue `evaluate`), so the worker's lock,
    marks, idempotency key, budgets and retries apply, and a repeated page makes no second job.
    Invoices no rule matches are not enqueued (that would be thousands of jobs deciding "no
    match"). Facts are fetched only for a rule in dry-run mode (its candidates are collected, not
    queued); an invoice it queues is decided by the worker on facts fetched afresh for that job.

    Dry run: decide on each invoice, record nothing, write nothing off; return what would be written
    off, the customer or subscription a rule reads fetched where it could matter, each one once for
    the whole run (`RunFacts`, as `reactor rules diff` fetches them). It also decides each invoice
    as Chargebee's next event of each type a rule listens to would bring it (`on_next_events`). An
    invoice in the held list (an undo, a budget: reactor/jobs/held.py, read only) is listed as held
    and not decided."""
    key = checkpoint_key(ctx.keys.prefix)
    now = ctx.clock()
    point = _starting_point(ctx, key, now, resume=resume and not dry_run)
    result = SweepResult(point)
    if point.pages and not point.next_offset:
        return result
    ruleset = ctx.rules.current()
    sweeper = _Sweeper(ctx, ruleset, now, result, RunFacts(ctx.chargebee), dry_run, min_days_overdue)
    if dry_run:
        result.plan = preview_plan(ruleset)
        sweeper.held = held_invoices(ctx.redis, ctx.keys.prefix)
    for invoices, next_offset in pages(ctx.chargebee, point.next_offset):
        for invoice in invoices:
            sweeper.sweep(invoice)
        point.pages += 1
        point.next_offset = next_offset
        point.finished = next_offset is None
        if not dry_run:
            point.save(ctx.redis, key)
        if on_page is not None:
            on_page(point, len(invoices))
    return result


def _starting_point(ctx: JobContext, key: str, now: datetime, *, resume: bool) -> Checkpoint:
    """The checkpoint of an unfinished sweep to resume, or a new sweep's."""
    previous = Checkpoint.load(ctx.redis, key) if resume else None
    if previous is not None and not previous.finished:
        return previous
    return Checkpoint(sweep_id=uuid.uuid4().hex[:12], started_at=now.isoformat(timespec="seconds"))


@dataclass
class _Sweeper:
    """One sweep's handling of each listed invoice: passed over, collected (dry run) or queued (live)."""

    ctx: JobContext
    ruleset: RuleSet
    now: datetime
    result: SweepResult
    facts: RunFacts  # this run's customers and subscriptions, each fetched at most once
    dry_run: bool
    min_days_overdue: int
    held: dict[str, str] = field(default_factory=dict)  # dry run: the held list, invoice id → reason

    def sweep(self, invoice: dict[str, Any]) -> None:
        point = self.result.checkpoint
        overdue = days_overdue(invoice, self.now)
        if self.min_days_overdue and (overdue is None or overdue < self.min_days_overdue):
            return
        invoice_id = str(invoice.get("id"))
        if self.dry_run and invoice_id in self.held:  # held stays held, whatever the rules say
            point.seen += 1
            self.result.held.append(self.candidate(invoice, None, overdue, ANY_TRIGGER, HELD, self.held[invoice_id]))
            return
        event = Event.from_data(sweep_event(invoice, point.sweep_id, self.now))
        decision = self.decision(event)
        if self.dry_run:
            self.on_next_events(invoice, overdue)
        if decision is None:
            return
        point.matched += 1
        if self.dry_run or decision.dry_run:
            self.result.candidates.append(self.candidate(invoice, decision, overdue))
        elif self.ctx.events.accept(event, EVALUATE_JOB).outcome == "queued":
            self.result.queued += 1

    def on_next_events(self, invoice: dict[str, Any], overdue: int | None) -> None:
        """Dry run: what Chargebee's next event of each type a rule listens to would do with the
        invoice as listed: a write-off, or a decision that could not be previewed (reactor/jobs/
        preview.py, reactor/rules/preview.py). Most rules are limited to webhooks (`on:
        [payment_failed, invoice_updated]`) and would otherwise never show; a decision resting on a
        field only the event carries is listed as not previewed."""
        for trigger in self.result.plan.webhook_triggers:
            event = next_event(invoice, trigger, self.result.checkpoint.sweep_id, self.now)
            previewed = preview_decision(self.facts, self.ruleset, event, self.now)
            decision, blind = previewed.decision, previewed.blind
            if blind is not None:
                candidate = self.candidate(invoice, decision, overdue, trigger, NOT_PREVIEWED, blind.reason())
                self.result.not_previewed.append(replace(candidate, rule=blind.rule))
            elif decision.action == "write_off" and previewed.facts_blocked is None:
                self.result.candidates.append(self.candidate(invoice, decision, overdue, trigger))

    @staticmethod
    def candidate(
        invoice: dict[str, Any],
        decision: Decision | None,
        overdue: int | None,
        on: str = SWEEP_EVENT_TYPE,
        outcome: str = "write_off",
        note: str = "",
    ) -> Candidate:
        customer = str(invoice.get("customer_id") or "")
        if decision is None:  # held: as listed
            currency = str(invoice.get("currency_code") or "").upper()
            amount = invoice.get("amount_due")
            major = to_major(amount, currency) if type(amount) is int and currency else Decimal(0)
            return Candidate(str(invoice.get("id")), customer, "", major, currency, overdue, on, outcome, note)
        amount_major = decision.amount_due_major or Decimal(0)
        rule, currency = decision.rule or "", decision.currency or ""
        return Candidate(str(invoice.get("id")), customer, rule, amount_major, currency, overdue, on, outcome, note)

    def decision(self, event: Event) -> Decision | None:
        """The decision to act on (counted as seen), or None when the invoice is not one to write off.

        A listed invoice carries no customer or subscription: when a rule reads one and it could
        matter, the worker fetches it (reactor/jobs/facts.py), so such invoices are queued too; a dry
        run queues nothing, so it completes the facts here, each resource fetched once a run. A
        fetch that fails (429, 5xx, timeout) is not kept and stops the sweep, as it always has."""
        ruleset, now = self.ruleset, self.now
        decision = decide(ruleset, event.data, now)
        self.result.checkpoint.seen += 1
        worth = facts_worth_fetching(ruleset, event.data, now) if decision.blocked_by is None else frozenset()
        if decision.action != "write_off" and not worth:
            return None
        if (self.dry_run or decision.dry_run) and worth:
            facts = complete_facts(self.facts, ruleset, event, now)
            decision = decide(ruleset, facts.event.data, now)
            rule = decision.rule or ""
            if decision.action != "write_off" or unresolved(ruleset, facts.event.data, now, rule, facts.unknown):
                return None
        return decision


def scheduled_sweep() -> dict[str, Any]:
    """RQ job that `reactor cron` enqueues on schedule: a live sweep that resumes an interrupted one.

    Two schedulers, or a sweep still running when the next is due, must not list Chargebee twice
    at once: a Redis lock held for the run makes the later one a no-op."""
    ctx = current_context()
    lock = ctx.redis.lock(ctx.keys.sweep_lock(), timeout=SWEEP_JOB_TIMEOUT, blocking=False)
    if not lock.acquire():
        return Outcome.SKIPPED.result(reason="another sweep is running")
    try:
        result = run_sweep(ctx, resume=True)
    finally:
        with contextlib.suppress(Exception):
            lock.release()
    point = result.checkpoint
    return Outcome.SWEPT.result(
        sweep_id=point.sweep_id, pages=point.pages, seen=point.seen, matched=point.matched, queued=result.queued
    )
