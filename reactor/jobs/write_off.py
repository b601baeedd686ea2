"""The write-off of one invoice, one step at a time under the invoice lock (`run_steps`). A job runs at
least once, so every step is safe to run again; docs/guarantees.md says what each guarantees and
which test proves it. A step returns the attempt's result when it ends the attempt, else None.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from ..chargebee import InvalidStateError, NotFoundError
from ..ingest.envelope import Event
from ..rules import decide
from ..rules.facts import unresolved
from ..rules.safety import gone_reason
from .approvals import approvals_given, declined_hold
from .attempt import WriteOffAttempt
from .audit import Outcome
from .credits import apply_credits_first, recover_credits
from .facts import complete_facts
from .held import hold_write_off
from .marks import acquire_invoice_lock, attempt_key, confirm_interrupted, load_attempt
from .recovery import CandidateLog, note_payments
from .refusals import Refused
from .retries import chargebee_failures
from .send import commit_write_off, send_write_off
from .trace.decisions import record_decision
from .trace.store import TraceLog, tracing_invoice
from .trail import fresh_outcome
from .undone import undone_hold

log = logging.getLogger(__package__)  # "reactor.jobs", the logger the job wing has always logged as

Result = dict[str, Any]
"""The job's result: `Outcome.result(...)`."""


def write_off_invoice(attempt: WriteOffAttempt) -> Result:
    """Fetch fresh, complete the facts rules read, decide again, and write off under the invoice
    lock; returns the job's result. Raises to retry."""
    invoice_id = attempt.invoice_id
    # A per-invoice lock around fetch → decide → write_off, renewed before each Chargebee call: two
    # jobs never call Chargebee for one invoice at once; a dead holder's lock expires by itself.
    attempt.lock = acquire_invoice_lock(attempt.ctx, invoice_id)
    try:
        with tracing_invoice(invoice_id):  # the customer's and subscription's calls go to its trace too
            return run_steps(attempt)
    finally:
        try:
            attempt.lock.release()
        except redis.exceptions.LockError:
            log.warning("lock on invoice %s expired before release", invoice_id)


def run_steps(a: WriteOffAttempt) -> Result:
    """The steps in order; the first that returns a result ends the attempt."""
    for step in (not_written_off_yet, not_undone, not_declined):
        if (done := step(a)) is not None:
            return done
    a.earlier = load_attempt(a.ctx, a.invoice_id)
    with chargebee_failures(a.ctx, a.job, a.event, invoice_id=a.invoice_id):
        try:
            for step in (fresh_invoice, credits_recovered, fresh_decision, credits_first, approved, send):
                if (done := step(a)) is not None:
                    return done
        except InvalidStateError as exc:  # Chargebee says settled elsewhere: not a failure
            a.ctx.redis.delete(attempt_key(a.ctx, a.invoice_id))
            return a.record(Outcome.SETTLED_ELSEWHERE, a.event, None, reason=str(exc), invoice_id=a.invoice_id)
        except NotFoundError as exc:  # write_off answered 404: deleted since the fetch
            return gone(a, a.event, f"Chargebee has no invoice {a.invoice_id} to write off: {exc}")
    return commit(a)


def gone(a: WriteOffAttempt, event: Event, reason: str) -> Result:
    """Deleted or voided in Chargebee (its dunning settings may do either): nothing to write off,
    and not a failure. A pending attempt mark is moot."""
    a.ctx.redis.delete(attempt_key(a.ctx, a.invoice_id))
    return a.record(Outcome.GONE, event, None, invoice_id=a.invoice_id, reason=reason)


def not_written_off_yet(a: WriteOffAttempt) -> Result | None:
    """Our `written_off` mark, set in one transaction with its audit record when Chargebee confirmed:
    an earlier job of ours wrote this invoice off, and the record cannot be written twice."""
    done = a.ctx.redis.get(a.ctx.keys.written_off(a.invoice_id))
    if done is None:
        return None
    return a.record(Outcome.ALREADY_WRITTEN_OFF, a.event, None, invoice_id=a.invoice_id, detail=done.decode())


def not_undone(a: WriteOffAttempt) -> Result | None:
    """A person undid our write-off of this invoice (reactor/console/undo.py): held until released."""
    why = undone_hold(a.ctx, a.invoice_id)
    if why is None:
        return None
    return a.record(Outcome.HELD, a.event, None, invoice_id=a.invoice_id, reason=why)


def not_declined(a: WriteOffAttempt) -> Result | None:
    """A person declined the write-off in the approvals queue (reactor/console/approvals.py): held
    until released."""
    why = declined_hold(a.ctx, a.invoice_id)
    if why is None:
        return None
    return a.record(Outcome.HELD, a.event, None, invoice_id=a.invoice_id, reason=why)


def approved(a: WriteOffAttempt) -> Result | None:
    """Four eyes (reactor/jobs/approvals.py): a write-off above an approval tier waits for its approvers,
    decided on the amount of the fresh invoice (after credits)."""
    done = approvals_given(a)
    if done is not None:
        a.ctx.redis.delete(attempt_key(a.ctx, a.invoice_id))
    return done


def fresh_invoice(a: WriteOffAttempt) -> Result | None:
    """The invoice as Chargebee has it now, into `a.fresh`: a paid invoice no longer matches. Ends
    the attempt when it is gone, or when it shows the write-off of an earlier run of ours."""
    a.renew()
    try:
        invoice = a.ctx.chargebee.retrieve_invoice(a.invoice_id)
    except NotFoundError as exc:
        return gone(a, a.event, f"Chargebee has no invoice {a.invoice_id}: {exc}")
    a.fresh = a.event.with_invoice(invoice)
    if a.earlier is not None and (invoice.get("write_off_amount") or 0) > 0:
        # The attempt mark was written before the POST of a run that never heard the answer (worker
        # killed, timeout), and the invoice shows the write-off: record it instead of deciding anew.
        return confirm_interrupted(a, a.earlier)
    why_gone = gone_reason(invoice)
    if why_gone is not None:
        return gone(a, a.fresh, why_gone)
    return None


def credits_recovered(a: WriteOffAttempt) -> Result | None:
    """Credits an earlier run of ours applied without recording them; ends it if they covered it."""
    recovered = recover_credits(a)
    if recovered is not None and recovered.covered:
        return Outcome.CREDITS_APPLIED.result(credits=recovered.amount, recovered=True)
    return None


def fresh_decision(a: WriteOffAttempt, after: str = "fresh invoice") -> Result | None:
    """The rules and the built-in checks on `a.fresh`, with the facts they read, into `a.decision`;
    ends the attempt unless they still say write_off and rest on nothing unknown."""
    assert a.fresh is not None
    facts = complete_facts(a.ctx.chargebee, a.ruleset, a.fresh, a.now, a.renew)
    a.fresh = fresh = facts.event
    if any(item.startswith("customer=") for item in facts.fetched):  # money back for a write-off of ours?
        note_payments(CandidateLog.from_context(a.ctx), None, None, {"customer": fresh.content.get("customer")})
    a.decision = decision = decide(a.ruleset, fresh.data, a.now)
    record_decision(TraceLog(a.ctx.redis, a.ctx.keys), a.ruleset, fresh, a.now, decision, after)
    if decision.action != "write_off" or decision.dry_run:
        a.ctx.redis.delete(attempt_key(a.ctx, a.invoice_id))
        outcome = fresh_outcome(decision, fetched=bool(facts.fetched), for_facts=a.for_facts)
        reason = decision.reason if outcome != Outcome.CHANGED else f"{after}: {decision.reason}"
        return a.record(outcome, fresh, decision, reason=reason, detail=facts.note())
    why_unknown = unresolved(a.ruleset, fresh.data, a.now, decision.rule or "", facts.unknown)
    if why_unknown is not None:
        a.ctx.redis.delete(attempt_key(a.ctx, a.invoice_id))
        return a.record(Outcome.FACTS_MISSING, fresh, decision, reason=why_unknown, detail=facts.note())
    return None


def credits_first(a: WriteOffAttempt) -> Result | None:
    """`apply_credits_first`: the customer's credits first (reactor/jobs/credits.py); ends the
    attempt when they cover the invoice, else decides again on what they left."""
    decision = a.decision
    assert decision is not None and a.fresh is not None
    rule = a.ruleset.rule(decision.rule or "")
    if rule is None or not rule.apply_credits_first:
        return None
    applied = apply_credits_first(a, decision)
    if isinstance(applied, Refused):
        return a.record(Outcome.FACTS_MISSING, a.fresh, decision, reason=applied.reason)
    if applied is None:
        return None
    if applied.covered:
        return Outcome.CREDITS_APPLIED.result(rule=decision.rule, credits=applied.amount)
    a.fresh = applied.event
    return fresh_decision(a, after="after the credits")


def send(a: WriteOffAttempt) -> Result | None:
    """The budget, the attempt mark and the call (reactor/jobs/send.py), its answer into `a.sent`; a
    budget that refuses holds the write-off instead."""
    assert a.decision is not None
    sent = send_write_off(a, a.decision)
    if isinstance(sent, Refused):
        return hold_write_off(a, a.decision, sent.reason)
    a.sent = sent
    return None


def commit(a: WriteOffAttempt) -> Result:
    """The `written_off` mark and its audit record (reactor/jobs/send.py)."""
    assert a.decision is not None and a.sent is not None
    return commit_write_off(a, a.decision, a.sent)
