"""RQ stores a job's function as a path (`reactor.jobs.evaluate`), and jobs already in Redis, queued,
scheduled or in the dead letters, name the paths of the release that enqueued them. Each path is
enqueued here as a string, as an older release wrote it, and run by a real worker process."""

from __future__ import annotations

import pytest
from rq import Queue
from rq.job import Job, JobStatus

from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event
from tests.integration.ops_helpers import store_event

pytestmark = pytest.mark.integration


def finished(job: Job) -> dict:
    """The job's return value once a worker has finished it; the test fails if it failed."""

    def done() -> bool:
        status = job.get_status(refresh=True)
        assert status != JobStatus.FAILED, f"{job.func_name} failed:\n{job.exc_info}"
        return status == JobStatus.FINISHED

    wait_for(done, timeout=20.0, what=f"{job.func_name} finished")
    return job.return_value(refresh=True)


def test_evaluate_runs_from_its_stored_path(sandbox, settings, redis_conn, start_worker):
    event = make_event(exhausted_invoice(sandbox))
    store_event(redis_conn, event)
    job = Queue(settings.queue_name, connection=redis_conn).enqueue("reactor.jobs.evaluate", event["id"])
    start_worker()

    assert finished(job)["outcome"] == "written_off"


def test_release_held_runs_from_its_stored_path(sandbox, settings, redis_conn, start_worker):
    event = make_event(exhausted_invoice(sandbox))
    job = Queue(settings.queue_name, connection=redis_conn).enqueue("reactor.jobs.release_held", event, "ops@host")
    start_worker()

    assert finished(job)["outcome"] == "written_off"


def test_recheck_runs_from_its_stored_path(settings, redis_conn, start_worker):
    job = Queue(settings.queue_name, connection=redis_conn).enqueue("reactor.jobs.recheck", "inv_nothing_pending")
    start_worker()

    assert finished(job) == {"outcome": "recheck_gone"}


@pytest.mark.parametrize("path", ["reactor.sweep.scheduled_sweep", "reactor.jobs.sweep.scheduled_sweep"])
def test_the_scheduled_sweep_runs_from_its_stored_paths(path, sandbox, settings, redis_conn, start_worker):
    """`reactor cron` stored the first path before the sweep moved into reactor/jobs/, the second after."""
    job = Queue(settings.queue_name, connection=redis_conn).enqueue(path)
    start_worker()

    result = finished(job)
    assert result["outcome"] == "swept" and result["pages"] >= 1, result
