"""A job that found no rate-limit slot is deferred, not failed: it keeps all its retries."""

from __future__ import annotations

from rq import Queue, Retry

from reactor.jobs.retries import defer


def test_a_throttled_job_gets_its_retry_back_and_waits_until_the_slot_frees(redis_conn):
    job = Queue("t", connection=redis_conn).enqueue(
        "reactor.jobs.evaluate", "ev_1", retry=Retry(max=2, interval=[1, 1])
    )
    defer(job, 7.2)
    assert job.retries_left == 3
    assert job.get_retry_interval() == 8  # what RQ will wait before the next run


def test_the_throttle_is_honoured_on_the_last_retry_as_well(redis_conn):
    job = Queue("t", connection=redis_conn).enqueue(
        "reactor.jobs.evaluate", "ev_2", retry=Retry(max=2, interval=[1, 1])
    )
    job.retries_left = 0
    defer(job, 3)
    assert job.retries_left == 1
    assert job.get_retry_interval() == 3
