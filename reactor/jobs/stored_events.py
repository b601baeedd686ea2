"""The events a job holds: dicts, because that is how they come (the stored body in Redis,
Chargebee's own copy, a held write-off, a pending re-check, RQ's job arguments) and how they go on
(`decide` reads a dict, RQ pickles the arguments). They are read through `Event`
(reactor/ingest/envelope.py), so the invoice is dug out of an event in one place: `Event.invoice`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from ..ingest.envelope import Event


def as_event(data: Mapping[str, Any]) -> Event:
    """The typed view of an event dict; `raw` is the dict as JSON, as the webhook would store it.
    Nothing is checked again: parse_event checked what came by webhook, and an event an older
    release stored is read as it is. A field of another type reads as absent (an empty id or type,
    no content, no invoice)."""
    event_id, event_type, content = data.get("id"), data.get("event_type"), data.get("content")
    occurred_at = data.get("occurred_at")
    return Event(
        id=event_id if isinstance(event_id, str) else "",
        event_type=event_type if isinstance(event_type, str) else "",
        content=content if isinstance(content, dict) else {},
        raw=json.dumps(dict(data)).encode(),
        occurred_at=occurred_at if isinstance(occurred_at, int) and not isinstance(occurred_at, bool) else None,
    )


def with_invoice(data: Mapping[str, Any], invoice: dict[str, Any]) -> dict[str, Any]:
    """A copy of the event with `invoice` (fetched fresh) in place of the one it carried; the rest of
    its content (its type, its customer...) is what the rules decide on with it."""
    fresh = copy.deepcopy(dict(data))
    content = fresh.get("content")
    fresh["content"] = {**content, "invoice": invoice} if isinstance(content, dict) else {"invoice": invoice}
    return fresh
