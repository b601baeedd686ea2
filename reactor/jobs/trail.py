"""The audit record of a job's outcome: which outcome a decision without a write-off is, the record
built from the event and the decision, appended, logged."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TypedDict

from rq.job import Job

from ..ingest.envelope import Event
from ..rules import Decision
from ..rules.engine import COLLECTING_BLOCK, UNEVALUABLE_BLOCK
from .audit import AuditRecord, Outcome

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .context import JobContext

log = logging.getLogger(__package__)  # "reactor.jobs", the logger the job wing has always logged as

_NO_EVENT = Event.from_data({})


class Given(TypedDict, total=False):
    """What a record says that the event and the decision do not (or say otherwise)."""

    invoice_id: str | None
    reason: str | None
    detail: str | None
    amount_due: int | None
    event_id: str | None


def make_record(
    ctx: JobContext,
    job: Job | None,
    event: Event | None,
    decision: Decision | None,
    outcome: Outcome,
    **given: Unpack[Given],
) -> AuditRecord:
    seen = event or _NO_EVENT
    invoice = seen.invoice or {}
    amount_due = given.get("amount_due")
    return AuditRecord(
        event_id=given.get("event_id") or seen.id or None,
        event_type=seen.event_type or None,
        invoice_id=given.get("invoice_id") or (decision.invoice_id if decision else None) or seen.invoice_id,
        outcome=outcome,
        action=decision.action if decision else None,
        rule=decision.rule if decision else None,
        amount_due=amount_due if amount_due is not None else (decision.amount_due if decision else None),
        currency=(decision.currency if decision else None) or invoice.get("currency_code"),
        mode=("dry_run" if decision.dry_run else "live") if decision else None,
        rules_version=decision.rules_version if decision else None,
        reason=given.get("reason") or (decision.reason if decision else None),
        job_id=job.id if job else None,
        detail=given.get("detail"),
        job_seconds=job_seconds(job),
    )


def job_seconds(job: Job | None) -> float | None:
    """Seconds since the job's (latest) start, for /metrics' reactor_job_seconds. Kept in the record
    because RQ keeps no finished evaluation job (result_ttl 0) to read its start from later."""
    started = getattr(job, "started_at", None) if job is not None else None
    if not isinstance(started, datetime):
        return None
    started = started if started.tzinfo else started.replace(tzinfo=timezone.utc)
    seconds = (datetime.now(timezone.utc) - started).total_seconds()
    return round(seconds, 3) if seconds >= 0 else None


def log_record(record: AuditRecord) -> None:
    log.info(
        "decision %s: %s",
        record.outcome,
        record.reason or "",
        extra={"event_id": record.event_id, "invoice_id": record.invoice_id, "rule": record.rule},
    )


def record_outcome(
    ctx: JobContext,
    job: Job | None,
    event: Event | None,
    decision: Decision | None,
    outcome: Outcome,
    **given: Unpack[Given],
) -> AuditRecord:
    record = make_record(ctx, job, event, decision, outcome, **given)
    ctx.audit.append(record)
    log_record(record)
    return record


BLOCKED_OUTCOMES = {
    COLLECTING_BLOCK: Outcome.COLLECTING,
    UNEVALUABLE_BLOCK: Outcome.FACTS_MISSING,
    "invoice.deleted": Outcome.GONE,
    "invoice.linked_payments": Outcome.PAYMENT_IN_PROGRESS,
}
"""The outcome recorded when a built-in check blocked the write-off (the decision's blocked_by)."""


def event_outcome(decision: Decision) -> Outcome:
    """What an event's decision without a write-off is recorded as."""
    if decision.action == "none":
        return Outcome.NO_MATCH
    return BLOCKED_OUTCOMES.get(decision.blocked_by or "", Outcome.SKIPPED)


def fresh_outcome(decision: Decision, *, fetched: bool, for_facts: bool) -> Outcome:
    """What a fresh decision without a write-off is recorded as: a built-in check's own outcome; a
    skip rule or no rule deciding on facts fetched for them; else `changed` (the invoice moved on
    since the event chose write_off)."""
    outcome = BLOCKED_OUTCOMES.get(decision.blocked_by or "")
    if outcome is not None:
        return outcome
    if for_facts and decision.action == "none":
        return Outcome.NO_MATCH
    if (fetched or for_facts) and decision.action == "skip" and decision.blocked_by is None:
        return Outcome.SKIPPED
    return Outcome.CHANGED


def recheck_outcome(decision: Decision) -> Outcome:
    """What a re-check's fresh decision without a write-off is recorded as."""
    if decision.action == "write_off":
        return Outcome.DRY_RUN
    return Outcome.NO_MATCH if decision.action == "none" else Outcome.SKIPPED
