"""The write-off of one invoice: lock → recover an interrupted attempt → decide on the fresh invoice →
take the budget → call Chargebee → commit the mark and its audit record.

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
from datetime import datetime
from typing import Any

import redis
from redis.lock import Lock
from rq.job import Job

from ..audit import AuditRecord
from ..chargebee import ChargebeeError, InvalidStateError, NotFoundError, RetryableError, Throttled
from ..facts import complete_facts
from ..rules import Decision, RuleSet, decide
from ..rules.engine import COLLECTING_BLOCK
from ..rules.facts import unresolved
from ..rules.safety import gone_reason
from .budget import reserve
from .context import Context
from .held import hold_write_off
from .retries import chargebee_failures
from .trail import log_record, make_record, record_outcome

log = logging.getLogger(__package__)  # "reactor.jobs", the logger the job wing has always logged as

WRITTEN_OFF_TTL = 400 * 24 * 3600  # longer than any retry, replay or sweep horizon
ATTEMPT_TTL = 30 * 24 * 3600  # as long as a stored event: a replay from the dead letters still finds it


def idempotency_key(site: str, invoice_id: str, rule: str | None) -> str:
    """Stable per (site, invoice, rule), at most 100 characters as Chargebee requires."""
    digest = hashlib.sha256(f"{site}\x00{invoice_id}\x00{rule or ''}".encode()).hexdigest()
    return f"reactor-wo-{digest[:48]}"


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

    Right before the call the write-off takes its share of the budgets (reactor/jobs/budget.py); one that
    would pass a budget is held instead. `check_budget=False` (a person released it) still counts it.
    `for_facts`: the event alone decided no write-off, but lacks facts that could change that."""
    invoice_id = event["content"]["invoice"]["id"]
    lock = _acquire_invoice_lock(ctx, invoice_id)
    try:
        done = ctx.redis.get(ctx.keys.written_off(invoice_id))
        if done is not None:
            record_outcome(ctx, job, event, None, "already_written_off", invoice_id=invoice_id, detail=done.decode())
            return {"outcome": "already_written_off"}
        attempt = _load_attempt(ctx, invoice_id)
        with chargebee_failures(ctx, job, event, invoice_id=invoice_id):
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
                    record_outcome(ctx, job, fresh_event, decision, outcome, reason=reason, detail=facts.note())
                    return {"outcome": outcome, "rule": decision.rule}
                why_unknown = unresolved(ruleset, fresh_event, now, decision.rule or "", facts.unknown)
                if why_unknown is not None:
                    ctx.redis.delete(_attempt_key(ctx, invoice_id))
                    record_outcome(
                        ctx, job, fresh_event, decision, "facts_missing", reason=why_unknown, detail=facts.note()
                    )
                    return {"outcome": "facts_missing", "rule": decision.rule}
                key = idempotency_key(
                    ctx.settings.chargebee_site or ctx.settings.api_base or "", invoice_id, decision.rule
                )
                comment = decision.comment
                if attempt is not None and attempt.get("key") == key:
                    comment = attempt.get("comment")  # the same parameters, or Chargebee refuses the key (422)
                reservation = reserve(
                    ctx.redis,
                    ruleset.limits,
                    decision.currency or "",
                    decision.amount_due or 0,
                    now,
                    prefix=ctx.keys.prefix,
                    enforce=check_budget,
                )
                if isinstance(reservation, str):
                    return hold_write_off(ctx, job, fresh_event, decision, reservation, now)
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
                record_outcome(ctx, job, event, None, "settled_elsewhere", invoice_id=invoice_id, reason=str(exc))
                return {"outcome": "settled_elsewhere"}
            except NotFoundError as exc:  # write_off answered 404: deleted since the fetch
                return _gone(ctx, job, event, invoice_id, f"Chargebee has no invoice {invoice_id} to write off: {exc}")
        credit_note = (result.credit_note or {}).get("id")
        mark = {
            "at": now.isoformat(),
            "rule": decision.rule,
            "credit_note": credit_note,
            "event_id": event.get("id"),
            "replayed": result.replayed,
        }
        amount = result.invoice.get("write_off_amount") or decision.amount_due
        record = make_record(
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
    record_outcome(ctx, job, event, None, "gone", invoice_id=invoice_id, reason=reason)
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
    return ctx.keys.write_off_attempt(invoice_id)


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
    record = make_record(
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
        pipe.set(ctx.keys.written_off(invoice_id), json.dumps(mark), ex=WRITTEN_OFF_TTL)
        pipe.delete(_attempt_key(ctx, invoice_id))
        pipe.xadd(ctx.audit.key, ctx.audit.stamp(record).to_fields(), maxlen=ctx.audit.maxlen, approximate=True)
        results = pipe.execute()
    entry_id = results[-1]
    record.id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    log_record(record)
