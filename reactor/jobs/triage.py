"""The triage job: drain the inbox (reactor/ingest/inbox.py) a batch at a time. Each event is decided
as its evaluation job would decide it (`triage_evaluation`, the same code); what needs nothing from
Chargebee is recorded here, and every other event is an `OwnJob`, handed to `evaluate-<event id>`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from rq.timeouts import JobTimeoutException

from ..ingest.enqueue import JobSpec
from ..ingest.envelope import Event
from ..ingest.events import EventStore, evaluation_job_id, retry_policy
from ..ingest.inbox import TRIAGE_JOB_TIMEOUT
from ..keys import EVALUATE_JOB, TRIAGE_JOB
from .context import JobContext
from .evaluate import OwnJob, triage_evaluation

log = logging.getLogger(__package__)

BATCH = 200
"""Events claimed at a time."""
TIME_BUDGET = 5.0
"""Seconds a triage job claims new batches before it leaves the rest to a successor (enqueued ahead
of the queue), so that a worker asked to stop is not held up, and its claims stay short."""


def run_triage(ctx: JobContext, job: Job | None = None, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Drain the inbox until it is empty or the time budget is spent. Returns the counts."""
    inbox = ctx.events.inbox
    owner = job.id if job is not None else None
    started = time.monotonic()
    decided = handed = 0
    while True:
        claim = inbox.claim(BATCH, clock(), owner)
        if not claim:
            break
        ids = list(dict.fromkeys(claim.ids))  # an id appended twice (a 503'd accept, retried) once
        # An event a triage job claimed and never finished is taken again after its lease, to its own
        # job: whatever stopped that job is not tried twice here.
        to_job = list(dict.fromkeys(claim.retaken))
        if to_job:
            log.warning(
                "%d events were claimed by a triage job (or an earlier attempt of this one) that did not "
                "finish them; each gets its own job",
                len(to_job),
            )
        for event_id in ids:
            if event_id in to_job:
                continue
            try:
                outcome = triage_evaluation(ctx, event_id)
            except (JobTimeoutException, redis.ConnectionError, redis.TimeoutError):
                # The job ran too long, or Redis went away: the job stops here, and its claims are
                # taken again after their lease, each to its own job (a retry of this job, or any
                # triage job, takes the inbox's other events at once).
                raise
            except Exception:
                # Fail closed: its job retries it and, failing, makes it a dead letter; a protective
                # rule that raises is never passed over.
                log.exception("triage of event %s failed; it gets its own evaluation job", event_id)
                outcome = OwnJob(event_id, "its triage raised")
            if isinstance(outcome, OwnJob):
                to_job.append(event_id)
            else:
                decided += 1
        hand_to_jobs(ctx.events, to_job)
        inbox.finish(ids, owner)
        handed += len(to_job)
        if time.monotonic() - started >= TIME_BUDGET:
            enqueue_triage(ctx, woken_by=job.id if job is not None else "a triage run")
            break
    return {"decided": decided, "handed_to_jobs": handed}


def hand_to_jobs(store: EventStore, event_ids: list[str]) -> None:
    """Queue an evaluation job for each event, in one transaction (RQ's writes, reactor/ingest/enqueue.py)."""
    if not event_ids:
        return
    store.queue_jobs(store.jobs, EVALUATE_JOB, [_spec(store, event_id) for event_id in event_ids])


def _spec(store: EventStore, event_id: str) -> JobSpec:
    try:
        seen = store.load(event_id) or Event.from_data({})
    except Exception:  # unreadable: the job records what it finds
        log.exception("could not read event %s to describe its job", event_id)
        seen = Event.from_data({})
    return JobSpec(event_id, seen.event_type or "?", seen.invoice_id or "?", evaluation_job_id(event_id, store.site))


def enqueue_triage(ctx: JobContext, woken_by: str) -> None:
    """Queue a triage job ahead of the evaluation jobs."""
    ctx.queue.enqueue(
        TRIAGE_JOB,
        woken_by,
        job_id=f"triage-{uuid.uuid4().hex}",
        at_front=True,
        retry=retry_policy(ctx.settings),
        job_timeout=TRIAGE_JOB_TIMEOUT,
        result_ttl=0,
        failure_ttl=ctx.settings.event_ttl,
        description=f"triage the inbox (after {woken_by})",
        meta={"woken_by": woken_by},
    )


def triage_on_its_way(queue: Queue) -> bool:
    """Whether a triage job is queued (they are pushed in front: the head of the queue is read, and a
    retry queued further back may be missed, which costs a second triage job, not an event),
    running, or scheduled for a retry."""
    if any(job_id.startswith(b"triage-") for job_id in queue.connection.lrange(queue.key, 0, 99)):
        return True
    for registry in (queue.started_job_registry, queue.scheduled_job_registry):
        if next(queue.connection.zscan_iter(registry.key, match="triage-*", count=1000), None) is not None:
            return True
    return False


def wake_triage(ctx: JobContext, clock: Callable[[], float] = time.time) -> bool:
    """Workers' maintenance: enqueue a triage job when events wait and none is queued, started or
    scheduled (one that failed for good, one whose writes a failed-over primary lost, one whose
    worker died before its retry). True when one was enqueued."""
    if triage_on_its_way(ctx.queue):
        return False
    inbox = ctx.events.inbox
    if not inbox.needs_drainer(clock()):
        return False
    try:
        enqueue_triage(ctx, woken_by="maintenance")
    except Exception:
        inbox.release_drainer()
        raise
    log.warning("events waited in the inbox with no triage job on its way; one is queued")
    return True
