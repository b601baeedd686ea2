"""The receipt of an event in its invoice's trace (`{p}:trace:<invoice>`, reactor/keys.py): what the
webhook answered, written by the accept script in the same round trip (reactor/ingest/events.py), so
that `reactor trace` shows every delivery, duplicates included, which otherwise only count.

The trace is a capped Redis list per invoice; jobs append their Chargebee calls and decisions to the
same list (reactor/jobs/trace/). Its bounds live here, below both writers."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

TRACE_CAP = 200
"""Entries kept per invoice: the newest, so an invoice redelivered for months cannot grow without bound."""

TRACE_TTL = 400 * 24 * 3600
"""Seconds an invoice's trace outlives its last entry: as long as the `written_off` mark (400 days,
reactor/jobs/marks.py), so a write-off can be traced as long as it is remembered."""


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
