"""The sources of an invoice's timeline, read from Redis: its trace list, its audit records (by the
stream ids its trace list keeps), its dead letters and its held write-off; and which invoice an id
names (an invoice id, or an event id)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import redis

from ...config import Settings
from ...ingest.envelope import Event
from ...ingest.packing import UnpackError, unpack
from ...jobs.audit import AuditFilter, AuditLog, AuditRecord
from ...jobs.held import HeldWriteOff, list_held
from ...jobs.trace.store import TraceLog
from ...keys import Keys
from ..deadletters import DeadLetter, DeadLetters
from .timeline import Step, build_timeline


@dataclass
class TraceSources:
    invoice_id: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    records: list[AuditRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    held: HeldWriteOff | None = None
    scanned: bool = False  # the audit records were found by reading the stream whole (no index)

    def timeline(self) -> list[Step]:
        return build_timeline(self.entries, self.records, self.dead_letters, self.held)

    @property
    def found(self) -> bool:
        return bool(self.entries or self.records or self.dead_letters or self.held)


SCAN_NOTE = (
    "audit records found by reading the audit stream: this invoice's history predates the per-invoice index"
    " (the records written since are read by their ids)"
)


def read_sources(connection: redis.Redis, settings: Settings, invoice_id: str) -> TraceSources:
    """Everything kept about `invoice_id`. Its audit records are read by the ids its trace keeps
    (reactor/jobs/audit/stream.py `for_invoice`); the stream is read only for an invoice whose history
    began before the index (whole when it has no index entry at all), and `scanned` says so."""
    keys = Keys(settings.key_prefix)
    entries = TraceLog(connection, keys).entries(invoice_id)
    records, scanned = AuditLog(connection, keys.audit()).for_invoice(invoice_id, oldest(entries))
    letters = [letter for letter in DeadLetters(connection, settings).list() if letter.invoice_id == invoice_id]
    held = next((item for item in list_held(connection, settings.key_prefix) if item.invoice_id == invoice_id), None)
    return TraceSources(invoice_id, entries, records, letters, held, scanned=scanned and bool(records))


def oldest(entries: list[dict[str, Any]]) -> datetime | None:
    """When the oldest trace entry was written (its `at`), or None when none says."""
    moments = []
    for entry in entries:
        try:
            moment = datetime.fromisoformat(str(entry.get("at") or "").replace("Z", "+00:00"))
        except ValueError:
            continue
        moments.append(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
    return min(moments, default=None)


def find_invoice(connection: redis.Redis, settings: Settings, some_id: str) -> str | None:
    """The invoice `some_id` names: itself when anything is kept about an invoice of that id, else
    the invoice of the event of that id (its stored copy, else its audit records); None when neither.
    An empty id names nothing (the audit filters read an empty id as no filter at all)."""
    if not some_id:
        return None
    keys = Keys(settings.key_prefix)
    audit = AuditLog(connection, keys.audit())
    if connection.exists(keys.trace(some_id), audit.index_key(some_id)):
        return some_id
    raw = connection.get(keys.event(some_id))
    invoice_id = Event.from_data(_json(raw)).invoice_id if raw is not None else None
    if invoice_id:
        return invoice_id
    # the stored event has expired (or the id is mistyped): records written before the index, or an
    # event's records, are found only by reading the stream
    for record in audit.query(AuditFilter(event_id=some_id)):
        if record.invoice_id:
            return record.invoice_id
    if audit.all_indexed():  # an invoice with records would have its index
        return None
    for _record in audit.query(AuditFilter(invoice_id=some_id), limit=1):
        return some_id
    return None


def read_receipt(connection: redis.Redis, settings: Settings, event_id: str) -> dict[str, Any] | None:
    """The receipt of an event the webhook answered `ignored` or 400 (reactor/ingest/receipts.py), or
    None when it kept none (never received, expired, or taken: then its invoice's trace has it)."""
    if not event_id:
        return None
    raw = connection.get(Keys(settings.key_prefix).receipt(event_id))
    entry = _json(raw) if raw is not None else {}
    return entry if entry.get("kind") == "receipt" else None


def _json(stored: bytes) -> dict[str, Any]:
    """A stored event's JSON, packed or not; {} when it does not read."""
    try:
        data = json.loads(unpack(stored))
    except (ValueError, UnpackError):
        return {}
    return data if isinstance(data, dict) else {}
