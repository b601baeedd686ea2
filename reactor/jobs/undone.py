"""The undone state as every job reads it (reactor/console/undo.py writes it): an invoice whose write-off
a person undid is held with reason `undone` until released, and the next write-off of it gets a new
idempotency key."""

from __future__ import annotations

import json
from typing import Any

from .context import JobContext
from .held import UNDONE_HOLD_REASON


def load_mark(ctx: JobContext, key: str) -> dict[str, Any] | None:
    """A JSON object stored at `key`, or None (absent or unreadable)."""
    raw = ctx.redis.get(key)
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def undone_hold(ctx: JobContext, invoice_id: str) -> str | None:
    """Why no job may write `invoice_id` off now (a person undid our write-off and has not released
    it), or None."""
    raw = ctx.redis.hget(ctx.keys.held(), invoice_id)
    try:
        held = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(held, dict) or held.get("reason") != UNDONE_HOLD_REASON:
        return None
    return f"our write-off was undone by a person; held until `reactor held release {invoice_id}`"


def write_off_generation(ctx: JobContext, invoice_id: str) -> int:
    """How many times our write-off of this invoice was undone (part of the next one's idempotency key)."""
    count = (load_mark(ctx, ctx.keys.undone(invoice_id)) or {}).get("count")
    return count if type(count) is int else 0
