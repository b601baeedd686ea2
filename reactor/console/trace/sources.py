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
from ...jobs.audit.archive import ArchiveUnavailable
from ...jobs.audit.manifest import id_parts
from ...jobs.held import HeldWriteOff, list_held
from ...jobs.trace.store import TraceLog
from ...keys import Keys
from ..archiving import audit_archive
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
    archived_from: list[str] = field(default_factory=list)  # the archive's segments some records were read from
    archive_error: str | None = None  # records that left Redis, and the archive could not be read

    def notes(self, archive_url: str = "") -> list[str]:
        """What the timeline should be read with: where records came from, or which are missing."""
        notes = [SCAN_NOTE] if self.scanned else []
        if self.archived_from:
            segments = ", ".join(self.archived_from)
            notes.append(f"audit records that have left Redis read from the archive {archive_url}, segment {segments}")
        if self.archive_error:
            notes.append(f"audit records have left Redis and the archive could not be read: {self.archive_error}")
        return notes

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
    log = AuditLog(connection, keys.audit())
    records, scanned = log.for_invoice(invoice_id, oldest(entries))
    letters = [letter for letter in DeadLetters(connection, settings).list() if letter.invoice_id == invoice_id]
    held = next((item for item in list_held(connection, settings.key_prefix) if item.invoice_id == invoice_id), None)
    sources = TraceSources(invoice_id, entries, records, letters, held, scanned=scanned and bool(records))
    read = {record.id for record in records}
    gone = [entry_id for entry_id in log.listed_ids(invoice_id) if entry_id not in read]
    if gone:
        _read_archived(settings, connection, sources, gone)
    return sources


def _read_archived(settings: Settings, connection: redis.Redis, sources: TraceSources, ids: list[str]) -> None:
    """Add to `sources` the records of `ids`, trimmed from the stream after archiving, from the archive."""
    try:
        found = audit_archive(settings, connection).find(ids)
    except ArchiveUnavailable as exc:
        sources.archive_error = str(exc)
        return
    for entry_id, (segment, fields) in found.items():
        if fields.get("invoice_id") == sources.invoice_id:
            sources.records.append(AuditRecord.from_fields(entry_id, fields))
            sources.archived_from.append(segment)
    sources.records.sort(key=lambda record: id_parts(record.id or "0-0"))
    sources.archived_from = sorted(set(sources.archived_from))


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
    the invoice of the event of that id (its stored copy, else its audit records, in Redis or in the
    audit archive); None when neither.
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
    if not audit.all_indexed():  # else an invoice with records would have its index
        for _record in audit.query(AuditFilter(invoice_id=some_id), limit=1):
            return some_id
    return archived_invoice_of(connection, settings, some_id)  # the costliest lookup, last


def archived_invoice_of(connection: redis.Redis, settings: Settings, event_id: str) -> str | None:
    """The invoice of an event whose stored copy has expired and whose audit records have left Redis
    for the audit archive: the archived records older than the stream's oldest (the stream was read),
    newest segment first. Nothing indexes the archive by event, so an id it does not hold costs a read
    of every segment. None when no record names the event, or the archive cannot be read."""
    oldest = connection.xrange(Keys(settings.key_prefix).audit(), count=1)
    high = oldest[0][0].decode() if oldest else None
    try:
        for _segment, _entry_id, fields in audit_archive(settings, connection).records(high=high, reverse=True):
            if fields.get("event_id") == event_id and fields.get("invoice_id"):
                return fields["invoice_id"]
    except ArchiveUnavailable:
        return None
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
