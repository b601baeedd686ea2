"""What an error means for RQ's next attempt: a wait for the rate limit gives the attempt back, a
Retry-After lengthens the next interval."""

from __future__ import annotations

import math

from rq.job import Job


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
