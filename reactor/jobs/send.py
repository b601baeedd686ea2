"""The write_off call and what its answer commits, the `send` and `commit` steps of
reactor/jobs/write_off.py: the budget taken right before the call, the attempt mark written before
the POST, the idempotency key that makes a repeat within Chargebee's window a replay instead of a
second write-off, and the `written_off` mark committed with its audit record.

Called under the invoice lock, on a fresh decision that says write_off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rq.job import Job

from ..chargebee import ChargebeeError, Throttled, WriteOffResult
from ..rules import Decision, Limits
from .audit import Outcome
from .budget import reserve
from .context import JobContext
from .marks import commit_written_off, save_attempt
from .trail import make_record
from .undone import write_off_generation


def idempotency_key(site: str, invoice_id: str, rule: str | None, generation: int = 0) -> str:
    """Stable per (site, invoice, rule), at most 100 characters as Chargebee requires. `generation`
    counts the undos of our write-off (reactor/jobs/undone.py): the write-off after an undo is a new
    request, which Chargebee must not answer with the replay of the undone one."""
    text = f"{site}\x00{invoice_id}\x00{rule or ''}" + (f"\x00{generation}" if generation else "")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"reactor-wo-{digest[:48]}"


def tell_budget_used_up(ctx: JobContext, reason: str, currency: str, now: datetime) -> None:
    """A budget refused a write-off: told once per budget and window (the held write-offs are told each)."""
    if "max_count_per_hour" in reason:
        once, ttl = f"budget:hour:{now:%Y-%m-%dT%H}", 2 * 3600
    else:
        once, ttl = f"budget:day:{now:%Y-%m-%d}:{currency}", 2 * 86400
    ctx.notices.add("budget", f"{reason} (UTC, {now:%Y-%m-%d %H:00})", once=once, once_ttl=ttl)


def send_write_off(
    ctx: JobContext,
    job: Job | None,
    event: dict[str, Any],
    invoice_id: str,
    decision: Decision,
    attempt: dict[str, Any] | None,
    *,
    limits: Limits,
    now: datetime,
    enforce_budget: bool,
    renew: Callable[[], None],
) -> WriteOffResult | str:
    """Take the budget, mark the attempt, and call write_off with a stable idempotency key and, on a
    repeat, the comment sent the first time. Returns Chargebee's answer, or the reason a budget
    refused (the caller holds the write-off; nothing was called)."""
    site = ctx.settings.chargebee_site or ctx.settings.api_base or ""
    key = idempotency_key(site, invoice_id, decision.rule, write_off_generation(ctx, invoice_id))
    comment = decision.comment
    if attempt is not None and attempt.get("key") == key:
        comment = attempt.get("comment")  # the same parameters, or Chargebee refuses the key (422)
    reservation = reserve(
        ctx.redis,
        limits,
        decision.currency or "",
        decision.amount_due or 0,
        now,
        prefix=ctx.keys.prefix,
        enforce=enforce_budget,
    )
    if isinstance(reservation, str):
        tell_budget_used_up(ctx, reservation, decision.currency or "", now)
        return reservation
    renew()
    save_attempt(ctx, invoice_id, key, decision.rule, comment, event, job, now)
    try:
        return ctx.chargebee.write_off(invoice_id, comment, key)
    except ChargebeeError as exc:
        if (exc.status is not None and exc.status < 500) or isinstance(exc, Throttled):
            reservation.give_back()  # refused, so certainly not written off; a timeout or 5xx may have been
        raise


def commit_write_off(
    ctx: JobContext,
    job: Job | None,
    event: dict[str, Any],
    fresh_event: dict[str, Any],
    invoice_id: str,
    decision: Decision,
    result: WriteOffResult,
    now: datetime,
) -> dict[str, Any]:
    """The `written_off` mark and its audit record in one transaction, with the credit note from
    Chargebee's answer; returns the job's result."""
    credit_note = (result.credit_note or {}).get("id")
    mark = {
        "at": now.isoformat(),
        "rule": decision.rule,
        "credit_note": credit_note,
        "event_id": event.get("id"),
        "replayed": result.replayed,
    }
    record = make_record(
        ctx,
        job,
        fresh_event,
        decision,
        Outcome.WRITTEN_OFF,
        amount_due=result.invoice.get("write_off_amount") or decision.amount_due,
        detail=f"credit_note={credit_note} replayed={str(result.replayed).lower()}",
    )
    record.credit_note = credit_note
    commit_written_off(ctx, invoice_id, mark, record)
    return Outcome.WRITTEN_OFF.result(rule=decision.rule, credit_note=credit_note)
