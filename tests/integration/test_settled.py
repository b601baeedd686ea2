"""`wait_settled`, on which the tests that show something did *not* happen rely: it must see every
job that could still act, in each state RQ keeps one in, and no job that has ended."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from rq import Queue, Retry
from rq.job import JobStatus

from tests.helpers import pending_jobs

pytestmark = pytest.mark.integration


def test_queued_scheduled_started_and_deferred_jobs_are_pending(redis_conn: redis.Redis) -> None:
    queue = Queue("settled", connection=redis_conn)
    queued = queue.enqueue("builtins.print", job_id="queued")
    scheduled = queue.enqueue_in(timedelta(hours=1), "builtins.print", job_id="scheduled")
    started = queue.enqueue("builtins.print", job_id="started")
    started.set_status(JobStatus.STARTED)
    deferred = queue.enqueue("builtins.print", job_id="deferred", depends_on=scheduled)
    retrying = queue.enqueue("builtins.print", job_id="retrying", retry=Retry(max=2, interval=60))
    retrying.set_status(JobStatus.SCHEDULED)  # what RQ sets when a failed job waits for its retry

    assert sorted(pending_jobs(redis_conn)) == sorted(j.id for j in (queued, scheduled, started, deferred, retrying))


def test_jobs_that_ended_are_not_pending_and_other_keys_are_ignored(redis_conn: redis.Redis) -> None:
    queue = Queue("settled", connection=redis_conn)
    failed = queue.enqueue("builtins.print", job_id="failed")
    failed.set_status(JobStatus.FAILED)
    finished = queue.enqueue("builtins.print", job_id="finished")
    finished.set_status(JobStatus.FINISHED)
    queue.enqueue("builtins.print", job_id="gone").delete()
    redis_conn.sadd("rq:job:failed:dependents", "x")  # not a job's hash

    assert pending_jobs(redis_conn) == []
