"""The RQ worker that runs our jobs, with RQ's scheduler (retries, re-checks) in the same process."""

from __future__ import annotations

import logging

import redis
from rq import Queue, Worker
from rq.job import Job

from . import jobs
from .config import Settings
from .rules import RulesError

log = logging.getLogger(__name__)


class ReactorWorker(Worker):
    """Refreshes the rules in the parent before each fork, so every work horse inherits the
    current rules instead of reparsing the file itself after an edit."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            jobs.current_context().rules.current()
        except RulesError as exc:
            log.error("no valid rules; jobs will fail until rules.yaml is fixed: %s", exc)
        super().execute_job(job, queue)


def run_worker(settings: Settings, connection: redis.Redis, burst: bool = False, name: str | None = None) -> bool:
    context = jobs.build_context(settings, connection)
    context.rules.current()  # refuse to start on a broken rules file: say so now, not per job
    jobs.install(context)
    worker = ReactorWorker([context.queue], connection=connection, name=name)
    return worker.work(with_scheduler=True, burst=burst)
