"""A job run in the worker process (a triage job; every job of REACTOR_WORKER_CLASS=simple) keeps its
execution alive with heartbeats while it runs, as a work horse's parent does, and stops them before
the execution ends (reactor/jobs/worker.py, run_in_process). On a real Redis, with RQ's registries."""

from __future__ import annotations

import threading
import time

import redis
from rq import Queue

from reactor.jobs.worker import ReactorWorker

ABANDONED_AFTER = 2
"""Seconds an execution lives after its last heartbeat; the job below runs well past it."""


def test_a_job_run_in_the_worker_process_stays_alive_past_its_heartbeat_ttl_and_ends_cleanly(
    redis_conn: redis.Redis,
) -> None:
    queue = Queue("reactor", connection=redis_conn)
    worker = ReactorWorker([queue], connection=redis_conn, abandoned_after=ABANDONED_AFTER, job_monitoring_interval=1)
    worker.register_birth()
    job = queue.enqueue("time.sleep", ABANDONED_AFTER + 1.5, result_ttl=0)
    assert queue.dequeue_any([queue], timeout=None, connection=redis_conn) is not None  # taken, as RQ takes it

    seen: list[tuple[float, float]] = []  # (when, the execution's expiry) while the job runs
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            now = time.time()
            for _member, expiry in redis_conn.zrange(queue.started_job_registry.key, 0, -1, withscores=True):
                seen.append((now, expiry))
            done.wait(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        worker.run_in_process(job, queue)
    finally:
        done.set()
        watcher.join()

    late = [(when, expiry) for when, expiry in seen if when > seen[0][0] + ABANDONED_AFTER + 0.5]
    assert late, "the job should have been seen running past its first heartbeat TTL"
    assert all(expiry > when for when, expiry in seen), "its execution expired while it ran"

    for thread in threading.enumerate():  # the heartbeat thread ends on its own; none beats after the job
        if thread.name.startswith("heartbeats "):
            thread.join(timeout=10)
            assert not thread.is_alive()
    assert redis_conn.zcard(queue.started_job_registry.key) == 0
    assert not redis_conn.exists(job.key)  # result_ttl 0: deleted at its end, not brought back by a heartbeat
