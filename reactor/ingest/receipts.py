"""The receipt of an event in its invoice's trace (`{p}:trace:<invoice>`, reactor/keys.py): what the
webhook answered, written by the accept script in the same round trip (reactor/ingest/events.py), so
that `reactor trace` shows every delivery, duplicates included, which otherwise only count.

The trace is a capped Redis list per invoice; jobs append their Chargebee calls and decisions to the
same list (reactor/jobs/trace/). Its layout and bounds are in reactor/ingest/trace_list.py, below all
its writers."""

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
