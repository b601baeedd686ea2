"""The receipts of deliveries: what the webhook answered each one, so that `reactor trace` and the
dashboard can show every delivery that reached it.

- An event about an invoice: a receipt in the invoice's trace (`{p}:trace:<invoice>`, reactor/keys.py),
  written by the accept script in the same round trip (reactor/ingest/events.py), duplicates included,
  which otherwise only count. The trace is a capped Redis list per invoice; jobs append their
  Chargebee calls and decisions to the same list (reactor/jobs/trace/). Its layout and bounds are in
  reactor/ingest/trace_list.py, below all its writers.
- An event answered `ignored` (it carries no invoice) or refused with 400 (an API version other than
  v2, a body that is not a Chargebee event): a short receipt of its own, `{p}:receipt:<event>`, kept as
  long as a stored event (REACTOR_EVENT_TTL), the latest delivery's. A body refused before its `id` can
  be read as an event id (not JSON, no `id`, an `id` that is not at most 40 letters, digits, `_` or
  `-`) leaves none: there is nothing to find it by. Every field is bounded (`answer_receipt`), so a
  sender that posts any number of ids costs at most a key of some 600 bytes each, for the TTL.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any


def receipt(
    event_id: str, event_type: str, invoice: dict[str, Any] | None, status: str, moment: datetime | None = None
) -> str:
    """One receipt as stored: the event's id, type, the invoice's resource_version, what was answered."""
    version = (invoice or {}).get("resource_version")
    entry = {
        "kind": "receipt",
        "at": (moment or datetime.now(timezone.utc)).isoformat(timespec="milliseconds"),
        "event_id": event_id,
        "event_type": event_type,
        "resource_version": version if isinstance(version, int) else None,
        "status": status,
    }
    return json.dumps(entry, separators=(",", ":"))


WHY_MAX = 200
"""Characters kept of a receipt's `why` (a refusal quotes what the body carried): with the event id
(at most 40 characters) and type (at most 100, parse_event's alphabets), a receipt is under 600 bytes
of ASCII JSON, some 1.5 kB at most where `why` quotes non-ASCII text."""

IGNORED_WHY = "the event carries no invoice (content.invoice), so there is nothing to decide"


def answer_receipt(event_id: str, event_type: str | None, status: str, why: str, moment: datetime | None = None) -> str:
    """The receipt of a delivery that was not taken, as stored under `{p}:receipt:<event>`: the event's
    id and type, the answer (`ignored`, or `rejected` for a 400) and why, cut to WHY_MAX characters."""
    entry = {
        "kind": "receipt",
        "at": (moment or datetime.now(timezone.utc)).isoformat(timespec="milliseconds"),
        "event_id": event_id,
        "event_type": event_type,
        "status": status,
        "why": why if len(why) <= WHY_MAX else why[: WHY_MAX - 1] + "…",
    }
    return json.dumps(entry, separators=(",", ":"))
