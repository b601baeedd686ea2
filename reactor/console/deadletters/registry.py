"""Dead letters: RQ's FailedJobRegistry, seen the way on-call needs it at 3 a.m. (`DeadLetters`).

A job lands here after its last retry (or at once for a request Chargebee refuses outright).
Replaying one runs the same evaluation again: current rules, a fresh invoice, the same
idempotency key and per-invoice safeguards, so a replay cannot write an invoice off twice.
`replay_event` does the same for any stored event, dead or not, under a new job id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from ...config import Settings
from ...ingest.events import JOB_ID_SAFE, EventStore, StoreOptions, evaluation_job_id, job_id_site, retry_policy
from ...jobs.audit import AuditFilter, AuditLog, AuditRecord, Outcome
from ...keys import EVALUATE_JOB, Keys
from .letters import (
    DeadLetter,
    EventExpired,
    NotADeadLetter,
    checked_job_id,
    job_status,
    parse_moment,
    replay_job_id,
    select,
)

FAILURE_OUTCOMES = (Outcome.RETRYING, Outcome.FAILED)
"""The outcomes of an attempt that ended in an error: one record per run that reached Chargebee."""


class DeadLetters:
    """List, show, replay and purge failed jobs; every replay and purge goes to the audit trail."""

    def __init__(
        self,
        connection: redis.Redis,
        settings: Settings,
        rules_version: Callable[[], str | None] | None = None,
        actor: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.redis = connection
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.queue = Queue(settings.queue_name, connection=connection)
        self.registry = FailedJobRegistry(queue=self.queue)
        self.audit = AuditLog(connection, self.keys.audit(), rules_version=rules_version)
        self.events = EventStore(
            connection, self.queue, self.keys, StoreOptions(event_ttl=settings.event_ttl), site=job_id_site(settings)
        )
        self.actor = actor
        self.clock = clock

    # -- reading -------------------------------------------------------------------------------

    def _failed_at(self, job: Job) -> datetime | None:
        if job.ended_at:
            return job.ended_at
        score = self.redis.zscore(self.registry.key, job.id)  # expiry = failure time + failure_ttl
        if score is None or score == float("inf"):
            return None
        return datetime.fromtimestamp(score - (job.failure_ttl or 365 * 24 * 3600), timezone.utc)

    def _failures(self, job: Job) -> list[AuditRecord]:
        """The audit's retrying/failed records of this job's latest run (since its last replay)."""
        meta = job.meta or {}
        start = parse_moment(meta.get("replayed_at")) or job.created_at
        end = job.ended_at + timedelta(seconds=5) if job.ended_at else None
        return list(
            self.audit.query(
                AuditFilter(since=start - timedelta(seconds=1), until=end, job_id=job.id, outcomes=FAILURE_OUTCOMES)
            )
        )

    def _describe(self, job: Job) -> DeadLetter:
        return DeadLetter.of(job, self._failures(job), self._failed_at(job))

    def _dead_job_ids(self) -> list[str]:
        return self.registry.get_job_ids()

    def is_dead(self, job_id: str) -> bool:
        return self.redis.zscore(self.registry.key, job_id) is not None

    def list(self, event_type: str | None = None, since: datetime | None = None) -> list[DeadLetter]:
        """Newest failure first."""
        ids = self._dead_job_ids()
        letters = [self._describe(job) for job in Job.fetch_many(ids, connection=self.redis) if job is not None]
        oldest = datetime.min.replace(tzinfo=timezone.utc)
        letters.sort(key=lambda letter: letter.failed_at or oldest, reverse=True)
        return select(letters, event_type, since)

    def get(self, job_id: str) -> DeadLetter:
        """Any job by id (dead or not; `status` tells)."""
        try:
            return self._describe(Job.fetch(checked_job_id(job_id), connection=self.redis))
        except NoSuchJobError:
            raise NotADeadLetter(
                f"no job {job_id!r} (finished jobs are not kept; purged, expired, mistyped?)"
            ) from None

    def find(self, job_or_event_id: str) -> list[DeadLetter]:
        """A job id, or an event id: every dead letter of that event, else its evaluation job.
        An event id that cannot be a job id (`ev.dot.1`) is looked up as an event id only, and its
        evaluation job under the digest id evaluation_job_id gives it (`--<site>` on a non-home site)."""
        if JOB_ID_SAFE.fullmatch(job_or_event_id):
            try:
                return [self._describe(Job.fetch(job_or_event_id, connection=self.redis))]
            except NoSuchJobError:
                pass
        letters = [letter for letter in self.list() if letter.event_id == job_or_event_id]
        if letters:
            return letters
        try:
            return [
                self._describe(Job.fetch(evaluation_job_id(job_or_event_id, self.events.site), connection=self.redis))
            ]
        except NoSuchJobError:
            return []

    def stored_event(self, event_id: str | None) -> dict[str, Any] | None:
        event = self.events.load(event_id) if event_id else None
        return event.data if event is not None else None

    def trail(self, letter: DeadLetter, occurred: object = None) -> list[AuditRecord]:
        """Every audit record of the letter's event (or of its job, when it has no event id).
        Read from the event's own time on (`occurred`, its `occurred_at` when the stored event has
        one) rather than from the start of the stream."""
        if letter.event_id is None:
            return list(self.audit.query(AuditFilter(job_id=letter.job_id)))
        since = None
        if isinstance(occurred, int) and not isinstance(occurred, bool):
            since = datetime.fromtimestamp(occurred, timezone.utc) - timedelta(hours=1)
        records = list(self.audit.query(AuditFilter(since=since, event_id=letter.event_id)))
        if not records and since is not None:  # an event stamped in the future by a skewed clock
            records = self.audit.for_event(letter.event_id)
        return records

    # -- acting --------------------------------------------------------------------------------

    def _record(self, outcome: Outcome, meta: dict[str, Any], job_id: str, reason: str) -> None:
        self.audit.append(
            AuditRecord(
                event_id=meta.get("event_id"),
                invoice_id=meta.get("invoice_id"),
                event_type=meta.get("event_type"),
                outcome=outcome,
                job_id=job_id,
                reason=reason,
                detail=f"by {self.actor}" if self.actor else None,
            )
        )

    def replay(self, job_id: str) -> Job:
        """Requeue with a full set of retries: the job re-decides on current rules and a fresh
        invoice. Refuses when the stored event is gone, since the job could only record that."""
        try:
            job = Job.fetch(checked_job_id(job_id), connection=self.redis)
        except NoSuchJobError:
            raise NotADeadLetter(
                f"{job_id}: no such job (finished jobs are not kept; purged, expired, mistyped? see `reactor dlq list`)"
            ) from None
        if not self.is_dead(job.id):
            raise NotADeadLetter(
                f"{job_id}: not in the dead letters (status {job_status(job)}); "
                "to run its event again use `reactor events replay EVENT_ID`"
            )
        meta = dict(job.meta or {})
        event_id = meta.get("event_id")
        if event_id and not self.redis.exists(self.keys.event(event_id)):
            raise EventExpired(
                f"{job_id}: the stored event {event_id} has expired (events are kept "
                f"{self.settings.event_ttl // 86400} days); nothing to re-decide. Check invoice "
                f"{meta.get('invoice_id') or '?'} in Chargebee by hand, then `reactor dlq purge`."
            )
        if job.retry_intervals:
            job.retries_left = len(job.retry_intervals)
        job.meta["replays"] = int(meta.get("replays") or 0) + 1
        job.meta["replayed_at"] = self.clock().isoformat()
        try:
            self.registry.requeue(job)  # saves the job (retries, meta) only if it was still dead
        except InvalidJobOperation:
            raise NotADeadLetter(f"{job_id}: left the dead letters meanwhile (replayed by someone else?)") from None
        self._record(Outcome.REPLAYED, meta, job.id, "dead letter requeued by an operator")
        return job

    def replay_event(self, event_id: str) -> Job:
        """Evaluate a stored event again under a new job id, whatever happened to it before.
        Safe on a processed event: the written-off mark and the fresh invoice stop a second write-off."""
        event = self.events.load(event_id)
        if event is None:
            raise EventExpired(
                f"no stored event {event_id!r}: never received, or older than "
                f"{self.settings.event_ttl // 86400} days (REACTOR_EVENT_TTL)"
            )
        invoice_id = event.invoice_id
        now = self.clock()
        meta = {
            "event_id": event_id,
            "event_type": event.data.get("event_type"),
            "invoice_id": invoice_id,
            "replay_of": event_id,
            "replayed_at": now.isoformat(),
        }
        job = self.queue.enqueue(
            EVALUATE_JOB,
            event_id,
            job_id=replay_job_id(event_id, now, self.events.site),
            retry=retry_policy(self.settings),
            job_timeout=self.settings.job_timeout,
            failure_ttl=self.settings.event_ttl,
            description=f"replay of evaluate {event.data.get('event_type')} {event_id} (invoice {invoice_id})",
            meta=meta,
        )
        self._record(Outcome.REPLAYED, meta, job.id, "stored event run again by an operator")
        return job

    def purge(self, older_than: timedelta, dry_run: bool = False, label: str | None = None) -> list[DeadLetter]:
        """Delete dead letters that failed before now - older_than: the job, its results and its
        registry entry. Registry entries whose job is already gone are dropped as well."""
        cutoff = self.clock() - older_than
        purged = []
        for job_id in self._dead_job_ids():
            try:
                job = Job.fetch(job_id, connection=self.redis)
            except NoSuchJobError:
                if not dry_run:
                    self.registry.remove(job_id)
                continue
            letter = self._describe(job)
            if letter.failed_at is not None and letter.failed_at >= cutoff:
                continue
            purged.append(letter)
            if dry_run:
                continue
            self.registry.remove(job, delete_job=True)
            reason = f"dead letter older than {label or older_than} deleted by an operator"
            self._record(Outcome.PURGED, job.meta or {}, job_id, reason)
        return purged
