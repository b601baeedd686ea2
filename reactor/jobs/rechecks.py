"""Re-checks: decide again on an invoice at the moment a time-based rule can first match (Chargebee
sends no webhook on day 90). One pending re-check per invoice, a Redis record with the event to
decide on and an RQ job scheduled at the moment; a settled invoice cancels it. Scheduling and
cancelling are recorded in the audit (`recheck_scheduled`, `recheck_cancelled`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from ..chargebee import NotFoundError, Throttled
from ..ingest.envelope import Event
from ..ingest.events import retry_policy
from ..keys import RECHECK_JOB
from ..rules import Decision, RuleSet, decide, earliest_recheck
from ..rules.fields import Subject
from .attempt import WriteOffAttempt
from .audit import Outcome
from .retries import defer
from .trace.decisions import record_decision
from .trace.store import TraceLog
from .trail import recheck_outcome, record_outcome
from .write_off import write_off_invoice

if TYPE_CHECKING:
    from .context import JobContext

log = logging.getLogger(__name__)

SETTLED_STATUSES = frozenset({"paid", "voided"})
SETTLING_OUTCOMES = frozenset({Outcome.WRITTEN_OFF, Outcome.ALREADY_WRITTEN_OFF, Outcome.SETTLED_ELSEWHERE})
"""A write-off's outcomes that mean the invoice is settled: its pending re-check ends."""
MAX_STEPS = 32
"""How many later moments `next_write_off_moment` tries: each is a day-count boundary of a rule."""

# Deletes the pending record only if it is still the one this run started from (KEYS[1], ARGV[1]
# the token): a newer event may have replaced it meanwhile, and that schedule must stand.
_DELETE_IF_TOKEN = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['token'] == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""


def recheck_job_id(invoice_id: str, moment: datetime, site: str | None = None) -> str:
    """Deterministic per (invoice, moment) and safe for RQ's job id rules, like
    `events.evaluation_job_id`. The moment is part of it because a re-check that runs may schedule
    the next one: reusing its own id would let RQ's bookkeeping of the finishing job (status,
    result TTL on the job hash) overwrite the new schedule. A site other than the home site (`site`)
    is in the digest: the same invoice id on two sites is two invoices."""
    named = invoice_id if site is None else f"{site}\x00{invoice_id}"
    digest = hashlib.sha256(named.encode()).hexdigest()[:40]
    return f"recheck-x{digest}-{int(moment.timestamp())}"


def is_settled(invoice: dict[str, Any]) -> bool:
    """Paid, voided, deleted or written off: no rule can ever act on it again."""
    return (
        invoice.get("status") in SETTLED_STATUSES
        or bool(invoice.get("deleted"))
        or (isinstance(invoice.get("write_off_amount"), int) and invoice["write_off_amount"] > 0)
    )


def next_write_off_moment(ruleset: RuleSet, event: Event, now: datetime) -> datetime | None:
    """The first moment after `now` at which the rules would decide write_off on this event if only
    time passed, or None. Pure. A moment where a rule could start to match but an earlier rule
    (a skip) or a guardrail would decide otherwise is passed over, so no re-check is wasted on it."""
    moment = now
    for _ in range(MAX_STEPS):
        candidate = earliest_recheck(ruleset, Subject(event.data, moment), moment)
        if candidate is None or candidate <= moment:
            return None
        if decide(ruleset, event.data, candidate).action == "write_off":
            return candidate
        moment = candidate
    return None


def load_pending(ctx: JobContext, invoice_id: str) -> dict[str, Any] | None:
    raw = ctx.redis.get(ctx.keys.recheck(invoice_id))
    try:
        pending = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return pending if isinstance(pending, dict) and isinstance(pending.get("event"), dict) else None


def schedule(ctx: JobContext, job: Job | None, event: Event, ruleset: RuleSet, now: datetime) -> datetime | None:
    """Schedule (or move) the invoice's one re-check to the first moment a write_off can be decided;
    None, and nothing changed, when waiting cannot help."""
    invoice_id = event.invoice_id
    if invoice_id is None:
        return None
    moment = next_write_off_moment(ruleset, event, now)
    if moment is None:
        return None
    job_id = recheck_job_id(invoice_id, moment, ctx.events.site)
    if job is not None and job.id == job_id:  # started early (clock skew) and found the same moment
        job_id = f"{job_id}-again"
    previous = load_pending(ctx, invoice_id)
    _save_pending(ctx, invoice_id, moment, event, job_id, now)
    if previous is not None and previous.get("job_id") != job_id:
        _drop_job(ctx, job, previous.get("job_id"))
    future: Decision = decide(ruleset, event.data, moment)
    record_outcome(
        ctx,
        job,
        event,
        future,
        Outcome.RECHECK_SCHEDULED,
        reason=f"rule {future.rule} can decide write_off at {moment.isoformat()}; re-checking then",
        detail=f"at={moment.isoformat()}",
    )
    return moment


def _save_pending(ctx: JobContext, invoice_id: str, moment: datetime, event: Event, job_id: str, now: datetime) -> None:
    """The pending record and its RQ job at `moment`, in one transaction: a re-check never runs
    without the event it decides on, nor is a record left with no job to run it."""
    pending = {
        "at": moment.isoformat(),
        "event": event.data,
        "job_id": job_id,
        "token": uuid.uuid4().hex,
        "scheduled_at": now.isoformat(),
    }
    ttl = int((moment - now).total_seconds()) + ctx.settings.event_ttl
    with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.set(ctx.keys.recheck(invoice_id), json.dumps(pending), ex=ttl)
        ctx.queue.enqueue_at(
            moment,
            RECHECK_JOB,
            invoice_id,
            job_id=job_id,
            retry=retry_policy(ctx.settings),
            job_timeout=ctx.settings.job_timeout,
            result_ttl=24 * 3600,
            failure_ttl=ctx.settings.event_ttl,
            description=f"re-check invoice {invoice_id}",
            pipeline=pipe,
        )
        pipe.execute()


def cancel(ctx: JobContext, job: Job | None, event: Event | None, invoice_id: str, reason: str) -> bool:
    """Drop the invoice's pending re-check, if any, and remove its scheduled job. True if one was dropped."""
    pending = load_pending(ctx, invoice_id)
    if not ctx.redis.delete(ctx.keys.recheck(invoice_id)):
        return False
    _drop_job(ctx, job, (pending or {}).get("job_id"))
    record_outcome(ctx, job, event, None, Outcome.RECHECK_CANCELLED, invoice_id=invoice_id, reason=reason)
    return True


def _drop_job(ctx: JobContext, job: Job | None, job_id: object) -> None:
    """Remove a scheduled (or queued, not yet started) re-check job; a running one, or the caller
    itself, is left to RQ: it finds its pending record gone or replaced and does nothing."""
    if not isinstance(job_id, str) or (job is not None and job.id == job_id):
        return
    try:
        scheduled = Job.fetch(job_id, connection=ctx.redis)
    except NoSuchJobError:
        return
    if scheduled.get_status(refresh=False) in (JobStatus.SCHEDULED, JobStatus.QUEUED):
        scheduled.delete()


def after_decision(ctx: JobContext, job: Job | None, event: Event, ruleset: RuleSet, now: datetime) -> None:
    """After an event was decided without a write-off: a settled invoice cancels its re-check, an
    open one that time can still bring under a rule gets (or moves) its re-check."""
    invoice, invoice_id = event.invoice or {}, event.invoice_id
    if invoice_id is None:
        return
    if is_settled(invoice):
        cancel(ctx, job, event, invoice_id, f"the invoice is {invoice.get('status')} ({event.data.get('event_type')})")
        return
    schedule(ctx, job, event, ruleset, now)


def after_write_off(ctx: JobContext, job: Job | None, event: Event, outcome: str | None) -> None:
    """A write-off that happened (ours or Chargebee's) ends the invoice's pending re-check."""
    invoice_id = event.invoice_id
    if outcome in SETTLING_OUTCOMES and invoice_id is not None:
        cancel(ctx, job, event, invoice_id, f"the invoice was settled ({outcome})")


def run_recheck(ctx: JobContext, invoice_id: str, job: Job | None = None) -> dict[str, Any]:
    """The re-check job: fetch the invoice fresh, decide with the stored event's other content, act."""
    pending = load_pending(ctx, invoice_id)
    if pending is None:
        log.info("re-check of invoice %s: nothing pending (cancelled)", invoice_id, extra={"invoice_id": invoice_id})
        return Outcome.RECHECK_GONE.result()
    now = ctx.clock()
    if job is not None and pending.get("job_id") != job.id:
        return Outcome.SUPERSEDED.result(at=pending["at"])  # a newer event moved it
    event = Event.from_data(pending["event"])
    try:
        fresh_invoice = ctx.chargebee.retrieve_invoice(invoice_id)
    except Throttled as exc:
        defer(job, exc.retry_after)
        raise
    except NotFoundError as exc:  # deleted: nothing to write off, and not a failure
        cancel(ctx, job, event, invoice_id, f"Chargebee has no invoice {invoice_id} (404)")
        reason = f"Chargebee has no invoice {invoice_id}: {exc}"
        record_outcome(ctx, job, event, None, Outcome.GONE, invoice_id=invoice_id, reason=reason)
        return Outcome.GONE.result()
    fresh_event = event.with_invoice(fresh_invoice)
    if is_settled(fresh_invoice):
        cancel(ctx, job, fresh_event, invoice_id, f"the fresh invoice is {fresh_invoice.get('status')}")
        return Outcome.RECHECK_CANCELLED.result()
    ruleset = ctx.rules.current()
    decision = decide(ruleset, fresh_event.data, now)
    record_decision(TraceLog(ctx.redis, ctx.keys), ruleset, fresh_event, now, decision, "re-check, fresh invoice")
    if decision.action != "write_off" or decision.dry_run:
        _forget(ctx, invoice_id, pending)
        outcome = recheck_outcome(decision)
        record_outcome(ctx, job, fresh_event, decision, outcome, reason=f"re-check: {decision.reason}")
        if outcome != Outcome.DRY_RUN:
            schedule(ctx, job, fresh_event, ruleset, now)
        return outcome.result(rule=decision.rule)
    # The same write-off path as `evaluate` (lock, marks, idempotency key, budget); it raises to
    # retry, and the pending record stays for that retry.
    result = write_off_invoice(WriteOffAttempt(ctx, job, fresh_event, ruleset, now))
    _forget(ctx, invoice_id, pending)
    return result


def _forget(ctx: JobContext, invoice_id: str, pending: dict[str, Any]) -> None:
    ctx.redis.eval(_DELETE_IF_TOKEN, 1, ctx.keys.recheck(invoice_id), str(pending.get("token")))
