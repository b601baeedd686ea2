"""What a Chargebee error means for an RQ job, written once (`chargebee_failures`): a wait for the
rate limit gives the attempt back, a Retry-After lengthens the next interval, a retryable error is
recorded `retrying` (or `failed` after the last attempt), and a refused request goes straight to
the dead letters."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rq.job import Job

from ..chargebee import AuthError, ChargebeeError, RetryableError, Throttled
from ..ingest.envelope import Event
from .audit import Outcome
from .trail import record_outcome

if TYPE_CHECKING:
    from .context import JobContext

log = logging.getLogger(__package__)  # "reactor.jobs", the logger the job wing has always logged as


@contextmanager
def chargebee_failures(
    ctx: JobContext, job: Job | None, event: Event | None, *, invoice_id: str | None = None, doing: str | None = None
) -> Iterator[None]:
    """Record what a Chargebee error that ends this attempt means, then raise it for RQ.

    Throttled: deferred, no retry used up, nothing recorded (a deferral on an invoice is logged).
    RetryableError: the next retry waits at least Retry-After; recorded `retrying`, or `failed`
    when no retry is left. Any other ChargebeeError: retrying cannot help (a refused key or
    request), so no retry is left and it is recorded `failed`. `doing` prefixes the reason.
    A caller that treats an error as an outcome (settled elsewhere, gone) catches it inside."""
    try:
        yield
    except Throttled as exc:
        defer(job, exc.retry_after)
        if invoice_id is not None:
            log.info("invoice %s: %s; deferred", invoice_id, exc, extra={"invoice_id": invoice_id})
        raise
    except RetryableError as exc:
        stretch_retry(job, exc.retry_after)
        outcome = Outcome.RETRYING if will_retry(job) else Outcome.FAILED
        record_outcome(ctx, job, event, None, outcome, invoice_id=invoice_id, reason=_reason(doing, exc))
        raise
    except ChargebeeError as exc:
        if job is not None:
            job.retries_left = 0  # retrying a refused request cannot help: straight to the dead letters
        if isinstance(exc, AuthError):  # every job fails alike until a person fixes the key: told once an hour
            ctx.notices.add("chargebee_auth", _reason(doing, exc), once=f"chargebee_auth:{exc.status}")
        record_outcome(ctx, job, event, None, Outcome.FAILED, invoice_id=invoice_id, reason=_reason(doing, exc))
        raise


def _reason(doing: str | None, exc: Exception) -> str:
    return f"{doing}: {exc}" if doing else str(exc)


def defer(job: Job | None, retry_after: float | None) -> None:
    """Waiting for a rate-limit slot is not a failed attempt: give the retry back, then wait."""
    if job is not None and job.retries_left is not None:
        job.retries_left += 1
    stretch_retry(job, retry_after)


def will_retry(job: Job | None) -> bool:
    """Whether RQ will run the job again after this attempt fails."""
    return bool(job and job.retries_left and job.retries_left > 0)


def stretch_retry(job: Job | None, retry_after: float | None) -> None:
    """Make RQ's next retry wait at least Retry-After: RQ reads the interval from this job object
    when it schedules the retry, in the same process, right after the job raises."""
    if job is None or retry_after is None or not job.retries_left or not job.retry_intervals:
        return
    intervals = list(job.retry_intervals)
    index = min(max(len(intervals) - job.retries_left, 0), len(intervals) - 1)
    intervals[index] = max(intervals[index], math.ceil(retry_after))
    job.retry_intervals = intervals
