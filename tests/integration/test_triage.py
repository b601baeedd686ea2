"""Triage (REACTOR_TRIAGE, on by default): accepted events wait in the inbox, a triage job decides
what needs no Chargebee call in batches, and hands every other event to its own evaluation job.
On real Redis, a real sandbox over HTTP and real `reactor worker` processes."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from reactor.ingest.envelope import parse_event
from reactor.ingest.events import EventStore, evaluation_job_id, triage_job_id
from reactor.ingest.inbox import LEASE
from reactor.jobs import build_context, run_evaluation
from reactor.jobs.audit import AuditLog
from reactor.jobs.triage import run_triage
from reactor.keys import Keys
from reactor.rules import RuleSet
from reactor.rules.conditions import Condition, _resource_field_test
from reactor.rules.fields import parse_field
from reactor.rules.model import Rule
from tests.helpers import wait_for, wait_settled
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event
from tests.integration.ops_helpers import reactor

pytestmark = pytest.mark.integration

KEYS = Keys()


def store_for(settings, connection) -> EventStore:
    return EventStore.from_settings(connection, Queue(settings.queue_name, connection=connection), settings)


def accept(store: EventStore, event: dict[str, Any]) -> None:
    assert store.accept(parse_event(json.dumps(event).encode()), "reactor.jobs.evaluate").outcome == "queued"


def records(connection, outcome: str) -> list:
    return [r for r in AuditLog(connection).query(limit=10_000) if r.outcome == outcome]


def test_events_no_rule_acts_on_are_decided_in_the_triage_job_and_write_offs_get_a_job_each(
    sandbox, web, settings, redis_conn, start_worker
):
    small = [exhausted_invoice(sandbox) for _ in range(5)]  # $12.50: written off
    large = [exhausted_invoice(sandbox, amount_due=9000, total=9000) for _ in range(40)]  # no rule
    events = [make_event(invoice) for invoice in [*large, *small]]
    for event in events:
        assert post_event(web.webhook_url, event).json()["status"] == "queued"
    queue = Queue(settings.queue_name, connection=redis_conn)
    assert redis_conn.llen(KEYS.inbox()) == 45
    assert queue.job_ids == [triage_job_id(events[0]["id"])]  # the first event woke one triage job

    start_worker()
    wait_for(lambda: len(records(redis_conn, "written_off")) == 5, timeout=30, what="5 write-offs")
    wait_settled(redis_conn)

    no_match = records(redis_conn, "no_match")
    assert sorted(r.event_id for r in no_match) == sorted(e["id"] for e in events[:40])
    assert {r.job_id for r in no_match} == {None}  # decided in the batch, no job of their own
    written = records(redis_conn, "written_off")
    assert {r.job_id for r in written} == {evaluation_job_id(e["id"]) for e in events[40:]}
    assert len(sandbox.state.write_off_calls()) == 5
    assert not redis_conn.exists(KEYS.inbox(), KEYS.inbox_claimed(), KEYS.inbox_drainer())


def test_a_burst_wakes_one_triage_job_and_an_event_after_the_inbox_emptied_wakes_the_next(
    sandbox, settings, redis_conn
):
    store = store_for(settings, redis_conn)
    queue = Queue(settings.queue_name, connection=redis_conn)
    first, second = make_event(exhausted_invoice(sandbox)), make_event(exhausted_invoice(sandbox))
    accept(store, first)
    accept(store, second)
    assert queue.job_ids == [triage_job_id(first["id"])]
    assert redis_conn.ttl(KEYS.inbox_drainer()) > 0

    now = time.time()
    claim = store.inbox.claim(10, now)
    assert (claim.retaken, claim.fresh) == ([], [first["id"], second["id"]])
    assert not store.inbox.claim(10, now)  # nothing left: the drainer mark goes in the same script
    assert not redis_conn.exists(KEYS.inbox_drainer())

    third = make_event(exhausted_invoice(sandbox))
    accept(store, third)
    assert queue.job_ids == [triage_job_id(third["id"]), triage_job_id(first["id"])]  # ahead of the queue


def test_an_event_whose_triage_job_could_not_be_queued_is_still_accepted_and_the_mark_is_released(
    sandbox, settings, redis_conn, monkeypatch
):
    """The triage job is queued in a second round trip, by the first event of a burst only. If that
    fails, the event is stored and in the inbox already: accepted, and the drainer mark removed so
    that the next event, or a worker's maintenance, queues a triage job."""
    store = store_for(settings, redis_conn)
    monkeypatch.setattr(store.triage_jobs, "commands", lambda *_args: [("NO-SUCH-COMMAND",)])
    event = make_event(exhausted_invoice(sandbox))

    accept(store, event)

    assert redis_conn.lrange(KEYS.inbox(), 0, -1) == [event["id"].encode()]
    assert not redis_conn.exists(KEYS.inbox_drainer())
    assert Queue(settings.queue_name, connection=redis_conn).job_ids == []


def test_an_event_whose_triage_raises_is_handed_to_its_own_job_with_nothing_recorded_or_written_off(
    sandbox, settings, redis_conn
):
    """Fail closed: a protective rule that cannot be evaluated in triage is not passed over there;
    the event's own job decides it (and retries it, then makes it a dead letter, as for any job)."""
    ctx = build_context(settings, redis_conn)
    base = ctx.rules.current()
    skip = Rule("protect-everyone", "skip", raising_condition())
    ctx = dataclasses.replace(ctx, rules=Fixed(dataclasses.replace(base, rules=(skip, *base.rules))))
    event = make_event(exhausted_invoice(sandbox))
    accept(ctx.events, event)
    Queue(settings.queue_name, connection=redis_conn).empty()  # run the triage here instead

    assert run_triage(ctx) == {"decided": 0, "handed_to_jobs": 1}

    assert Queue(settings.queue_name, connection=redis_conn).job_ids == [evaluation_job_id(event["id"])]
    assert outcomes(redis_conn, event["content"]["invoice"]["id"]) == []
    assert sandbox.state.write_off_calls() == []
    assert not redis_conn.exists(KEYS.inbox(), KEYS.inbox_claimed())


def test_events_claimed_by_a_triage_job_that_died_are_taken_again_each_by_its_own_job_and_written_off_once(
    sandbox, settings, redis_conn, start_worker
):
    store = store_for(settings, redis_conn)
    events = [make_event(exhausted_invoice(sandbox)) for _ in range(3)]
    for event in events:
        accept(store, event)
    Queue(settings.queue_name, connection=redis_conn).empty()
    assert len(store.inbox.claim(10, time.time()).fresh) == 3  # by a triage job that then died
    ctx = build_context(settings, redis_conn)

    assert run_triage(ctx) == {"decided": 0, "handed_to_jobs": 0}  # leased: not taken before its end
    after_the_lease = time.time() + LEASE + 1
    assert run_triage(ctx, clock=lambda: after_the_lease) == {"decided": 0, "handed_to_jobs": 3}

    start_worker()
    wait_for(lambda: len(records(redis_conn, "written_off")) == 3, timeout=30, what="3 write-offs")
    wait_settled(redis_conn)
    assert len(sandbox.state.write_off_calls()) == 3
    assert len(records(redis_conn, "written_off")) == 3


def test_the_next_attempt_of_a_triage_job_takes_its_own_unfinished_claims_at_once(sandbox, settings, redis_conn):
    """RQ's retry of a triage job that raised (Redis gone mid-batch), or the recovery of one whose
    worker died, keeps the job id: its claims are handed on at once, not after their lease."""
    store = store_for(settings, redis_conn)
    events = [make_event(exhausted_invoice(sandbox)) for _ in range(3)]
    for event in events:
        accept(store, event)
    Queue(settings.queue_name, connection=redis_conn).empty()
    assert len(store.inbox.claim(2, time.time(), owner="triage-attempt").fresh) == 2  # then it raised
    ctx = build_context(settings, redis_conn)

    assert run_triage(ctx, AnAttempt("triage-other")) == {"decided": 0, "handed_to_jobs": 1}  # the 3rd
    assert run_triage(ctx, AnAttempt("triage-attempt")) == {"decided": 0, "handed_to_jobs": 2}

    assert sorted(Queue(settings.queue_name, connection=redis_conn).job_ids) == sorted(
        evaluation_job_id(e["id"]) for e in events
    )
    assert not redis_conn.exists(KEYS.inbox(), KEYS.inbox_claimed(), KEYS.inbox_claims("triage-attempt"))


def test_a_worker_queues_a_triage_job_for_events_left_with_none_on_its_way(sandbox, settings, redis_conn, start_worker):
    store = store_for(settings, redis_conn)
    events = [make_event(exhausted_invoice(sandbox)) for _ in range(3)]
    for event in events:
        accept(store, event)
    Queue(settings.queue_name, connection=redis_conn).empty()  # the triage job lost for good
    assert redis_conn.ttl(KEYS.inbox_drainer()) > 60  # its mark stays (as after a failover that lost the job)

    start_worker(dataclasses.replace(settings, maintenance_interval=1))
    wait_for(lambda: len(records(redis_conn, "written_off")) == 3, timeout=30, what="3 write-offs")
    wait_settled(redis_conn)
    assert len(sandbox.state.write_off_calls()) == 3


def test_with_triage_off_each_event_gets_its_own_evaluation_job_as_before(sandbox, settings, redis_conn):
    store = store_for(dataclasses.replace(settings, triage=False), redis_conn)
    event = make_event(exhausted_invoice(sandbox))
    accept(store, event)
    assert Queue(settings.queue_name, connection=redis_conn).job_ids == [evaluation_job_id(event["id"])]
    assert not redis_conn.exists(KEYS.inbox(), KEYS.inbox_drainer())


class AnAttempt:
    """What run_triage reads of its RQ job: the id."""

    def __init__(self, job_id: str):
        self.id = job_id


class Fixed:
    """LiveRules' interface over one RuleSet."""

    def __init__(self, ruleset: RuleSet):
        self.ruleset = ruleset

    def current(self) -> RuleSet:
        return self.ruleset


def raising_condition() -> Condition:
    status = parse_field("invoice.status")

    def check(*_args: Any) -> bool:
        raise RuntimeError("a bug in a protective rule")

    return Condition("field", _resource_field_test("invoice", "status", status.getter(), check), 1, 1, field=status)


def test_an_event_handed_to_its_own_job_is_not_made_stale_by_a_newer_event_triaged_after_it(
    sandbox, settings, redis_conn
):
    """Triage decides in arrival order, but an event it hands on is acted on later, by its own job
    at the back of the queue. A newer event of the invoice that triage records meanwhile (here one
    no write_off rule listens to) must not make the older one stale: the stale check was made, in
    order, in triage. Acting is still on the fresh invoice (guarantees.md, out-of-order events)."""
    ctx = build_context(settings, redis_conn)
    invoice = exhausted_invoice(sandbox)
    older = make_event({**invoice, "resource_version": invoice["resource_version"] + 1000})
    newer = make_event({**invoice, "resource_version": invoice["resource_version"] + 2000}, "dunning_updated")
    accept(ctx.events, older)
    accept(ctx.events, newer)
    Queue(settings.queue_name, connection=redis_conn).empty()  # run the triage here instead

    assert run_triage(ctx) == {"decided": 1, "handed_to_jobs": 1}
    assert outcomes(redis_conn, invoice["id"]) == ["no_match"]  # the newer event, in the batch

    assert run_evaluation(ctx, older["id"])["outcome"] == "written_off"  # its own job
    assert len(sandbox.state.write_off_calls()) == 1
    # A later run of that job (a retry, a replay) is checked again: the newer event was seen.
    assert run_evaluation(ctx, older["id"])["outcome"] == "stale"
    assert len(sandbox.state.write_off_calls()) == 1


def test_a_dead_triage_job_is_shown_as_one_a_replay_runs_again_and_its_replay_drains_the_inbox(
    sandbox, web, settings, redis_conn, start_worker
):
    """A triage job has no stored event of its own: `dlq show` must not say a replay cannot re-decide
    it (on-call would purge it instead), and replaying it decides the events it was woken for."""
    event = make_event(exhausted_invoice(sandbox))
    assert post_event(web.webhook_url, event).json()["status"] == "queued"
    queue = Queue(settings.queue_name, connection=redis_conn)
    job = Job.fetch(triage_job_id(event["id"]), connection=redis_conn)
    queue.remove(job)  # its last attempt failed (Redis gone mid-batch, say)
    job.retries_left = 0
    job.set_status(JobStatus.FAILED)
    FailedJobRegistry(queue=queue).add(job, ttl=settings.event_ttl, exc_string="redis.exceptions.ConnectionError")

    shown = reactor(settings, "dlq", "show", job.id)
    assert shown.exit_code == 0, shown.output
    assert "cannot re-decide" not in shown.output
    assert "a replay runs it again" in shown.output

    assert reactor(settings, "dlq", "replay", job.id).exit_code == 0
    start_worker()
    wait_for(lambda: records(redis_conn, "written_off"), timeout=30, what="the write-off")
    wait_settled(redis_conn)
    assert len(sandbox.state.write_off_calls()) == 1


@pytest.mark.timeout(420)  # the 300 s liveness wait below, and the setup and settling around it
@pytest.mark.parametrize("worker_class", ["fork", "simple"])
def test_a_worker_killed_mid_triage_loses_no_event_and_writes_nothing_off_twice(
    sandbox, settings, redis_conn, start_worker, worker_class
):
    """SIGKILL while a triage job holds claims: the job is recovered as abandoned (same id), takes its
    claims again at once and gives each its own job; the rest of the inbox is triaged as usual."""
    crash = dataclasses.replace(  # as tests/integration/test_crash_safety.py's CRASH
        settings,
        worker_class=worker_class,
        abandoned_after=3,
        maintenance_interval=1,
        job_timeout=30,
        http_timeout=3.0,
        rate_limit_max_wait=1.0,
    )
    store = store_for(crash, redis_conn)
    small = [exhausted_invoice(sandbox) for _ in range(30)]
    large = [exhausted_invoice(sandbox, amount_due=9000, total=9000) for _ in range(2970)]
    events = [make_event(invoice) for invoice in [*small, *large]]
    for event in events:
        accept(store, event)

    doomed = start_worker(crash)
    wait_for(lambda: redis_conn.zcard(KEYS.inbox_claimed()), timeout=30, interval=0.005, what="a claimed batch")
    doomed.kill()
    assert redis_conn.zcard(KEYS.inbox_claimed()) > 0  # killed holding claims: the case under test

    survivor = start_worker(crash)
    decided = lambda: {r.event_id for r in AuditLog(redis_conn).query(limit=20_000)}  # noqa: E731
    # Liveness, not speed: the triage job's recovery takes 3 + 1 s after its last heartbeat, and
    # one worker then decides 3,000 events, which took past 30 s on a busy machine (a full suite and
    # two helpers' tests on 2 cores). How fast is for bench/, not for a timed test.
    wait_for(lambda: decided() >= {e["id"] for e in events}, timeout=300, what="every event decided")
    wait_settled(redis_conn)

    assert "were claimed by a triage job" in survivor.output()  # taken again, each to its own job
    wanted = sorted(invoice["id"] for invoice in small)
    assert sorted(call["path"].split("/")[-2] for call in sandbox.state.write_off_calls()) == wanted
    assert sorted(r.invoice_id for r in records(redis_conn, "written_off")) == wanted
