"""Every Redis key the reactor writes (`Keys`), and the job paths RQ stores.

All keys sit under one prefix (`Settings.key_prefix`, `reactor`); the table above `Keys` names each
key and the module that writes it, where its lifetime is set. What the marks, leases and lists mean:
docs/design.md, "Glossary".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

EVALUATE_JOB = "reactor.jobs.evaluate"
RELEASE_HELD_JOB = "reactor.jobs.release_held"
RECHECK_JOB = "reactor.jobs.recheck"
TRIAGE_JOB = "reactor.jobs.triage"
SCHEDULED_SWEEP_JOB = "reactor.sweep.scheduled_sweep"
"""Job function paths RQ stores in Redis with queued, scheduled and failed jobs: they must keep
importing (tests/integration/test_job_paths.py). `reactor cron` registers the sweep function itself,
so sweeps scheduled since it moved name `reactor.jobs.sweep.scheduled_sweep`; the old path stays in
reactor/sweep.py."""


# | key (`{p}` is the prefix) | what it holds | written in |
# |---|---|---|
# | `{p}:event:<event>` | the event as received, packed (REACTOR_EVENT_TTL); the dedupe mark | ingest/events.py |
# | `{p}:counters:events` | hash: webhook answers by kind | ingest/events.py |
# | `{p}:audit` | stream: the decision trail | jobs/audit/stream.py |
# | `{p}:audit:indexed_since` | the stream id of the first record indexed | jobs/audit/stream.py |
# | `{p}:audit:stats[:cursor,:lock]`, `{p}:audit:daily[_undone]` | counters from the stream | console/tally.py |
# | `{p}:audit:archive[:lock]` | hash: the archive's position, counts, error; a round's lock | jobs/audit/archive.py |
# | `{p}:lock:invoice:<invoice>` | the invoice's lock around fetch, decide, write_off | jobs/marks.py |
# | `{p}:written_off:<invoice>` | our write-off, with its credit note (400 days) | jobs/marks.py |
# | `{p}:write_off_attempt:<invoice>` | a write_off sent, not yet confirmed (30 days) | jobs/marks.py |
# | `{p}:undone:<invoice>` | our write-off undone: who, why, credit note, how many times (400 days) | console/undo.py |
# | `{p}:recovery:customer:<customer>` | hash: the customer's invoices we wrote off (400 days) | jobs/recovery.py |
# | `{p}:recovery:candidates` | hash: money seen for a written-off invoice, not yet recovered | jobs/recovery.py |
# | `{p}:recovery_attempt:<invoice>` | our write-off reversed, its payment not applied (30 days) | console/recover.py |
# | `{p}:recovered:<invoice>` | the payment recovered for our write-off applied (400 days) | console/recover.py |
# | `{p}:credits_attempt:<invoice>` | an apply_credits sent, the credits before it (30 days) | jobs/credits.py |
# | `{p}:inbox` | list: accepted events waiting for triage (REACTOR_TRIAGE) | ingest/events.py, ingest/inbox.py |
# | `{p}:inbox:claimed` | sorted set: events a triage job took, scored by the end of its lease | ingest/inbox.py |
# | `{p}:inbox:claims:<job>` | set: the same claims, by the triage job that holds them (a lease) | ingest/inbox.py |
# | `{p}:inbox:drainer` | set while a triage job is queued or running (a lease) | ingest/events.py, ingest/inbox.py |
# | `{p}:in_order:<event>` | triage found it in order; its job's first run takes it (30 days) | jobs/evaluate.py |
# | `{p}:trace:<invoice>` | list, 400 days: receipts, decisions, calls, audit ids, version | see ingest/trace_list.py |
# | `{p}:receipt:<event>` | an event answered `ignored` or 400: its receipt (30 days) | ingest/events.py |
# | `{p}:recheck:<invoice>` | the pending re-check of a time-based rule | jobs/rechecks.py |
# | `{p}:held` | hash: write-offs held (budget, undo, declined) or waiting for approvers | jobs/held.py, approvals |
# | `{p}:budget:day:<date>`, `{p}:budget:hour:<hour>` | budget counters (UTC) | jobs/budget.py |
# | `{p}:sweep:checkpoint`, `{p}:lock:sweep` | the resumable sweep | jobs/sweep.py |
# | `{p}:rules:reload:<outcome>:<digest>` | one rules edit seen | reloads.py |
# | `{p}:rules:reloads`, `{p}:rules:last_refused` | rules edits counted, the last refusal | reloads.py |
# | `{p}:admin:secret_key`, `{p}:admin:session:<id>` | the dashboard's signing key and sessions | dashboard/views.py |
# | `{p}:users` | hash: named user → JSON {role, hash (argon2id), created}; deployment-wide | console/users.py |
# | `{p}:admin:*`, `{p}:webhook:*` | `limits`' failed-login counters | dashboard/views.py, ingest/guard.py |
# | `{p}:worker_claims` | sorted set: shared workers about to run one of the site's jobs | jobs/worker.py |
# | `{p}:rl:*` | the shared Chargebee call budget; `{p}:rl:429s` counts Chargebee's 429s | chargebee/ratelimit.py |
# | `{p}:notices`, `{p}:notices:seq`, `{p}:notices:once:<name>` | notices waiting for the digest | notices.py |
# | `{p}:notices:sent`, `{p}:notices:dead_letters`, `{p}:lock:notify` | the digest sender's state | console/notify.py |
#
# Read but no longer written, until what earlier releases wrote has expired: `{p}:resource_version:<invoice>`
# (30 days; jobs/evaluate.py), `{p}:audit:invoice:<invoice>` (400 days; jobs/audit/stream.py). Their
# `{p}:seen:<event>` dedupe marks (4 days) are not read: the stored event, kept longer, answers for them.


@dataclass(frozen=True)
class Keys:
    """Redis key names, all under one prefix."""

    prefix: str = "reactor"

    def event(self, event_id: str) -> str:
        return f"{self.prefix}:event:{event_id}"

    def counter(self) -> str:
        return f"{self.prefix}:counters:events"

    def audit(self) -> str:
        return f"{self.prefix}:audit"

    def worker_claims(self) -> str:
        return f"{self.prefix}:worker_claims"

    def lock(self, invoice_id: str) -> str:
        return f"{self.prefix}:lock:invoice:{invoice_id}"

    def written_off(self, invoice_id: str) -> str:
        return f"{self.prefix}:written_off:{invoice_id}"

    def write_off_attempt(self, invoice_id: str) -> str:
        return f"{self.prefix}:write_off_attempt:{invoice_id}"

    def credits_attempt(self, invoice_id: str) -> str:
        return f"{self.prefix}:credits_attempt:{invoice_id}"

    def undone(self, invoice_id: str) -> str:
        return f"{self.prefix}:undone:{invoice_id}"

    def recovery_customer(self, customer_id: str) -> str:
        return f"{self.prefix}:recovery:customer:{customer_id}"

    def recovery_candidates(self) -> str:
        return f"{self.prefix}:recovery:candidates"

    def recovery_attempt(self, invoice_id: str) -> str:
        return f"{self.prefix}:recovery_attempt:{invoice_id}"

    def recovered(self, invoice_id: str) -> str:
        return f"{self.prefix}:recovered:{invoice_id}"

    def inbox(self) -> str:
        return f"{self.prefix}:inbox"

    def inbox_claimed(self) -> str:
        return f"{self.prefix}:inbox:claimed"

    def inbox_claims(self, job_id: str) -> str:
        return f"{self.prefix}:inbox:claims:{job_id}"

    def inbox_drainer(self) -> str:
        return f"{self.prefix}:inbox:drainer"

    def resource_version(self, invoice_id: str) -> str:
        """Where releases before kept the newest resource_version (read only)."""
        return f"{self.prefix}:resource_version:{invoice_id}"

    def in_order(self, event_id: str) -> str:
        return f"{self.prefix}:in_order:{event_id}"

    def trace(self, invoice_id: str) -> str:
        return f"{self.prefix}:trace:{invoice_id}"

    def receipt(self, event_id: str) -> str:
        return f"{self.prefix}:receipt:{event_id}"

    def recheck(self, invoice_id: str) -> str:
        return f"{self.prefix}:recheck:{invoice_id}"

    def held(self) -> str:
        return f"{self.prefix}:held"

    def budgets(self, utc: datetime) -> tuple[str, str]:
        """The day's and the hour's budget counters for a UTC moment."""
        return f"{self.prefix}:budget:day:{utc:%Y-%m-%d}", f"{self.prefix}:budget:hour:{utc:%Y-%m-%dT%H}"

    def sweep_checkpoint(self) -> str:
        return f"{self.prefix}:sweep:checkpoint"

    def sweep_lock(self) -> str:
        return f"{self.prefix}:lock:sweep"

    def rules_reload(self, outcome: str, digest: str) -> str:
        return f"{self.prefix}:rules:reload:{outcome}:{digest}"

    def rules_reloads(self) -> str:
        return f"{self.prefix}:rules:reloads"

    def rules_last_refused(self) -> str:
        return f"{self.prefix}:rules:last_refused"

    def notices(self) -> str:
        return f"{self.prefix}:notices"

    def notices_seq(self) -> str:
        return f"{self.prefix}:notices:seq"

    def notice_once(self, name: str) -> str:
        return f"{self.prefix}:notices:once:{name}"

    def notices_sent(self) -> str:
        """The sequence number of the last notice a digest carried."""
        return f"{self.prefix}:notices:sent"

    def notified_dead_letters(self) -> str:
        """Set: the dead letters (job ids) already told."""
        return f"{self.prefix}:notices:dead_letters"

    def notify_lock(self) -> str:
        return f"{self.prefix}:lock:notify"

    def chargebee_429s(self) -> str:
        """Chargebee's 429 answers that paused every worker (reactor/chargebee/ratelimit.py writes it)."""
        return f"{self.prefix}:rl:429s"

    def admin_secret_key(self) -> str:
        return f"{self.prefix}:admin:secret_key"

    def admin_session(self, session_id: str) -> str:
        return f"{self.prefix}:admin:session:{session_id}"

    def users(self) -> str:
        """Named users and their roles; under the deployment's prefix, not a site's."""
        return f"{self.prefix}:users"

    def namespace(self, name: str) -> str:
        """The prefix handed to a library that names its own keys below it (`limits`)."""
        return f"{self.prefix}:{name}"
