"""Evaluate a stored event (load_event → refuse_stale → decide_event → act), and decide again on a
write-off a person released: the work behind the RQ jobs `reactor.jobs.evaluate` and
`reactor.jobs.release_held`, and the shared decision of triage (reactor/jobs/triage.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rq.job import Job

from ..ingest.envelope import Event
from ..ingest.trace_list import ADVANCE_VERSION_LUA, TRACE_CAP, TRACE_TTL
from ..rules import RuleSet, decide
from ..rules.facts import facts_worth_fetching
from . import rechecks
from .approval_marks import GivenApprovals
from .attempt import WriteOffAttempt
from .audit import Outcome
from .context import JobContext
from .recovery import CandidateLog, note_payments
from .trace.decisions import record_decision
from .trace.store import TraceLog
from .trail import event_outcome, record_outcome
from .verify import verified_event
from .write_off import write_off_invoice

log = logging.getLogger(__package__)  # "reactor.jobs", the logger the job wing has always logged as

RESOURCE_VERSION_SLACK_MS = 5 * 60 * 1000
"""How far an invoice's resource_version may be ahead of its event's `occurred_at`, and of this
worker's clock, and still order the invoice's events. Chargebee stamps both from its own clock at
the change (resource_version in milliseconds, occurred_at in seconds: the real payloads have the
version 0 to 999 ms past occurred_at), so 5 minutes is that second plus any skew between Chargebee's
clock and ours. A version further ahead is a forged or corrupt one: kept, it would make every
genuine event of the invoice `stale` until the clock passed it."""


def _order_version(ctx: JobContext, event: Event, now: datetime) -> int | None:
    """The version that orders `event` among its invoice's events; None when it has none, or when
    it is more than RESOURCE_VERSION_SLACK_MS ahead of the event's occurred_at or of the clock. Such
    an event is neither compared nor kept, and is decided like an event without a version; the
    trace says why (an `unordered` entry) and so does the log."""
    version = (event.invoice or {}).get("resource_version")
    if event.invoice_id is None or not isinstance(version, int) or isinstance(version, bool):
        return None
    now_ms = int(now.timestamp() * 1000)
    stamped_ms = now_ms if event.occurred_at is None else min(event.occurred_at * 1000, now_ms)
    if version <= stamped_ms + RESOURCE_VERSION_SLACK_MS:
        return version
    against = "its occurred_at" if stamped_ms < now_ms else "this worker's clock"
    reason = (
        f"resource_version {version} is {(version - stamped_ms) / 1000:.0f} s ahead of {against} (at most "
        f"{RESOURCE_VERSION_SLACK_MS // 1000} s from Chargebee): not used to order the invoice's events"
    )
    log.warning("event %s of invoice %s: %s", event.id, event.invoice_id, reason)
    entry = {"kind": "unordered", "event_id": event.id, "resource_version": version, "reason": reason}
    TraceLog(ctx.redis, ctx.keys).add(event.invoice_id, entry)
    return None


def _is_stale(ctx: JobContext, event: Event, now: datetime) -> bool:
    version = _order_version(ctx, event, now)
    if version is None or event.invoice_id is None:
        return False
    keys = [ctx.keys.trace(event.invoice_id), ctx.keys.resource_version(event.invoice_id)]
    advance = ctx.redis.register_script(ADVANCE_VERSION_LUA)  # EVALSHA: the script is sent once per connection
    latest = int(now.timestamp() * 1000) + RESOURCE_VERSION_SLACK_MS
    return advance(keys=keys, args=[version, TRACE_CAP, TRACE_TTL, latest]) == 0


def _checked_in_triage(ctx: JobContext, event_id: str) -> bool:
    """Whether triage found this event not stale before handing it to this job; taken, so that only
    the job's first run skips the stale check. Triage checks in arrival order and the job runs later,
    at the back of the queue: a newer event of the invoice that triage recorded meanwhile (one no
    write_off rule listens to) must not make this one stale, which it would not have if each event
    had its own job, run in order. A retry or a replay is checked again, like any run of an
    evaluation job after a newer event. Acting is still on the invoice fetched fresh."""
    return ctx.redis.getdel(ctx.keys.in_order(event_id)) is not None


Result = dict[str, Any]
"""A job's result: `Outcome.result(...)`."""


@dataclass(frozen=True)
class OwnJob:
    """Triage's hand-off: the event needs its own evaluation job (`evaluate-<event id>`), which may
    call Chargebee; nothing about it was recorded."""

    event_id: str
    why: str


def run_evaluation(ctx: JobContext, event_id: str, job: Job | None = None) -> Result:
    """Decide on the stored event and act: the evaluation job."""
    result = evaluate_event(ctx, event_id, job, in_triage=False)
    if isinstance(result, OwnJob):  # only triage hands an event on
        raise RuntimeError(f"the evaluation of {event_id} stopped short outside triage: {result.why}")
    return result


def triage_evaluation(ctx: JobContext, event_id: str) -> Result | OwnJob:
    """Decide on the stored event in a triage batch (reactor/jobs/triage.py) as far as no Chargebee
    call is needed: record the outcome and return it, or hand it to its own job (`OwnJob`), having
    recorded no decision or outcome (a write_off rule matched, facts to fetch, verification)."""
    return evaluate_event(ctx, event_id, None, in_triage=True)


def evaluate_event(ctx: JobContext, event_id: str, job: Job | None, *, in_triage: bool) -> Result | OwnJob:
    """load_event → refuse_stale → decide_event → act; each step may end the evaluation."""
    if in_triage and ctx.settings.verify_events:
        return OwnJob(event_id, "Chargebee's copy of the event first: a call")
    event = load_event(ctx, job, event_id)
    if not isinstance(event, Event):
        return event
    # A payment of a customer whose invoice we wrote off: a recovery candidate, whatever the rules decide.
    note_payments(CandidateLog.from_context(ctx), event.id, event.event_type, event.content)
    ruleset = ctx.rules.current()
    now = ctx.clock()
    in_order = not in_triage and _checked_in_triage(ctx, event_id)
    if not in_order and (stale := refuse_stale(ctx, job, event, now)) is not None:
        return stale
    attempt = decide_event(ctx, job, event, ruleset, now, in_triage=in_triage)
    if not isinstance(attempt, WriteOffAttempt):
        return attempt
    return act(attempt)


def load_event(ctx: JobContext, job: Job | None, event_id: str) -> Event | Result:
    """The stored event, verified with Chargebee when REACTOR_VERIFY_EVENTS asks; else the outcome
    recorded (the event is gone, or forged)."""
    event = ctx.events.load(event_id)
    if event is None:
        reason = "the stored event is gone (older than REACTOR_EVENT_TTL?)"
        record_outcome(ctx, job, None, None, Outcome.EVENT_MISSING, event_id=event_id, reason=reason)
        return Outcome.EVENT_MISSING.result()
    if ctx.settings.verify_events:  # act only on Chargebee's own copy (reactor/jobs/verify.py)
        event = verified_event(ctx, job, event)
        if event is None:
            return Outcome.REJECTED.result()
    return event


def refuse_stale(ctx: JobContext, job: Job | None, event: Event, now: datetime) -> Result | None:
    """An event older (by `resource_version`) than one already seen for its invoice is not acted
    on: recorded `stale`."""
    if not _is_stale(ctx, event, now):
        return None
    reason = "an event with a newer resource_version was already seen"
    record_outcome(ctx, job, event, None, Outcome.STALE, reason=reason)
    return Outcome.STALE.result()


def decide_event(
    ctx: JobContext, job: Job | None, event: Event, ruleset: RuleSet, now: datetime, *, in_triage: bool
) -> Result | OwnJob | WriteOffAttempt:
    """Decide on the event as received and record the decision in its trace. A decision without a
    write-off is recorded (with its re-check) and ends here; a write-off is the attempt to act on,
    or in triage a hand-off to the event's own job."""
    decision = decide(ruleset, event.data, now)
    # The event lacks a resource (customer, subscription) that rules read, and with it a write_off
    # rule could decide: fetch the invoice and that resource, and decide on them (reactor/jobs/facts.py).
    for_facts = (
        decision.action != "write_off"
        and decision.blocked_by is None  # a built-in check or guardrail blocked: facts cannot help
        and not ruleset.dry_run
        and bool(facts_worth_fetching(ruleset, event.data, now))
    )
    if in_triage and (for_facts or (decision.action == "write_off" and not decision.dry_run)):
        # Its own job decides again, and records the decision; it was not stale here, in order.
        ctx.redis.set(ctx.keys.in_order(event.id), 1, ex=ctx.settings.event_ttl)
        return OwnJob(event.id, "facts to fetch" if for_facts else f"rule {decision.rule} decided write_off")
    record_decision(TraceLog(ctx.redis, ctx.keys), ruleset, event, now, decision, "event as received")
    if decision.action != "write_off" and not for_facts:
        outcome = event_outcome(decision)
        record_outcome(ctx, job, event, decision, outcome)
        rechecks.after_decision(ctx, job, event, ruleset, now)  # time-based rules: re-check later, or cancel
        return outcome.result(rule=decision.rule)
    if decision.dry_run:
        record_outcome(ctx, job, event, decision, Outcome.DRY_RUN)
        return Outcome.DRY_RUN.result(rule=decision.rule)
    return WriteOffAttempt(ctx, job, event, ruleset, now, for_facts=for_facts)


def act(attempt: WriteOffAttempt) -> Result:
    """The write-off (reactor/jobs/write_off.py), then what it means for the invoice's re-check."""
    ctx, job, event = attempt.ctx, attempt.job, attempt.event
    result = write_off_invoice(attempt)
    if attempt.for_facts and result.get("outcome") in (Outcome.NO_MATCH, Outcome.SKIPPED):
        # as for any event decided without a write-off
        rechecks.after_decision(ctx, job, event, attempt.ruleset, attempt.now)
    rechecks.after_write_off(ctx, job, event, result.get("outcome"))
    return result


def run_release(
    ctx: JobContext,
    event: Event,
    actor: str,
    job: Job | None = None,
    approvals: GivenApprovals | None = None,
    released: bool = False,
) -> Result:
    """Decide again on a released (or approved) write-off and act; with the approvals people gave it,
    if any (reactor/jobs/approvals.py). A person's release skips the budget check that held it; the
    last approval (`approvals` given, not `released`) does not: over the budget, it is held."""
    now = ctx.clock()
    log.info("released by %s: deciding again on invoice %s", actor, event.invoice_id)
    check_budget = approvals is not None and not released
    attempt = WriteOffAttempt(
        ctx, job, event, ctx.rules.current(), now, check_budget=check_budget, approvals=approvals, released_by=actor
    )
    result = write_off_invoice(attempt)
    rechecks.after_write_off(ctx, job, event, result.get("outcome"))
    return result
