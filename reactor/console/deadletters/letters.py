"""A dead letter as on-call reads it (`DeadLetter`), and what reading one needs: the last line of a
traceback, payment details redacted, job ids checked, the refusals an operator can meet."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rq.job import Job

from ...ingest.events import JOB_ID_SAFE, evaluation_job_id
from ...jobs.audit import AuditRecord

_SECRET_KEY = re.compile(
    r"password|passwd|secret|token|api_?key|authori[sz]ation|cvv|masked_number|^iin$|^last4$|"
    r"reference_id|ref_tx_id|id_at_gateway|gateway_account_id|fingerprint|vault",
    re.IGNORECASE,
)
REDACTED = "[redacted]"
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)+([A-Za-z_]\w*)(:|$)")


def redact(value: Any) -> Any:
    """A copy of an event with payment-method and credential fields masked, so it can be pasted
    into a ticket. Invoice, customer and amounts stay: they are what on-call needs to see."""
    if isinstance(value, dict):
        return {
            k: REDACTED if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def exception_line(text: str) -> str:
    """The exception line of a traceback, without the module path (`ServerError: ...`)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return _EXCEPTION_LINE.sub(r"\1\2", lines[-1].strip())


def job_status(job: Job) -> str:
    status = job.get_status(refresh=False)
    return getattr(status, "value", None) or str(status or "")


def parse_moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class DeadLetterError(Exception):
    """An operator's request that cannot be done; the message says why and what to do instead."""


class NotADeadLetter(DeadLetterError):
    """The id names no job in the dead letters (unknown, purged, or replayed already)."""


class EventExpired(DeadLetterError):
    """The stored event is gone (older than REACTOR_EVENT_TTL): there is nothing to re-decide."""


class NotAJobId(NotADeadLetter):
    """The id cannot name an RQ job: RQ takes only letters, digits, `_` and `-` in a job id (a
    typed event id such as `ev.dot.1`, or garbage). Callers answer it as a client error (4xx)."""


def checked_job_id(value: str) -> str:
    """`value` if it can be an RQ job id, else NotAJobId (RQ itself would raise a bare ValueError)."""
    if not JOB_ID_SAFE.fullmatch(value):
        raise NotAJobId(
            f"{value!r} is not a job id (only letters, digits, _ and -); for an event id use "
            "`reactor dlq show EVENT_ID` or `reactor events replay EVENT_ID`"
        )
    return value


def replay_job_id(event_id: str, now: datetime, site: str | None = None) -> str:
    """`replay-<event id>-<time>`, ending `--<site>` on a site other than the home site as
    evaluation_job_id does; an id RQ would refuse gets the digest evaluation_job_id gives it."""
    key = evaluation_job_id(event_id).removeprefix("evaluate-")
    replay = f"replay-{key}-{now:%Y%m%dT%H%M%S%f}"
    return replay if site is None else f"{replay}--{site}"


@dataclass(frozen=True)
class DeadLetter:
    job_id: str
    event_id: str | None
    event_type: str | None
    invoice_id: str | None
    last_error: str
    attempts: int
    failed_at: datetime | None
    traceback: str
    status: str = "failed"
    replays: int = 0
    description: str = ""

    @classmethod
    def of(cls, job: Job, failures: list[AuditRecord], failed_at: datetime | None) -> DeadLetter:
        """The job as on-call reads it, with the audit's failure records of its latest run."""
        result = job.latest_result()
        traceback = (result.exc_string if result else None) or ""
        meta = job.meta or {}
        # One audit record per run that reached Chargebee: exact also when a refused request stopped
        # the retries early (RQ's counter is zeroed then). RQ's counter for failures of other kinds.
        attempts = len(failures) if failures else 1 + len(job.retry_intervals or ()) - (job.retries_left or 0)
        last_error = exception_line(traceback) or (failures[-1].reason if failures else "") or "(no traceback recorded)"
        event_id = meta.get("event_id")
        if event_id is None and job.func_name and job.func_name.endswith(".evaluate") and job.args:
            event_id = str(job.args[0])
        return cls(
            job_id=job.id,
            event_id=event_id,
            event_type=meta.get("event_type"),
            invoice_id=meta.get("invoice_id"),
            last_error=last_error,
            attempts=max(attempts, 1),
            failed_at=failed_at,
            traceback=traceback,
            status=job_status(job),
            replays=int(meta.get("replays") or 0),
            description=job.description or "",
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "invoice_id": self.invoice_id,
            "last_error": self.last_error,
            "attempts": self.attempts,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
            "replays": self.replays,
            "status": self.status,
        }


def select(letters: list[DeadLetter], event_type: str | None = None, since: datetime | None = None) -> list[DeadLetter]:
    """The letters of one event type and/or that failed since a moment, order kept."""
    return [
        letter
        for letter in letters
        if (not event_type or letter.event_type == event_type)
        and (since is None or (letter.failed_at is not None and letter.failed_at >= since))
    ]
