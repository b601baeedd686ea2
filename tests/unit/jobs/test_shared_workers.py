"""A worker serving several sites (reactor/jobs/worker.py): which sites' queues it passes over, and
which queue it looks at first after a triage job. On a real Redis, with RQ's own registries."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import redis
from rq import Queue, Worker
from rq.exceptions import StopRequested
from rq.job import Job

from reactor import jobs
from reactor.chargebee.ratelimit import ChargebeeRateLimit
from reactor.jobs.worker import PASS_OVER_POLL, ReactorWorker, sites_to_pass_over
from reactor.keys import EVALUATE_JOB, TRIAGE_JOB, Keys


@pytest.fixture
def queues(redis_conn: redis.Redis) -> list[Queue]:
    return [Queue("reactor", connection=redis_conn), Queue("reactor:acme-eu", connection=redis_conn)]


def register_workers(redis_conn: redis.Redis, queues: list[Queue], n: int) -> None:
    for i in range(n):
        Worker(queues, connection=redis_conn, name=f"shared-{i}").register_birth()


def queued(redis_conn: redis.Redis, queue: Queue, n: int) -> None:
    """`n` jobs waiting in `queue` (their ids: only the queue's length is read)."""
    redis_conn.delete(queue.key)
    if n:
        redis_conn.rpush(queue.key, *(f"evaluate-ev_waiting_{i}" for i in range(n)))


def running(redis_conn: redis.Redis, queue: Queue, job_id: str, expires_in: float) -> None:
    """A job of `queue` in RQ's StartedJobRegistry, its execution expiring in `expires_in` s."""
    redis_conn.zadd(queue.started_job_registry.key, {f"{job_id}:exec-1": time.time() + expires_in})


def test_a_site_whose_jobs_run_on_all_but_one_worker_is_passed_over(redis_conn, queues) -> None:
    home, eu = queues
    register_workers(redis_conn, queues, 2)
    running(redis_conn, home, "evaluate-ev_1", expires_in=60)
    queued(redis_conn, home, 2)

    assert sites_to_pass_over(queues, {}, {}, redis_conn) == {home.name: PASS_OVER_POLL}

    running(redis_conn, eu, "evaluate-ev_2--acme-eu", expires_in=60)  # every site at its share
    queued(redis_conn, eu, 5)
    assert sites_to_pass_over(queues, {}, {}, redis_conn) == {home.name: PASS_OVER_POLL, eu.name: PASS_OVER_POLL}

    queued(redis_conn, home, 1)  # keeping up: its one job left may take the last worker
    assert sites_to_pass_over(queues, {}, {}, redis_conn) == {eu.name: PASS_OVER_POLL}


def test_an_expired_execution_or_a_single_worker_leaves_the_site_open(redis_conn, queues) -> None:
    home, _eu = queues
    register_workers(redis_conn, queues, 2)
    queued(redis_conn, home, 3)
    running(redis_conn, home, "evaluate-ev_dead", expires_in=-5)  # its worker died: not running
    assert sites_to_pass_over(queues, {}, {}, redis_conn) == {}

    redis_conn.flushall()
    register_workers(redis_conn, queues, 1)  # one worker: nothing to keep free
    queued(redis_conn, home, 3)
    running(redis_conn, home, "evaluate-ev_1", expires_in=60)
    assert sites_to_pass_over(queues, {}, {}, redis_conn) == {}


def test_a_site_with_no_call_slot_is_passed_over_until_its_slot_frees(redis_conn, queues) -> None:
    home, eu = queues
    spent = ChargebeeRateLimit(redis_conn, calls=1, window=60, scope="acme-us")
    spent.acquire()
    fresh = ChargebeeRateLimit(redis_conn, calls=1, window=60, scope="acme-eu", key_prefix="reactor:site:acme-eu")

    passed = sites_to_pass_over(queues, {home.name: spent, eu.name: fresh}, {}, redis_conn)

    assert list(passed) == [home.name]
    assert 50 < passed[home.name] <= 60


class UnreadableLimit:
    def free_in(self) -> float:
        raise redis.ConnectionError("Redis went away")


def test_a_site_whose_limit_cannot_be_read_is_not_passed_over(redis_conn, queues) -> None:
    home, _eu = queues
    assert sites_to_pass_over(queues, {home.name: UnreadableLimit()}, {}, redis_conn) == {}  # type: ignore[dict-item]


def test_after_a_triage_job_its_queue_is_looked_at_first_once(redis_conn, queues) -> None:
    home, eu = queues
    worker = ReactorWorker(queues, connection=redis_conn)
    triage = Job.create(TRIAGE_JOB, connection=redis_conn)
    evaluate = Job.create(EVALUATE_JOB, args=("ev_1",), connection=redis_conn)

    worker._ordered_queues = [eu, home]  # RQ's round robin, having taken a job from `home`
    worker.take_next_from(triage, home)
    assert [q.name for q in worker._ordered_queues] == [home.name, eu.name]  # its events' jobs next

    worker._ordered_queues = [eu, home]
    worker.take_next_from(triage, home)  # a successor taken that way: the turn moves on
    assert [q.name for q in worker._ordered_queues] == [eu.name, home.name]

    worker.take_next_from(evaluate, home)  # not a triage job: RQ's order stands
    assert [q.name for q in worker._ordered_queues] == [eu.name, home.name]

    worker._ordered_queues = [home, eu]  # and the next triage job stays again
    worker.take_next_from(triage, eu)
    assert [q.name for q in worker._ordered_queues] == [eu.name, home.name]


def test_a_sites_share_is_claimed_by_one_worker_at_a_time(redis_conn, queues) -> None:
    home, eu = queues
    first, second = (ReactorWorker(queues, connection=redis_conn, name=f"w{n}") for n in (1, 2))
    for worker in (first, second):
        worker.register_birth()
    claims = "reactor:worker_claims"
    queued(redis_conn, home, 3)  # a backlog: acme-us's jobs keep to their share

    assert first.claim_share(home, claims)  # two workers: one may run acme-us's jobs
    assert not second.claim_share(home, claims)  # woken by the same slot: it keeps off
    assert sites_to_pass_over(queues, {}, {home.name: claims}, redis_conn) == {home.name: PASS_OVER_POLL}
    assert second.claim_share(eu, "reactor:site:acme-eu:worker_claims")  # the other site's share is its own

    first.release_claim()  # its job is in RQ's StartedJobRegistry now, or done
    running(redis_conn, home, "evaluate-ev_1", expires_in=60)
    assert not second.claim_share(home, claims)
    redis_conn.delete(home.started_job_registry.key)
    assert second.claim_share(home, claims)

    queued(redis_conn, home, 0)  # the job taken was its last: acme-us keeps up, any worker may run it
    running(redis_conn, home, "evaluate-ev_2", expires_in=60)
    assert first.claim_share(home, claims)


def test_a_job_taken_when_the_worker_is_told_to_stop_goes_back_to_its_queue(redis_conn, queues, monkeypatch) -> None:
    home, eu = queues
    prefixes = {home.name: "reactor", eu.name: "reactor:site:acme-eu"}
    sites = [SimpleNamespace(queue=q, rate_limit=None, keys=Keys(prefixes[q.name])) for q in queues]
    monkeypatch.setattr(jobs, "installed", lambda: tuple(sites))
    worker = ReactorWorker(queues, connection=redis_conn, name="stopping")
    worker.register_birth()
    job = home.enqueue(EVALUATE_JOB, "ev_1", job_id="evaluate-ev_1")

    def stop(queue: Queue, key: str) -> bool:
        raise StopRequested()  # SIGTERM landing between the dequeue and the claim

    monkeypatch.setattr(worker, "claim_share", stop)
    with pytest.raises(StopRequested):
        worker.dequeue_job_and_maintain_ttl(timeout=1)
    assert home.job_ids == [job.id]
