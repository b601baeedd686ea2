"""The sweep: list every unpaid invoice from Chargebee and decide on each as a webhook would.

Webhooks are not enough on their own: Chargebee sends none on day 90, `updated_at` does not move
when `dunning_status` changes, and an event lost (a machine crash inside Redis's last fsync second)
is never resent. The sweep closes those gaps.

- Listing: `status[in]=["payment_due","not_paid"]`, 100 a page, sorted by `date` (a stable order:
  Chargebee's offset encodes the last item's sort key), following `next_offset`. `due_date` is not a
  list filter at Chargebee, so it is filtered here (`min_days_overdue`).
- Each invoice becomes an event envelope `{"id": "sweep-<sweep id>-<invoice>", "event_type":
  "sweep", "content": {"invoice": ...}}`. Rules with an `on:` filter see swept invoices only if they
  list `sweep`; rules without `on:` see them too. A rule limited to `on: [payment_failed]` therefore
  does not start firing on a sweep unless ops add `sweep` to it.
- Live: a swept invoice whose decision is write_off is accepted exactly like a webhook event
  (`EventStore.accept`: dedupe by the event id, store, enqueue `evaluate`), so the worker's lock,
  marks, idempotency key, budgets and retries apply, and a repeated page makes no second job.
  Invoices no rule matches are not enqueued (that would be thousands of jobs deciding "no match").
- Checkpoint: after each page is fully handled, `{prefix}:sweep:checkpoint` holds the sweep id, the
  `next_offset` of the next page and the counts. A crashed sweep resumes from it: at most the page
  in progress is listed again, and its events are duplicates of the first pass.
- Every call goes through the context's ChargebeeClient, so the shared rate limit applies.
- Dry run: decide on each invoice, record nothing, write nothing off; return what would be written
  off. Where a rule reads the customer or subscription and it could matter, that one is fetched,
  as the worker would (reactor/jobs/facts.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..keys import EVALUATE_JOB, Keys
from ..rules import RuleSet, decide
from ..rules.event_types import SWEEP_EVENT_TYPE
from ..rules.facts import facts_worth_fetching, unresolved
from .audit import Outcome, spreadsheet_cell
from .context import Context, current_context
from .facts import complete_facts
from .stored_events import as_event

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
    """(invoices, next_offset) per page, starting at `offset` (None: the first page)."""
    while True:
        params = dict(LIST_PARAMS)
        if offset:
            params["offset"] = offset
        invoices, offset = client.list_invoices(params)
        yield invoices, offset
        if not offset:
            return


def sweep_event(invoice: dict[str, Any], sweep_id: str, now: datetime) -> dict[str, Any]:
    """The envelope a swept invoice is decided in (see the module docstring for `on:` filters)."""
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
    """Where a sweep stands; saved after each page is handled."""

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
class Candidate:
    """An invoice the rules would write off."""

    invoice_id: str
    customer_id: str
    rule: str
    amount_major: Decimal
    currency: str
    days_overdue: int | None


@dataclass
class SweepResult:
    checkpoint: Checkpoint
    candidates: list[Candidate] = field(default_factory=list)
    queued: int = 0


def days_overdue(invoice: dict[str, Any], now: datetime) -> int | None:
    due = invoice.get("due_date")
    if not isinstance(due, int | float):
        return None
    return max(0, int((now.timestamp() - due) // 86400))


def run_sweep(
    ctx: Context,
    *,
    dry_run: bool = False,
    resume: bool = True,
    min_days_overdue: int = 0,
    on_page: Callable[[Checkpoint, int], None] | None = None,
) -> SweepResult:
    """Sweep every unpaid invoice. Live: enqueue an evaluation for each one the rules would write
    off. Dry run: only collect them. `resume` continues an unfinished live sweep from its checkpoint."""
    key = checkpoint_key(ctx.keys.prefix)
    now = ctx.clock()
    previous = Checkpoint.load(ctx.redis, key) if resume and not dry_run else None
    if previous is not None and not previous.finished:
        point = previous
    else:
        point = Checkpoint(sweep_id=uuid.uuid4().hex[:12], started_at=now.isoformat(timespec="seconds"))
    result = SweepResult(point)
    if point.pages and not point.next_offset:
        return result
    ruleset: RuleSet = ctx.rules.current()
    for invoices, next_offset in pages(ctx.chargebee, point.next_offset):
        for invoice in invoices:
            overdue = days_overdue(invoice, now)
            if min_days_overdue and (overdue is None or overdue < min_days_overdue):
                continue
            event = sweep_event(invoice, point.sweep_id, now)
            decision = decide(ruleset, event, now)
            point.seen += 1
            # A listed invoice carries no customer or subscription: when a rule reads one and it
            # could matter, the worker fetches it (reactor/jobs/facts.py), so such invoices are queued too.
            worth = facts_worth_fetching(ruleset, event, now) if decision.blocked_by is None else frozenset()
            if decision.action != "write_off" and not worth:
                continue
            if (dry_run or decision.dry_run) and worth:  # nothing is queued: complete the facts here
                facts = complete_facts(ctx.chargebee, ruleset, event, now)
                decision = decide(ruleset, facts.event, now)
                if decision.action != "write_off" or unresolved(
                    ruleset, facts.event, now, decision.rule or "", facts.unknown
                ):
                    continue
            point.matched += 1
            if dry_run or decision.dry_run:
                result.candidates.append(
                    Candidate(
                        str(invoice.get("id")),
                        str(invoice.get("customer_id") or ""),
                        decision.rule or "",
                        decision.amount_due_major or Decimal(0),
                        decision.currency or "",
                        overdue,
                    )
                )
                continue
            if ctx.events.accept(as_event(event), EVALUATE_JOB).outcome == "queued":
                result.queued += 1
        point.pages += 1
        point.next_offset = next_offset
        point.finished = next_offset is None
        if not dry_run:
            point.save(ctx.redis, key)
        if on_page is not None:
            on_page(point, len(invoices))
    return result


def totals(candidates: list[Candidate]) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """(rule, currency) → (count, amount in major units)."""
    sums: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for c in candidates:
        count, amount = sums.get((c.rule, c.currency), (0, Decimal(0)))
        sums[(c.rule, c.currency)] = (count + 1, amount + c.amount_major)
    return dict(sorted(sums.items()))


def report_rows(candidates: list[Candidate]) -> Iterator[list[str]]:
    """The CSV: one row per invoice, then a totals section per rule per currency."""
    yield ["invoice", "customer", "rule", "amount", "currency", "days_overdue"]
    for c in candidates:
        yield [
            c.invoice_id,
            c.customer_id,
            c.rule,
            str(c.amount_major),
            c.currency,
            "" if c.days_overdue is None else str(c.days_overdue),
        ]
    yield []
    yield ["total", "rule", "count", "amount", "currency"]
    for (rule, currency), (count, amount) in totals(candidates).items():
        yield ["total", rule, str(count), str(amount), currency]


class ReportError(Exception):
    """The report cannot be written; the message names the file and the reason, in one line."""


def check_report_path(path: str | os.PathLike[str]) -> None:
    """Refuse, before a sweep, a report that could not be written: a directory, a missing or
    read-only directory, a read-only file. A full disk is only found when writing (write_report)."""
    target = Path(path)
    if target.is_dir():
        raise ReportError(f"cannot write the report to {path}: it is a directory")
    parent = target.parent
    if not parent.is_dir():
        raise ReportError(f"cannot write the report to {path}: no directory {parent}")
    if not os.access(target if target.exists() else parent, os.W_OK):
        raise ReportError(f"cannot write the report to {path}: permission denied")


def write_report(path: str | os.PathLike[str], candidates: list[Candidate]) -> None:
    """The CSV (report_rows) at `path`; any failure, a full disk (ENOSPC) included, as ReportError."""
    import csv

    try:
        with open(path, "w", newline="") as handle:
            csv.writer(handle).writerows([spreadsheet_cell(cell) for cell in row] for row in report_rows(candidates))
    except OSError as exc:
        raise ReportError(f"cannot write the report to {path}: {exc.strerror or exc}") from None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


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
