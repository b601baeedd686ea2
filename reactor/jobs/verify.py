"""Event verification (`REACTOR_VERIFY_EVENTS=1`): act only on Chargebee's own copy of an event.

Basic auth proves a delivery knew the webhook password, nothing more. Chargebee's advice for
integrity is to fetch the event again (`GET /api/v2/events/{id}`); with verification on, the worker
does that before anything else and replaces the posted copy with the fetched one, so:

- a forged event (an id Chargebee does not know: 404) is recorded as `rejected` and never acted on,
  never retried and never a dead letter: retrying cannot make it real;
- a genuine id posted with altered content (say a lower `amount_due`) is decided on Chargebee's
  content, not the posted one; the difference is logged;
- a replayed genuine event is acted on as Chargebee has it, and is deduplicated as usual.

Any other failure of the fetch is handled as a failure of the write_off call would be: 429, 5xx and
timeouts are retried, a refused API key goes to the dead letters. The cost is one more Chargebee
call per event that carries an invoice, from the same rate-limit budget.
"""

from __future__ import annotations

import logging
from typing import Any

from rq.job import Job

from ..chargebee import ChargebeeClient, NotFoundError, RetryableError
from .audit import Outcome
from .context import JobContext
from .retries import chargebee_failures
from .stored_events import as_event
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


def differences(posted: dict[str, Any], genuine: dict[str, Any]) -> list[str]:
    """Names (never values) of the top-level and invoice fields where the posted copy differs."""
    changed = [k for k in ("event_type", "api_version") if posted.get(k) != genuine.get(k)]
    posted_invoice = as_event(posted).invoice or {}
    genuine_invoice = as_event(genuine).invoice or {}
    keys = sorted(set(posted_invoice) | set(genuine_invoice))
    changed += [f"invoice.{k}" for k in keys if posted_invoice.get(k) != genuine_invoice.get(k)]
    if set(posted.get("content") or {}) != set(genuine.get("content") or {}):
        changed.append("content")
    return changed


def verified_event(ctx: JobContext, job: Job | None, posted: dict[str, Any]) -> dict[str, Any] | None:
    """Chargebee's copy of the stored event, or None once a forged event is recorded `rejected`.
    Raises (for RQ to retry, or to leave in the dead letters) when Chargebee cannot be asked."""
    event_id = str(posted.get("id"))
    try:
        with chargebee_failures(ctx, job, posted, doing="verifying the event"):
            genuine = fetch_genuine(ctx.chargebee, event_id)
    except ForgedEvent as exc:
        record_outcome(ctx, job, posted, None, Outcome.REJECTED, reason=str(exc))
        return None
    changed = differences(posted, genuine)
    if changed:
        log.warning(
            "event %s: the posted copy differs from Chargebee's (%s); acting on Chargebee's",
            event_id,
            ", ".join(changed),
            extra={"event_id": event_id},
        )
    return genuine
