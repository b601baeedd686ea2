"""`REACTOR_VERIFY_EVENTS=1`: act only on Chargebee's own copy of an event. Basic auth proves a
delivery knew the webhook password, nothing more; Chargebee's advice for integrity is to fetch the
event again (`GET /api/v2/events/{id}`), one more call per event from the same rate-limit budget.
"""

from __future__ import annotations

import logging
from typing import Any

from rq.job import Job

from ..chargebee import ChargebeeClient, NotFoundError, RetryableError
from ..ingest.envelope import Event
from .audit import Outcome
from .context import JobContext
from .retries import chargebee_failures
from .trail import record_outcome

log = logging.getLogger(__name__)


class ForgedEvent(Exception):
    """Chargebee does not know this event id: the delivery did not come from Chargebee."""


def fetch_genuine(client: ChargebeeClient, event_id: str) -> dict[str, Any]:
    """Chargebee's copy of the event; ForgedEvent on a 404, ChargebeeError on anything else."""
    try:
        genuine = client.retrieve_event(event_id)
    except NotFoundError:
        raise ForgedEvent(f"Chargebee does not know event {event_id}: not acted on") from None
    if genuine.get("id") != event_id or not isinstance(genuine.get("content"), dict):
        raise RetryableError(f"Chargebee's copy of event {event_id} has another id or no content")
    return genuine


def differences(posted: Event, genuine: Event) -> list[str]:
    """Names (never values) of the top-level and invoice fields where the posted copy differs."""
    changed = [k for k in ("event_type", "api_version") if posted.data.get(k) != genuine.data.get(k)]
    posted_invoice = posted.invoice or {}
    genuine_invoice = genuine.invoice or {}
    keys = sorted(set(posted_invoice) | set(genuine_invoice))
    changed += [f"invoice.{k}" for k in keys if posted_invoice.get(k) != genuine_invoice.get(k)]
    if set(posted.data.get("content") or {}) != set(genuine.data.get("content") or {}):
        changed.append("content")
    return changed


def verified_event(ctx: JobContext, job: Job | None, posted: Event) -> Event | None:
    """Chargebee's copy of the stored event, or None once a forged event is recorded `rejected`.
    Raises (for RQ to retry, or to leave in the dead letters) when Chargebee cannot be asked."""
    event_id = str(posted.data.get("id"))
    try:
        # Any failure of the fetch is handled as a failure of the write_off call would be: 429, 5xx
        # and timeouts are retried, a refused API key goes to the dead letters.
        with chargebee_failures(ctx, job, posted, doing="verifying the event"):
            genuine = Event.from_data(fetch_genuine(ctx.chargebee, event_id))
    except ForgedEvent as exc:
        # Retrying cannot make it real: recorded `rejected`, never retried, never a dead letter.
        record_outcome(ctx, job, posted, None, Outcome.REJECTED, reason=str(exc))
        return None
    changed = differences(posted, genuine)
    if changed:  # a genuine id posted with altered content: decided on Chargebee's content
        log.warning(
            "event %s: the posted copy differs from Chargebee's (%s); acting on Chargebee's",
            event_id,
            ", ".join(changed),
            extra={"event_id": event_id},
        )
    return genuine
