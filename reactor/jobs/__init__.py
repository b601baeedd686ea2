"""RQ's job functions: `triage` the inbox of accepted events, `evaluate` a stored event,
`release_held` a write-off a person released, `recheck` an invoice when a time-based rule can first
match. RQ stores these paths in Redis (`reactor.jobs.evaluate`, ...), so they stay here; the work is
in the modules beside them (docs/design.md, "Modules"). jobs/ holds what the workers run; what only
the CLI, the dashboard and cron run is in reactor/console/. docs/guarantees.md says what each
guarantee of the write-off holds, and which test proves it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from ..chargebee import ChargebeeError, Throttled
from ..ingest.envelope import Event
from ..keys import EVALUATE_JOB, RECHECK_JOB, RELEASE_HELD_JOB, TRIAGE_JOB
from .approval_marks import GivenApprovals
from .audit import Outcome
from .context import JobContext, build_context, build_rate_limit, context_for, current_context, install, installed
from .evaluate import run_evaluation, run_release
from .rechecks import run_recheck
from .retries import will_retry
from .send import idempotency_key
from .trail import record_outcome
from .triage import run_triage
from .write_off import write_off_invoice

__all__ = [
    "JobContext",
    "build_context",
    "build_rate_limit",
    "context_for",
    "current_context",
    "evaluate",
    "failures_recorded",
    "idempotency_key",
    "install",
    "installed",
    "recheck",
    "record_interrupted",
    "release_held",
    "run_evaluation",
    "triage",
    "write_off_invoice",
]

log = logging.getLogger(__package__)  # "reactor.jobs", the logger the job wing has always logged as


def evaluate(event_id: str) -> dict[str, Any]:
    """RQ job: decide on a stored event and act on the decision."""
    ctx, job = current_context(), get_current_job()
    with failures_recorded(ctx, job):
        return run_evaluation(ctx, event_id, job)


def release_held(
    event: dict[str, Any], actor: str, approvals: dict[str, Any] | None = None, released: bool = False
) -> dict[str, Any]:
    """RQ job: a person released a held write-off (reactor/jobs/held.py), or gave the last approval it
    waited for (`approvals`, reactor/jobs/approvals.py); decide again. A release skips the budget, an
    approval does not; a release of a budget hold that carries approvals passes them with `released`.
    `event` is the held event as RQ stored it (a dict, as releases before this one stored it too);
    jobs queued before approvals existed carry two arguments."""
    ctx, job = current_context(), get_current_job()
    with failures_recorded(ctx, job):
        given = GivenApprovals.from_data(approvals)
        return run_release(ctx, Event.from_data(event), actor, job, given, released)


def triage(woken_by: str) -> dict[str, Any]:
    """RQ job: drain the inbox, deciding what needs no Chargebee call and handing every other event to
    its own `evaluate` job (reactor/jobs/triage.py). `woken_by`: the event or job that queued it."""
    return run_triage(current_context(), get_current_job())


def recheck(invoice_id: str) -> dict[str, Any]:
    """RQ job, scheduled: decide again when a time-based rule can first match (reactor/jobs/rechecks.py)."""
    ctx, job = current_context(), get_current_job()
    with failures_recorded(ctx, job):
        return run_recheck(ctx, invoice_id, job)


@contextmanager
def failures_recorded(ctx: JobContext, job: Job | None) -> Iterator[None]:
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
        record_interrupted(ctx, job, Outcome.TIMED_OUT, f"the job ran past its timeout ({timeout} s) and was stopped")
        raise
    except Exception as exc:
        outcome = Outcome.RETRYING if will_retry(job) else Outcome.FAILED
        record_interrupted(ctx, job, outcome, f"the decision stopped on an error: {type(exc).__name__}: {exc}")
        raise


def record_interrupted(ctx: JobContext, job: Job | None, outcome: Outcome, reason: str) -> None:
    """Record an attempt that ended early (an error, a timeout, a killed work horse), naming its
    event and invoice as far as the job's arguments tell them. Never raises: the caller is already
    handling a failure, and Redis may be the reason for it."""
    event: Event | None = None
    invoice_id: str | None = None
    event_id: str | None = None
    if job is not None and job.func_name == TRIAGE_JOB:
        return  # its events are taken again after their lease, each by its own job, which records them
    try:
        args = tuple(job.args) if job is not None else ()
        name = job.func_name if job is not None else ""
        if name == EVALUATE_JOB and args and isinstance(args[0], str):
            event_id = args[0]
            event = ctx.events.load(event_id)
        elif name == RELEASE_HELD_JOB and args and isinstance(args[0], dict):
            event = Event.from_data(args[0])
        elif name == RECHECK_JOB and args and isinstance(args[0], str):
            invoice_id = args[0]
        retry_note = "; RQ will run it again" if will_retry(job) else "; no retries left: it is in the dead letters"
        record_outcome(
            ctx, job, event, None, outcome, invoice_id=invoice_id, event_id=event_id, reason=reason + retry_note
        )
    except Exception:
        log.exception("could not record the %s attempt of job %s", outcome, getattr(job, "id", None))
