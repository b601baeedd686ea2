"""What makes a killed job's retry safe: the invoice lock, the attempt mark written before a
write_off call, and the `written_off` mark committed in one transaction with its audit record
(docs/guarantees.md, "A worker killed with SIGKILL in the middle of a write_off")."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from redis.lock import Lock

from ..chargebee import RetryableError
from .audit import AuditRecord, Outcome
from .context import JobContext
from .recovery import watch_customer
from .trail import log_record, make_record

if TYPE_CHECKING:
    from .attempt import WriteOffAttempt

log = logging.getLogger(__package__)  # "reactor.jobs", the logger the job wing has always logged as

WRITTEN_OFF_TTL = 400 * 24 * 3600  # longer than any retry, replay or sweep horizon
ATTEMPT_TTL = 30 * 24 * 3600  # as long as a stored event: a replay from the dead letters still finds it


def acquire_invoice_lock(ctx: JobContext, invoice_id: str) -> Lock:
    """Wait for the invoice's lock as long as its TTL: a holder either releases it or, if it died,
    the lock expires within that time; so a wait this long fails only when a third job won the race."""
    ttl = ctx.settings.invoice_lock_ttl
    lock = ctx.redis.lock(ctx.keys.lock(invoice_id), timeout=ttl, blocking_timeout=ttl + 1)
    if not lock.acquire():
        raise RetryableError(f"invoice {invoice_id} is locked by another job")
    return lock


def attempt_key(ctx: JobContext, invoice_id: str) -> str:
    return ctx.keys.write_off_attempt(invoice_id)


def save_attempt(a: WriteOffAttempt, key: str, rule: str | None, comment: str | None) -> None:
    """Written before the POST: if the answer never arrives (worker killed, timeout), the next run
    knows a write_off of ours may have gone through, and with which key and comment."""
    mark = {
        "at": a.now.isoformat(),
        "key": key,
        "rule": rule,
        "comment": comment,
        "event_id": a.event.id or None,
        "job_id": a.job.id if a.job else None,
    }
    a.ctx.redis.set(attempt_key(a.ctx, a.invoice_id), json.dumps(mark), ex=ATTEMPT_TTL)


def load_attempt(ctx: JobContext, invoice_id: str) -> dict[str, Any] | None:
    raw = ctx.redis.get(attempt_key(ctx, invoice_id))
    if raw is None:
        return None
    try:
        attempt = json.loads(raw)
    except ValueError:
        return None
    return attempt if isinstance(attempt, dict) else None


def confirm_interrupted(a: WriteOffAttempt, earlier: dict[str, Any]) -> dict[str, Any]:
    """An earlier run sent write_off and never heard back (its attempt mark: `earlier`); the invoice
    fetched fresh (in `a.fresh`) shows a write-off, so the call went through. Record it now, once,
    instead of calling Chargebee again."""
    invoice = (a.fresh.invoice if a.fresh else None) or {}
    invoice_id = invoice["id"]
    mark = {
        "at": a.now.isoformat(),
        "rule": earlier.get("rule"),
        "event_id": earlier.get("event_id"),
        "recovered": True,
    }
    record = make_record(
        a.ctx,
        a.job,
        a.fresh,
        None,
        Outcome.WRITTEN_OFF,
        invoice_id=invoice_id,
        amount_due=invoice.get("write_off_amount"),
        event_id=earlier.get("event_id"),
        reason=f"write_off sent at {earlier.get('at')} by a run that did not see the answer; the invoice shows it",
        detail=f"recovered=true write_off_amount={invoice.get('write_off_amount')}",
    )
    record.rule = earlier.get("rule")
    record.action = "write_off"
    commit_written_off(a.ctx, invoice_id, mark, record, invoice, a.fresh.content if a.fresh else None)
    return Outcome.WRITTEN_OFF.result(rule=earlier.get("rule"), recovered=True)


def commit_written_off(
    ctx: JobContext,
    invoice_id: str,
    mark: dict[str, Any],
    record: AuditRecord,
    invoice: Mapping[str, Any] | None = None,
    content: Mapping[str, Any] | None = None,
) -> None:
    """The `written_off` mark and its audit record in one transaction: a crash between the two would
    otherwise leave a mark without a record, or let a retry record the write-off a second time. The
    invoice (Chargebee's answer) joins its customer's watch, where a payment of the customer's looks
    for money coming back; `content`: the event's, for the customer's excess payments then
    (reactor/jobs/recovery.py)."""
    with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.set(ctx.keys.written_off(invoice_id), json.dumps(mark), ex=WRITTEN_OFF_TTL)
        pipe.delete(attempt_key(ctx, invoice_id))
        watch_customer(pipe, ctx.keys, (invoice or {}).get("customer_id"), invoice_id, content or {})
        ctx.audit.queue(pipe, record)
        results = pipe.execute()
    entry_id = results[-1]
    record.id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    log_record(record)
