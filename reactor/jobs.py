"""RQ job functions and what they need: evaluate a stored event, and write the invoice off.

Every step can run again without harm, because a job runs at least once (retries, a replay from
the dead letters, a worker killed mid-call). What makes a second run harmless:

1. a per-invoice lock around fetch → decide → write_off, renewed before each Chargebee call, so two
   jobs never call Chargebee for one invoice at once; a dead holder's lock expires by itself;
2. a `written_off` mark per invoice, set in one transaction with its audit record when Chargebee
   confirms; a later job sees it and stops, and the record cannot be written twice;
3. an attempt mark written before the POST: a run after a lost answer (worker killed, timeout)
   that finds the invoice written off records that write-off instead of deciding anew;
4. the invoice is fetched fresh and decided again: a paid invoice no longer matches;
5. a stable `chargebee-idempotency-key` per (site, invoice, rule), so a repeated call within
   Chargebee's window is answered as a replay;
6. `invalid_state_for_request` from Chargebee means settled elsewhere, which is not a failure;
7. an event older (by `resource_version`) than one already seen for its invoice is not acted on.

docs/guarantees.md says what each of these guarantees, and which test proves it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import redis
from redis.lock import Lock
from rq import Queue, get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from . import held, rechecks
from .audit import AuditLog, AuditRecord
from .chargebee import (
    ChargebeeClient,
    ChargebeeError,
    InvalidStateError,
    NotFoundError,
    RetryableError,
    Throttled,
)
from .chargebee.ratelimit import ChargebeeRateLimit
from .config import Settings
from .events import EventStore, Keys
from .facts import complete_facts
from .rules import Decision, RuleSet, decide
from .rules.engine import COLLECTING_BLOCK
from .rules.facts import facts_worth_fetching, unresolved
from .rules.live import LiveRules
from .rules.safety import gone_reason

log = logging.getLogger(__name__)

WRITTEN_OFF_TTL = 400 * 24 * 3600  # longer than any retry, replay or sweep horizon
ATTEMPT_TTL = 30 * 24 * 3600  # as long as a stored event: a replay from the dead letters still finds it

# Only moves forward: the stored resource_version of an invoice is replaced by a newer one.
# Returns 1 when the incoming version is not older than the stored one (act on it), 0 when stale.
_ADVANCE_VERSION = """
local stored = redis.call('GET', KEYS[1])
if stored and tonumber(stored) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


@dataclass
class Context:
    """What a job needs, built once per worker process and passed in (tests build their own)."""

    settings: Settings
    redis: redis.Redis
    queue: Queue
    events: EventStore
    audit: AuditLog
    chargebee: ChargebeeClient
    rules: LiveRules
    keys: Keys = field(default_factory=Keys)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))


def build_context(settings: Settings, connection: redis.Redis) -> Context:
    keys = Keys(settings.key_prefix)
    queue = Queue(settings.queue_name, connection=connection)
    if not settings.api_base:
        raise ChargebeeError("no Chargebee API configured: set CHARGEBEE_SITE or CHARGEBEE_API_BASE")
    rules = LiveRules(settings.rules_path)
    return Context(
        settings=settings,
        redis=connection,
        queue=queue,
        events=EventStore.from_settings(connection, queue, settings),
        # Records written without a decision (retrying, failed, ...) still name the rules in force.
        audit=AuditLog(connection, keys.audit(), rules_version=lambda: rules.current().version),
        chargebee=ChargebeeClient(
            settings.api_base,
            settings.chargebee_api_key,
            timeout=settings.http_timeout,
            rate_limit=build_rate_limit(settings, connection),
        ),
        rules=rules,
        keys=keys,
    )


def build_rate_limit(settings: Settings, connection: redis.Redis) -> ChargebeeRateLimit:
    """The call budget shared by every process using this Redis for this Chargebee site."""
    return ChargebeeRateLimit(
        connection,
        settings.chargebee_rate_limit,
        settings.rate_limit_window,
        max_wait=settings.rate_limit_max_wait,
        scope=settings.chargebee_site or settings.api_base or "chargebee",
        key_prefix=settings.key_prefix,
    )


_context: Context | None = None


def install(context: Context) -> None:
    """Make `context` the one job functions use in this process (and in forked work horses)."""
    global _context
    _context = context


def current_context() -> Context:
    global _context
    if _context is None:  # a plain `rq worker` started without `reactor worker`
        from .config import load_settings

        settings = load_settings()
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL must be set for a worker started outside `reactor worker`")
        _context = build_context(settings, redis.Redis.from_url(settings.redis_url))
    return _context


# ---------------------------------------------------------------------------------------------
# RQ entry points: thin, so that tests can call the run_* functions with their own Context.


def evaluate(event_id: str) -> dict[str, Any]:
    """RQ job: decide on a stored event and act on the decision."""
    ctx, job = current_context(), get_current_job()
    with failures_recorded(ctx, job):
        return run_evaluation(ctx, event_id, job)


def release_held(event: dict[str, Any], actor: str) -> dict[str, Any]:
    """RQ job: a person released a held write-off (reactor/held.py); decide again, skip the budget."""
    ctx, job = current_context(), get_current_job()
    with failures_recorded(ctx, job):
        return held.run_release(ctx, event, actor, job)


def recheck(invoice_id: str) -> dict[str, Any]:
    """RQ job, scheduled: decide again when a time-based rule can first match (reactor/rechecks.py)."""
    from .rechecks import run_recheck

    ctx, job = current_context(), get_current_job()
    with failures_recorded(ctx, job):
        return run_recheck(ctx, invoice_id, job)


@contextmanager
def failures_recorded(ctx: Context, job: Job | None) -> Iterator[None]:
    """Every attempt that ends without an outcome leaves an audit record, then raises for RQ to retry.

    Chargebee's errors are recorded where they happen (retrying, failed) and a wait for the rate
    limit is not a failure; anything else (RQ's job timeout, a rule that raised, a bug) stopped the
    decision before anything was written off, and is recorded here as `timed_out` or as
    `retrying`/`failed`."""
    try:
        yield
    except (ChargebeeError, Throttled):
        raise
    except JobTimeoutException:
        timeout = getattr(job, "timeout", None)
        record_interrupted(ctx, job, "timed_out", f"the job ran past its timeout ({timeout} s) and was stopped")
        raise
    except Exception as exc:
        outcome = "retrying" if _will_retry(job) else "failed"
        record_interrupted(ctx, job, outcome, f"the decision stopped on an error: {type(exc).__name__}: {exc}")
        raise


def record_interrupted(ctx: Context, job: Job | None, outcome: str, reason: str) -> None:
    """Record an attempt that ended early (an error, a timeout, a killed work horse), naming its
    event and invoice as far as the job's arguments tell them. Never raises: the caller is already
    handling a failure, and Redis may be the reason for it."""
    event: dict[str, Any] | None = None
    invoice_id: str | None = None
    event_id: str | None = None
    try:
        args = tuple(job.args) if job is not None else ()
        name = job.func_name if job is not None else ""
        if name == "reactor.jobs.evaluate" and args and isinstance(args[0], str):
            event_id = args[0]
            event = ctx.events.load(event_id)
        elif name == "reactor.jobs.release_held" and args and isinstance(args[0], dict):
            event = args[0]
        elif name == "reactor.jobs.recheck" and args and isinstance(args[0], str):
            invoice_id = args[0]
        will_retry = "; RQ will run it again" if _will_retry(job) else "; no retries left: it is in the dead letters"
        _record(ctx, job, event, None, outcome, invoice_id=invoice_id, event_id=event_id, reason=reason + will_retry)
    except Exception:
        log.exception("could not record the %s attempt of job %s", outcome, getattr(job, "id", None))


# ---------------------------------------------------------------------------------------------


def idempotency_key(site: str, invoice_id: str, rule: str | None) -> str:
    """Stable per (site, invoice, rule), at most 100 characters as Chargebee requires."""
    digest = hashlib.sha256(f"{site}\x00{invoice_id}\x00{rule or ''}".encode()).hexdigest()
    return f"reactor-wo-{digest[:48]}"


def _make_record(
    ctx: Context,
    job: Job | None,
    event: dict[str, Any] | None,
    decision: Decision | None,
    outcome: str,
    *,
    invoice_id: str | None = None,
    reason: str | None = None,
    detail: str | None = None,
    amount_due: int | None = None,
    event_id: str | None = None,
) -> AuditRecord:
    invoice = ((event or {}).get("content") or {}).get("invoice") or {}
    return AuditRecord(
        event_id=event_id or (event or {}).get("id"),
        event_type=(event or {}).get("event_type"),
        invoice_id=invoice_id or (decision.invoice_id if decision else None) or invoice.get("id"),
        outcome=outcome,
        action=decision.action if decision else None,
        rule=decision.rule if decision else None,
        amount_due=amount_due if amount_due is not None else (decision.amount_due if decision else None),
        currency=(decision.currency if decision else None) or invoice.get("currency_code"),
        mode=("dry_run" if decision.dry_run else "live") if decision else None,
        rules_version=decision.rules_version if decision else None,
        reason=reason or (decision.reason if decision else None),
        job_id=job.id if job else None,
        detail=detail,
    )


def _log_record(record: AuditRecord) -> None:
    log.info(
        "decision %s: %s",
        record.outcome,
        record.reason or "",
        extra={"event_id": record.event_id, "invoice_id": record.invoice_id, "rule": record.rule},
    )


def _record(
    ctx: Context,
    job: Job | None,
    event: dict[str, Any] | None,
    decision: Decision | None,
    outcome: str,
    **fields: Any,
) -> AuditRecord:
    record = _make_record(ctx, job, event, decision, outcome, **fields)
    ctx.audit.append(record)
    _log_record(record)
    return record


def _is_stale(ctx: Context, invoice: dict[str, Any]) -> bool:
    version = invoice.get("resource_version")
    if not isinstance(version, int) or isinstance(version, bool):
        return False
    key = f"{ctx.keys.prefix}:resource_version:{invoice['id']}"
    return ctx.redis.eval(_ADVANCE_VERSION, 1, key, version, ctx.settings.event_ttl) == 0


def run_evaluation(ctx: Context, event_id: str, job: Job | None = None) -> dict[str, Any]:
    event = ctx.events.load(event_id)
    if event is None:
        _record(
            ctx,
            job,
            None,
            None,
            "event_missing",
            event_id=event_id,
            reason="the stored event is gone (older than REACTOR_EVENT_TTL?)",
        )
        return {"outcome": "event_missing"}
    if ctx.settings.verify_events:  # act only on Chargebee's own copy (reactor/verify.py)
        from .verify import verified_event

        event = verified_event(ctx, job, event)
        if event is None:
            return {"outcome": "rejected"}
    invoice = (event.get("content") or {}).get("invoice") or {}
    ruleset = ctx.rules.current()
    now = ctx.clock()
    if _is_stale(ctx, invoice):
        _record(ctx, job, event, None, "stale", reason="an event with a newer resource_version was already seen")
        return {"outcome": "stale"}
    decision = decide(ruleset, event, now)
    # The event lacks a resource (customer, subscription) that rules read, and with it a write_off
    # rule could decide: fetch the invoice and that resource, and decide on them (reactor/facts.py).
    for_facts = (
        decision.action != "write_off"
        and decision.blocked_by is None  # a built-in check or guardrail blocked: facts cannot help
        and not ruleset.dry_run
        and bool(facts_worth_fetching(ruleset, event, now))
    )
    if decision.action != "write_off" and not for_facts:
        outcome = _event_outcome(decision)
        _record(ctx, job, event, decision, outcome)
        rechecks.after_decision(ctx, job, event, ruleset, now)  # time-based rules: re-check later, or cancel
        return {"outcome": outcome, "rule": decision.rule}
    if decision.dry_run:
        _record(ctx, job, event, decision, "dry_run")
        return {"outcome": "dry_run", "rule": decision.rule}
    result = write_off_invoice(ctx, job, event, ruleset, now, for_facts=for_facts)
    if for_facts and result.get("outcome") in ("no_match", "skipped"):
        rechecks.after_decision(ctx, job, event, ruleset, now)  # as for any event decided without a write-off
    rechecks.after_write_off(ctx, job, event, result.get("outcome"))
    return result


def write_off_invoice(
    ctx: Context,
    job: Job | None,
    event: dict[str, Any],
    ruleset: RuleSet,
    now: datetime,
    *,
    check_budget: bool = True,
    for_facts: bool = False,
) -> dict[str, Any]:
    """Fetch fresh, complete the facts rules read, decide again, and write off under the invoice
    lock. Raises to retry.

    Right before the call the write-off takes its share of the budgets (reactor/held.py); one that
    would pass a budget is held instead. `check_budget=False` (a person released it) still counts it.
    `for_facts`: the event alone decided no write-off, but lacks facts that could change that."""
    invoice_id = event["content"]["invoice"]["id"]
    lock = _acquire_invoice_lock(ctx, invoice_id)
    try:
        done = ctx.redis.get(ctx.keys.done(invoice_id))
        if done is not None:
            _record(ctx, job, event, None, "already_written_off", invoice_id=invoice_id, detail=done.decode())
            return {"outcome": "already_written_off"}
        attempt = _load_attempt(ctx, invoice_id)
        try:
            _renew(lock, ctx, invoice_id)
            try:
                fresh_invoice = ctx.chargebee.retrieve_invoice(invoice_id)
            except NotFoundError as exc:
                return _gone(ctx, job, event, invoice_id, f"Chargebee has no invoice {invoice_id}: {exc}")
            fresh_event = copy.deepcopy(event)
            fresh_event["content"]["invoice"] = fresh_invoice
            if attempt is not None and (fresh_invoice.get("write_off_amount") or 0) > 0:
                return _confirm_interrupted(ctx, job, fresh_event, attempt, now)
            why_gone = gone_reason(fresh_invoice)
            if why_gone is not None:
                return _gone(ctx, job, fresh_event, invoice_id, why_gone)
            facts = complete_facts(ctx.chargebee, ruleset, fresh_event, now, lambda: _renew(lock, ctx, invoice_id))
            fresh_event = facts.event
            decision = decide(ruleset, fresh_event, now)
            if decision.action != "write_off" or decision.dry_run:
                ctx.redis.delete(_attempt_key(ctx, invoice_id))
                outcome = _fresh_outcome(decision, fetched=bool(facts.fetched), for_facts=for_facts)
                reason = decision.reason if outcome != "changed" else f"fresh invoice: {decision.reason}"
                _record(ctx, job, fresh_event, decision, outcome, reason=reason, detail=facts.note())
                return {"outcome": outcome, "rule": decision.rule}
            why_unknown = unresolved(ruleset, fresh_event, now, decision.rule or "", facts.unknown)
            if why_unknown is not None:
                ctx.redis.delete(_attempt_key(ctx, invoice_id))
                _record(ctx, job, fresh_event, decision, "facts_missing", reason=why_unknown, detail=facts.note())
                return {"outcome": "facts_missing", "rule": decision.rule}
            key = idempotency_key(ctx.settings.chargebee_site or ctx.settings.api_base or "", invoice_id, decision.rule)
            comment = decision.comment
            if attempt is not None and attempt.get("key") == key:
                comment = attempt.get("comment")  # the same parameters, or Chargebee refuses the key (422)
            reservation = held.reserve(
                ctx.redis,
                ruleset.limits,
                decision.currency or "",
                decision.amount_due or 0,
                now,
                prefix=ctx.keys.prefix,
                enforce=check_budget,
            )
            if isinstance(reservation, str):
                return held.hold_write_off(ctx, job, fresh_event, decision, reservation, now)
            _renew(lock, ctx, invoice_id)
            _save_attempt(ctx, invoice_id, key, decision.rule, comment, event, job, now)
            try:
                result = ctx.chargebee.write_off(invoice_id, comment, key)
            except ChargebeeError as exc:
                if (exc.status is not None and exc.status < 500) or isinstance(exc, Throttled):
                    reservation.give_back()  # refused, so certainly not written off; a timeout or 5xx may have been
                raise
        except InvalidStateError as exc:
            ctx.redis.delete(_attempt_key(ctx, invoice_id))
            _record(ctx, job, event, None, "settled_elsewhere", invoice_id=invoice_id, reason=str(exc))
            return {"outcome": "settled_elsewhere"}
        except NotFoundError as exc:  # write_off answered 404: deleted since the fetch
            return _gone(ctx, job, event, invoice_id, f"Chargebee has no invoice {invoice_id} to write off: {exc}")
        except Throttled as exc:
            _defer(job, exc.retry_after)
            log.info("invoice %s: %s; deferred", invoice_id, exc, extra={"invoice_id": invoice_id})
            raise
        except RetryableError as exc:
            _stretch_retry(job, exc.retry_after)
            _record(
                ctx,
                job,
                event,
                None,
                "retrying" if _will_retry(job) else "failed",
                invoice_id=invoice_id,
                reason=str(exc),
            )
            raise
        except ChargebeeError as exc:
            if job is not None:
                job.retries_left = 0  # retrying a refused request cannot help: straight to the dead letters
            _record(ctx, job, event, None, "failed", invoice_id=invoice_id, reason=str(exc))
            raise
        credit_note = (result.credit_note or {}).get("id")
        mark = {
            "at": now.isoformat(),
            "rule": decision.rule,
            "credit_note": credit_note,
            "event_id": event.get("id"),
            "replayed": result.replayed,
        }
        amount = result.invoice.get("write_off_amount") or decision.amount_due
        record = _make_record(
            ctx,
            job,
            fresh_event,
            decision,
            "written_off",
            amount_due=amount,
            detail=f"credit_note={credit_note} replayed={str(result.replayed).lower()}",
        )
        _commit_written_off(ctx, invoice_id, mark, record)
        return {"outcome": "written_off", "rule": decision.rule, "credit_note": credit_note}
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            log.warning("lock on invoice %s expired before release", invoice_id)


BLOCKED_OUTCOMES = {
    COLLECTING_BLOCK: "collecting",
    "invoice.deleted": "gone",
    "invoice.linked_payments": "payment_in_progress",
}
"""The outcome recorded when the fresh invoice is blocked by a built-in check (its blocked_by)."""


def _event_outcome(decision: Decision) -> str:
    """What an event's decision without a write-off is recorded as."""
    if decision.action == "none":
        return "no_match"
    return BLOCKED_OUTCOMES.get(decision.blocked_by or "", "skipped")


def _fresh_outcome(decision: Decision, *, fetched: bool, for_facts: bool) -> str:
    """What a fresh decision without a write-off is recorded as: a built-in check's own outcome; a
    skip rule or no rule deciding on facts fetched for them; else `changed` (the invoice moved on
    since the event chose write_off)."""
    outcome = BLOCKED_OUTCOMES.get(decision.blocked_by or "")
    if outcome is not None:
        return outcome
    if for_facts and decision.action == "none":
        return "no_match"
    if (fetched or for_facts) and decision.action == "skip" and decision.blocked_by is None:
        return "skipped"
    return "changed"


def _gone(ctx: Context, job: Job | None, event: dict[str, Any], invoice_id: str, reason: str) -> dict[str, Any]:
    """The invoice was deleted or voided in Chargebee (its dunning settings may do either): nothing to
    write off, and not a failure. A pending attempt mark is moot."""
    ctx.redis.delete(_attempt_key(ctx, invoice_id))
    _record(ctx, job, event, None, "gone", invoice_id=invoice_id, reason=reason)
    return {"outcome": "gone"}


# ---------------------------------------------------------------------------------------------
# The invoice lock, the attempt mark and the commit: what makes a killed job's retry safe.


def _acquire_invoice_lock(ctx: Context, invoice_id: str) -> Lock:
    """Wait for the invoice's lock as long as its TTL: a holder either releases it or, if it died,
    the lock expires within that time; so a wait this long fails only when a third job won the race."""
    ttl = ctx.settings.invoice_lock_ttl
    lock = ctx.redis.lock(ctx.keys.lock(invoice_id), timeout=ttl, blocking_timeout=ttl + 1)
    if not lock.acquire():
        raise RetryableError(f"invoice {invoice_id} is locked by another job")
    return lock


def _renew(lock: Lock, ctx: Context, invoice_id: str) -> None:
    """Reset the lock's TTL before each Chargebee call, failing if it was lost: a job that overran
    its lock must not call Chargebee while another job holds the invoice."""
    try:
        lock.extend(ctx.settings.invoice_lock_ttl, replace_ttl=True)
    except redis.exceptions.LockError:
        raise RetryableError(f"lost the lock on invoice {invoice_id}; another job may hold it now") from None


def _attempt_key(ctx: Context, invoice_id: str) -> str:
    return f"{ctx.keys.prefix}:write_off_attempt:{invoice_id}"


def _save_attempt(
    ctx: Context,
    invoice_id: str,
    key: str,
    rule: str | None,
    comment: str | None,
    event: dict[str, Any],
    job: Job | None,
    now: datetime,
) -> None:
    """Written before the POST: if the answer never arrives (worker killed, timeout), the next run
    knows a write_off of ours may have gone through, and with which key and comment."""
    attempt = {
        "at": now.isoformat(),
        "key": key,
        "rule": rule,
        "comment": comment,
        "event_id": event.get("id"),
        "job_id": job.id if job else None,
    }
    ctx.redis.set(_attempt_key(ctx, invoice_id), json.dumps(attempt), ex=ATTEMPT_TTL)


def _load_attempt(ctx: Context, invoice_id: str) -> dict[str, Any] | None:
    raw = ctx.redis.get(_attempt_key(ctx, invoice_id))
    if raw is None:
        return None
    try:
        attempt = json.loads(raw)
    except ValueError:
        return None
    return attempt if isinstance(attempt, dict) else None


def _confirm_interrupted(
    ctx: Context, job: Job | None, fresh_event: dict[str, Any], attempt: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """An earlier run sent write_off and never heard back; the invoice shows a write-off, so the call
    went through. Record it now, once, instead of calling Chargebee again."""
    invoice = fresh_event["content"]["invoice"]
    invoice_id = invoice["id"]
    mark = {"at": now.isoformat(), "rule": attempt.get("rule"), "event_id": attempt.get("event_id"), "recovered": True}
    record = _make_record(
        ctx,
        job,
        fresh_event,
        None,
        "written_off",
        invoice_id=invoice_id,
        amount_due=invoice.get("write_off_amount"),
        event_id=attempt.get("event_id"),
        reason=f"write_off sent at {attempt.get('at')} by a run that did not see the answer; the invoice shows it",
        detail=f"recovered=true write_off_amount={invoice.get('write_off_amount')}",
    )
    record.rule = attempt.get("rule")
    record.action = "write_off"
    _commit_written_off(ctx, invoice_id, mark, record)
    return {"outcome": "written_off", "rule": attempt.get("rule"), "recovered": True}


def _commit_written_off(ctx: Context, invoice_id: str, mark: dict[str, Any], record: AuditRecord) -> None:
    """The `written_off` mark and its audit record in one transaction: a crash between the two would
    otherwise leave a mark without a record, or let a retry record the write-off a second time."""
    with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.set(ctx.keys.done(invoice_id), json.dumps(mark), ex=WRITTEN_OFF_TTL)
        pipe.delete(_attempt_key(ctx, invoice_id))
        pipe.xadd(ctx.audit.key, ctx.audit.stamp(record).to_fields(), maxlen=ctx.audit.maxlen, approximate=True)
        results = pipe.execute()
    entry_id = results[-1]
    record.id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    _log_record(record)


def _defer(job: Job | None, retry_after: float | None) -> None:
    """Waiting for a rate-limit slot is not a failed attempt: give the retry back, then wait."""
    if job is not None and job.retries_left is not None:
        job.retries_left += 1
    _stretch_retry(job, retry_after)


def _will_retry(job: Job | None) -> bool:
    return bool(job and job.retries_left and job.retries_left > 0)


def _stretch_retry(job: Job | None, retry_after: float | None) -> None:
    """Make RQ's next retry wait at least Retry-After: RQ reads the interval from this job object
    when it schedules the retry, in the same process, right after the job raises."""
    if job is None or retry_after is None or not job.retries_left or not job.retry_intervals:
        return
    intervals = list(job.retry_intervals)
    index = min(max(len(intervals) - job.retries_left, 0), len(intervals) - 1)
    intervals[index] = max(intervals[index], math.ceil(retry_after))
    job.retry_intervals = intervals
