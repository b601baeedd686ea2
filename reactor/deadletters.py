"""Dead letters: RQ's FailedJobRegistry, seen the way on-call needs it at 3 a.m.

A job lands here after its last retry (or at once for a request Chargebee refuses outright).
Replaying one runs the same evaluation again: current rules, a fresh invoice, the same
idempotency key and per-invoice safeguards, so a replay cannot write an invoice off twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from .audit import AuditLog, AuditRecord
from .config import Settings
from .events import Keys


@dataclass(frozen=True)
class DeadLetter:
    job_id: str
    event_id: str | None
    event_type: str | None
    invoice_id: str | None
    last_error: str
    attempts: int
    failed_at: str
    traceback: str


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


class DeadLetters:
    def __init__(self, connection: redis.Redis, settings: Settings):
        self.redis = connection
        self.settings = settings
        self.queue = Queue(settings.queue_name, connection=connection)
        self.registry = FailedJobRegistry(queue=self.queue)
        self.audit = AuditLog(connection, Keys(settings.key_prefix).audit())

    def _describe(self, job: Job) -> DeadLetter:
        result = job.latest_result()
        traceback = (result.exc_string if result else None) or ""
        meta = job.meta or {}
        attempts = 1 + len(self.settings.retry_intervals) - (job.retries_left or 0)
        return DeadLetter(
            job_id=job.id,
            event_id=meta.get("event_id"),
            event_type=meta.get("event_type"),
            invoice_id=meta.get("invoice_id"),
            last_error=_last_line(traceback),
            attempts=max(attempts, 1),
            failed_at=job.ended_at.isoformat(timespec="seconds") if job.ended_at else "",
            traceback=traceback,
        )

    def list(self) -> list[DeadLetter]:
        letters = []
        for job_id in self.registry.get_job_ids():
            try:
                job = Job.fetch(job_id, connection=self.redis)
            except NoSuchJobError:
                continue
            letters.append(self._describe(job))
        return letters

    def get(self, job_id: str) -> DeadLetter:
        try:
            return self._describe(Job.fetch(job_id, connection=self.redis))
        except NoSuchJobError:
            raise KeyError(f"no such job {job_id!r}") from None

    def replay(self, job_id: str) -> Job:
        """Requeue with a full set of retries; recorded in the audit trail."""
        try:
            job = Job.fetch(job_id, connection=self.redis)
        except NoSuchJobError:
            raise KeyError(f"no such job {job_id!r}") from None
        if job.retry_intervals is not None:
            job.retries_left = len(job.retry_intervals)
            job.save()
        try:
            self.registry.requeue(job)
        except InvalidJobOperation:
            raise KeyError(f"job {job_id!r} is not in the dead letters") from None
        meta = job.meta or {}
        self.audit.append(
            AuditRecord(
                event_id=meta.get("event_id"),
                invoice_id=meta.get("invoice_id"),
                event_type=meta.get("event_type"),
                outcome="replayed",
                job_id=job_id,
                reason="dead letter requeued by an operator",
            )
        )
        return job
