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
   Chargebee's window is answered as a replay (reactor/jobs/send.py, with the budget and the call);
6. `invalid_state_for_request` from Chargebee means settled elsewhere, which is not a failure;
7. an event older (by `resource_version`) than one already seen for its invoice is not acted on.

docs/guarantees.md says what each of these guarantees, and which test proves it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, NoReturn

import redis
from redis.lock import Lock
from rq.job import Job

from ..chargebee import InvalidStateError, NotFoundError, WriteOffResult
from ..rules import Decision, RuleSet, decide
from ..rules.facts import unresolved
from ..rules.safety import gone_reason
from .audit import Outcome
from .context import JobContext
from .credits import apply_credits_first, recover_credits
from .facts import complete_facts
from .held import hold_write_off
from .marks import (
    acquire_invoice_lock,
    attempt_key,
    confirm_interrupted,
    load_attempt,
    renew_lock,
)
from .retries import chargebee_failures
from .send import commit_write_off, send_write_off
from .stored_events import as_event, with_invoice
from .trace.decisions import record_decision
from .trace.store import TraceLog, tracing_invoice
from .trail import fresh_outcome, record_outcome
from .undone import undone_hold

log = logging.getLogger(__package__)  # "reactor.jobs", the logger the job wing has always logged as


def write_off_invoice(
    ctx: JobContext,
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

    Right before the call the write-off takes its share of the budgets (reactor/jobs/budget.py); one
    that would pass a budget is held instead. `check_budget=False` (a person released it) still counts
    it. `for_facts`: the event alone decided no write-off, but lacks facts that could change that."""
    invoice_id = as_event(event).invoice_id
    if invoice_id is None:  # the webhook and the sweep store none without one (reactor/ingest/events.py)
        raise ValueError(f"event {event.get('id')!r} carries no invoice id: nothing to write off")
    steps = _Steps(ctx, job, event, ruleset, now, invoice_id, for_facts=for_facts, check_budget=check_budget)
    lock = acquire_invoice_lock(ctx, invoice_id)
    steps.lock = lock
    try:
        with tracing_invoice(invoice_id):  # the customer's and subscription's calls go to its trace too
            return steps.run()
    except _Stop as stop:
        return stop.result
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            log.warning("lock on invoice %s expired before release", invoice_id)


class _Stop(Exception):
    """A step reached the outcome of this attempt (recorded already); `result` is the job's result."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("outcome"))
        self.result = result


class _Steps:
    """The write-off under the invoice lock, one method per guarantee, in the order they run:
    `not_written_off_yet` → `fresh_invoice` (gone? an interrupted attempt of ours?) →
    `fresh_decision` (facts, rules, built-in checks) → `send` (budget, attempt mark, the call) →
    `commit`. A step that reaches an outcome records it and raises _Stop."""

    def __init__(
        self,
        ctx: JobContext,
        job: Job | None,
        event: dict[str, Any],
        ruleset: RuleSet,
        now: datetime,
        invoice_id: str,
        *,
        for_facts: bool,
        check_budget: bool,
    ) -> None:
        self.ctx, self.job, self.event, self.ruleset, self.now = ctx, job, event, ruleset, now
        self.invoice_id = invoice_id
        self.for_facts, self.check_budget = for_facts, check_budget
        self.lock: Lock | None = None

    def run(self) -> dict[str, Any]:
        self.not_written_off_yet()
        self.not_undone()
        attempt = load_attempt(self.ctx, self.invoice_id)
        with chargebee_failures(self.ctx, self.job, self.event, invoice_id=self.invoice_id):
            try:
                fresh_event = self.fresh_invoice(attempt)
                self.credits_recovered(fresh_event)
                fresh_event, decision = self.credits_first(*self.fresh_decision(fresh_event))
                result = self.send(fresh_event, decision, attempt)
            except InvalidStateError as exc:
                self.ctx.redis.delete(attempt_key(self.ctx, self.invoice_id))
                self.stop(self.event, None, Outcome.SETTLED_ELSEWHERE, reason=str(exc), invoice_id=self.invoice_id)
            except NotFoundError as exc:  # write_off answered 404: deleted since the fetch
                self.gone(self.event, f"Chargebee has no invoice {self.invoice_id} to write off: {exc}")
        return self.commit(fresh_event, decision, result)

    def stop(self, event: dict[str, Any], decision: Decision | None, outcome: Outcome, **fields: Any) -> NoReturn:
        record_outcome(self.ctx, self.job, event, decision, outcome, **fields)
        raise _Stop(outcome.result(**({"rule": decision.rule} if decision else {})))

    def gone(self, event: dict[str, Any], reason: str) -> NoReturn:
        """Deleted or voided in Chargebee (its dunning settings may do either): nothing to write off,
        and not a failure. A pending attempt mark is moot."""
        self.ctx.redis.delete(attempt_key(self.ctx, self.invoice_id))
        self.stop(event, None, Outcome.GONE, invoice_id=self.invoice_id, reason=reason)

    def renew(self) -> None:
        assert self.lock is not None
        renew_lock(self.lock, self.ctx, self.invoice_id)

    def not_written_off_yet(self) -> None:
        """Our `written_off` mark: an earlier job of ours wrote this invoice off."""
        done = self.ctx.redis.get(self.ctx.keys.written_off(self.invoice_id))
        if done is not None:
            self.stop(self.event, None, Outcome.ALREADY_WRITTEN_OFF, invoice_id=self.invoice_id, detail=done.decode())

    def not_undone(self) -> None:
        """A person undid our write-off of this invoice (reactor/console/undo.py): held until released."""
        why = undone_hold(self.ctx, self.invoice_id)
        if why is not None:
            self.stop(self.event, None, Outcome.HELD, invoice_id=self.invoice_id, reason=why)

    def fresh_invoice(self, attempt: dict[str, Any] | None) -> dict[str, Any]:
        """The event with the invoice as Chargebee has it now; stops when it is gone, or when it shows
        the write-off of an earlier run of ours that never heard the answer."""
        self.renew()
        try:
            fresh_invoice = self.ctx.chargebee.retrieve_invoice(self.invoice_id)
        except NotFoundError as exc:
            self.gone(self.event, f"Chargebee has no invoice {self.invoice_id}: {exc}")
        fresh_event = with_invoice(self.event, fresh_invoice)
        if attempt is not None and (fresh_invoice.get("write_off_amount") or 0) > 0:
            raise _Stop(confirm_interrupted(self.ctx, self.job, fresh_invoice, fresh_event, attempt, self.now))
        why_gone = gone_reason(fresh_invoice)
        if why_gone is not None:
            self.gone(fresh_event, why_gone)
        return fresh_event

    def credits_recovered(self, fresh_event: dict[str, Any]) -> None:
        """Credits an earlier run of ours applied without recording them; stops if they covered it."""
        recovered = recover_credits(self.ctx, self.job, fresh_event)
        if recovered is not None and recovered.covered:
            raise _Stop(Outcome.CREDITS_APPLIED.result(credits=recovered.amount, recovered=True))

    def credits_first(self, fresh_event: dict[str, Any], decision: Decision) -> tuple[dict[str, Any], Decision]:
        """`apply_credits_first`: the customer's credits first (reactor/jobs/credits.py); stops when
        they cover the invoice, else decides again on what they left."""
        rule = self.ruleset.rule(decision.rule or "")
        if rule is None or not rule.apply_credits_first:
            return fresh_event, decision
        applied = apply_credits_first(self.ctx, self.job, fresh_event, decision, self.renew)
        if isinstance(applied, str):
            self.stop(fresh_event, decision, Outcome.FACTS_MISSING, reason=applied)
        if applied is None:
            return fresh_event, decision
        if applied.covered:
            raise _Stop(Outcome.CREDITS_APPLIED.result(rule=decision.rule, credits=applied.amount))
        return self.fresh_decision(applied.event, after="after the credits")

    def fresh_decision(
        self, fresh_event: dict[str, Any], after: str = "fresh invoice"
    ) -> tuple[dict[str, Any], Decision]:
        """The rules and the built-in checks on the fresh invoice, with the facts they read; stops
        unless they still say write_off and rest on nothing unknown."""
        facts = complete_facts(self.ctx.chargebee, self.ruleset, fresh_event, self.now, self.renew)
        fresh_event = facts.event
        decision = decide(self.ruleset, fresh_event, self.now)
        record_decision(TraceLog(self.ctx.redis, self.ctx.keys), self.ruleset, fresh_event, self.now, decision, after)
        if decision.action != "write_off" or decision.dry_run:
            self.ctx.redis.delete(attempt_key(self.ctx, self.invoice_id))
            outcome = fresh_outcome(decision, fetched=bool(facts.fetched), for_facts=self.for_facts)
            reason = decision.reason if outcome != Outcome.CHANGED else f"{after}: {decision.reason}"
            self.stop(fresh_event, decision, outcome, reason=reason, detail=facts.note())
        why_unknown = unresolved(self.ruleset, fresh_event, self.now, decision.rule or "", facts.unknown)
        if why_unknown is not None:
            self.ctx.redis.delete(attempt_key(self.ctx, self.invoice_id))
            self.stop(fresh_event, decision, Outcome.FACTS_MISSING, reason=why_unknown, detail=facts.note())
        return fresh_event, decision

    def send(self, fresh_event: dict[str, Any], decision: Decision, attempt: dict[str, Any] | None) -> WriteOffResult:
        """The budget, the attempt mark and the call (reactor/jobs/send.py); a budget that refuses
        holds the write-off instead."""
        sent = send_write_off(
            self.ctx,
            self.job,
            self.event,
            self.invoice_id,
            decision,
            attempt,
            limits=self.ruleset.limits,
            now=self.now,
            enforce_budget=self.check_budget,
            renew=self.renew,
        )
        if isinstance(sent, str):
            held = hold_write_off(self.ctx, self.job, fresh_event, self.invoice_id, decision, sent, self.now)
            raise _Stop(held)
        return sent

    def commit(self, fresh_event: dict[str, Any], decision: Decision, result: WriteOffResult) -> dict[str, Any]:
        """The `written_off` mark and its audit record (reactor/jobs/send.py)."""
        ctx, job, invoice_id = self.ctx, self.job, self.invoice_id
        return commit_write_off(ctx, job, self.event, fresh_event, invoice_id, decision, result, self.now)
