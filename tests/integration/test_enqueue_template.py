"""The enqueue template writes exactly what RQ's Queue.enqueue writes, on a real Redis, and RQ runs the
job it wrote; a layout it does not recognise falls back to Queue.enqueue."""

from __future__ import annotations

import json

import pytest
from rq import Queue, Retry
from rq.job import Job

from reactor.ingest.enqueue import EvaluationJobs, JobSpec
from reactor.ingest.envelope import parse_event
from reactor.ingest.events import EventStore, StoreOptions, evaluation_job_id

pytestmark = pytest.mark.integration

EVALUATE = "reactor.jobs.evaluate"
ODD_IDS = ["ev_1", "ev_" + "x" * 37, "Ev-With-Dashes_9", "evaluate-ev_1", "ev with spaces", "ev/slash:colon", "é€"]


def jobs_for(queue: Queue) -> EvaluationJobs:
    return EvaluationJobs(queue, retry=Retry(max=3, interval=[10, 30, 120]), job_timeout=77, failure_ttl=999)


@pytest.mark.parametrize("event_id", ODD_IDS)
def test_the_template_writes_what_queue_enqueue_writes(redis_conn, event_id):
    queue = Queue("reactor", connection=redis_conn)
    jobs = jobs_for(queue)
    spec = JobSpec(event_id, "payment_failed", f"inv_{len(event_id)}", evaluation_job_id(event_id))

    from_template = jobs.commands(EVALUATE, spec)
    assert jobs._templates[EVALUATE] is not None, "the template was refused for RQ's current layout"
    through_rq = jobs.through_rq(EVALUATE, spec)

    def without_stamps(commands):
        out = []
        for command in commands:
            args = list(command)
            for i in range(2, len(args)):
                if args[i - 1] in ("created_at", "enqueued_at"):
                    args[i] = "<stamp>"
            out.append(args)
        return out

    assert without_stamps(from_template) == without_stamps(through_rq)
    stamps = [c[c.index("created_at") + 1] for c in from_template if "created_at" in c]
    assert stamps and all(s.endswith("Z") and "T" in s for s in stamps)


def test_a_job_written_from_the_template_is_read_back_by_rq_as_enqueued(redis_conn):
    queue = Queue("reactor", connection=redis_conn)
    store = EventStore(
        redis_conn, queue, options=StoreOptions(retry=Retry(max=2, interval=[5, 50]), job_timeout=33, event_ttl=1234)
    )
    body = {"id": "ev_tmpl_1", "event_type": "invoice_updated", "content": {"invoice": {"id": "inv_tmpl_1"}}}
    assert store.accept(parse_event(json.dumps(body).encode()), EVALUATE).outcome == "queued"

    job = Job.fetch("evaluate-ev_tmpl_1", connection=redis_conn)
    assert (job.func_name, job.args, job.kwargs) == (EVALUATE, ("ev_tmpl_1",), {})
    assert job.meta == {"event_id": "ev_tmpl_1", "event_type": "invoice_updated", "invoice_id": "inv_tmpl_1"}
    assert job.description == "evaluate invoice_updated ev_tmpl_1 (invoice inv_tmpl_1)"
    assert (job.timeout, job.failure_ttl, job.retries_left, job.retry_intervals) == (33, 1234, 2, [5, 50])
    assert job.get_status() == "queued" and job.origin == "reactor"
    assert job.enqueued_at is not None and job.created_at is not None
    assert queue.job_ids == ["evaluate-ev_tmpl_1"]
    assert redis_conn.sismember("rq:queues", "rq:queue:reactor")


def test_a_layout_the_template_cannot_rebuild_falls_back_to_queue_enqueue(redis_conn, caplog):
    class ExtraField(EvaluationJobs):
        """An RQ that also writes the event id somewhere the template does not know of."""

        def through_rq(self, evaluate, spec):
            commands = super().through_rq(evaluate, spec)
            return [*commands, ("SET", "rq:unknown", f"v-{spec.event_id[::-1]}")]

    jobs = ExtraField(Queue("reactor", connection=redis_conn))
    spec = JobSpec("ev_fallback", "payment_failed", "inv_fb", "evaluate-ev_fallback")
    commands = jobs.commands(EVALUATE, spec)
    assert jobs._templates[EVALUATE] is None
    assert ("SET", "rq:unknown", "v-kcabllaf_ve") in commands
    assert "built through Queue.enqueue" in caplog.text
