"""The sources of an invoice's timeline, read from Redis: its trace list, its audit records, its dead
letters and its held write-off; and which invoice an id names (an invoice id, or an event id)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from ...config import Settings
from ...ingest.packing import UnpackError, unpack
from ...keys import Keys
from ..audit import AuditLog, AuditRecord
from ..deadletters import DeadLetter, DeadLetters
from ..held import HeldWriteOff, list_held
from ..stored_events import as_event
from .store import TraceLog
from .timeline import Step, build_timeline


@dataclass
class TraceSources:
    invoice_id: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    records: list[AuditRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    held: HeldWriteOff | None = None

    def timeline(self) -> list[Step]:
        return build_timeline(self.entries, self.records, self.dead_letters, self.held)

    @property
    def found(self) -> bool:
        return bool(self.entries or self.records or self.dead_letters or self.held)


def read_sources(connection: redis.Redis, settings: Settings, invoice_id: str) -> TraceSources:
    """Everything kept about `invoice_id`. The audit stream is read whole (filtered as it streams)."""
    keys = Keys(settings.key_prefix)
    records = list(AuditLog(connection, keys.audit()).query(invoice_id=invoice_id))
    letters = [letter for letter in DeadLetters(connection, settings).list() if letter.invoice_id == invoice_id]
    held = next((item for item in list_held(connection, settings.key_prefix) if item.invoice_id == invoice_id), None)
    return TraceSources(invoice_id, TraceLog(connection, keys).entries(invoice_id), records, letters, held)


def find_invoice(connection: redis.Redis, settings: Settings, some_id: str) -> str | None:
    """The invoice `some_id` names: itself when anything is kept about an invoice of that id, else
    the invoice of the event of that id (its stored copy, else its audit records); None when neither.
    An empty id names nothing (the audit filters read an empty id as no filter at all)."""
    if not some_id:
        return None
    keys = Keys(settings.key_prefix)
    if connection.exists(keys.trace(some_id)):
        return some_id
    raw = connection.get(keys.event(some_id))
    invoice_id = as_event(_json(raw)).invoice_id if raw is not None else None
    if invoice_id:
        return invoice_id
    audit = AuditLog(connection, keys.audit())
    for record in audit.query(event_id=some_id):
        if record.invoice_id:
            return record.invoice_id
    for _record in audit.query(invoice_id=some_id, limit=1):
        return some_id
    return None


def _json(stored: bytes) -> dict[str, Any]:
    """A stored event's JSON, packed or not; {} when it does not read."""
    try:
        data = json.loads(unpack(stored))
    except (ValueError, UnpackError):
        return {}
    return data if isinstance(data, dict) else {}
