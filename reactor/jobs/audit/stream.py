"""The decision trail in Redis: a stream (`AuditLog`), appended to and read back in batches, and
trimmed only of what the archive holds (reactor/jobs/audit/archive.py). A record that names an
invoice also has its id kept in the invoice's trace list, so `for_invoice` reads the invoice's
records, not the stream. Free text is written redacted (reactor/redaction.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime

import redis

from ...ingest.trace_list import TRACE_CAP, TRACE_LUA, TRACE_TTL, read_trace_list
from ...keys import Keys
from ...redaction import redact
from .records import AuditRecord

FREE_TEXT = frozenset(("reason", "detail"))
"""The fields that carry words from elsewhere (an error, a person), redacted as they are written."""

# KEYS[1] the stream; KEYS[2] the id of its first indexed record; KEYS[3], when the record names an
# invoice, the invoice's trace. ARGV[1] the trace's cap, ARGV[2] its TTL, from ARGV[3] the record's
# fields and values. Returns the entry id. One script, so the record is never in the stream without
# its id in the trace.
_APPEND = (
    TRACE_LUA
    + """
-- add the record; the stream is not capped here: a record leaves it only once archived
-- (reactor/jobs/audit/archive.py trims it)
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
if KEYS[3] then
  -- the first record indexed, kept once: records before it may be in no trace
  redis.call('SET', KEYS[2], id, 'NX')
  -- its id in the invoice's trace (reactor/ingest/trace_list.py), capped as every writer does
  append_audit_id(KEYS[3], id, tonumber(ARGV[1]), ARGV[2])
end
return id
"""
)


@dataclass(frozen=True)
class AuditFilter:
    """Which records `AuditLog.query` reads: those in the window from `since` to `until`, and with
    each field given (an outcome among `outcomes`); a field not given matches any record."""

    since: datetime | None = None
    until: datetime | None = None
    invoice_id: str | None = None
    event_id: str | None = None
    job_id: str | None = None
    outcomes: Collection[str] | None = None  # empty: any outcome

    def matches(self, fields: dict[str, str]) -> bool:
        """Whether a record's stored fields pass the filter (the window aside: the read bounds it)."""
        if self.invoice_id and fields.get("invoice_id") != self.invoice_id:
            return False
        if self.event_id and fields.get("event_id") != self.event_id:
            return False
        if self.job_id and fields.get("job_id") != self.job_id:
            return False
        return not self.outcomes or fields.get("outcome") in self.outcomes


def stream_id_bound(moment: datetime, exclusive: bool = False) -> str:
    """A stream id bound for a moment: stream ids start with the milliseconds since the epoch."""
    bound = f"{int(moment.timestamp() * 1000)}"
    return f"({bound}-0" if exclusive else bound


def _millis(stream_id_or_moment: str | datetime) -> int:
    """The milliseconds a stream id (or a moment) stands for."""
    if isinstance(stream_id_or_moment, datetime):
        return int(stream_id_or_moment.timestamp() * 1000)
    return int(stream_id_or_moment.split("-")[0])


def _id_parts(stream_id: str) -> tuple[int, int]:
    millis, _, seq = stream_id.partition("-")
    return int(millis), int(seq or 0)


# A stream gives an append-only log with time-ordered ids and cheap range reads for `reactor audit
# --since`. Appends never trim it: the archive (reactor/jobs/audit/archive.py) trims what it holds.
class AuditLog:
    """The stream, with an optional source of the current rules version: a record written without
    one (a failure, a lock, an operator's replay) is stamped with the rules that were in force."""

    def __init__(
        self,
        connection: redis.Redis,
        key: str = "reactor:audit",
        rules_version: Callable[[], str | None] | None = None,
    ):
        self.redis = connection
        self.key = key
        self.rules_version = rules_version

    def stamp(self, record: AuditRecord) -> AuditRecord:
        """Name the rules in force on a record written without a decision."""
        if record.rules_version is None and self.rules_version is not None:
            try:
                record.rules_version = self.rules_version()
            except Exception:  # a broken rules file must not stop the record being written
                record.rules_version = None
        return record

    def index_key(self, invoice_id: str) -> str:
        """The list of the stream ids of `invoice_id`'s records that releases before kept (read, never
        written: the ids are in the invoice's trace now)."""
        return f"{self.key}:invoice:{invoice_id}"

    def trace_key(self, invoice_id: str) -> str:
        """The invoice's trace list, which holds the ids of its records: `{p}:trace:<invoice>` for the
        stream `{p}:audit` (reactor/keys.py)."""
        return Keys(self.key.removesuffix(":audit")).trace(invoice_id)

    def indexed_since_key(self) -> str:
        """The stream id of the first record indexed: records before it may be in no index."""
        return f"{self.key}:indexed_since"

    def _script_args(self, record: AuditRecord) -> list[str | int]:
        keys = [self.key, self.indexed_since_key()]
        if record.invoice_id:
            keys.append(self.trace_key(record.invoice_id))
        fields = [
            part
            for name, value in self.stamp(record).to_fields().items()
            for part in (name, redact(value) if name in FREE_TEXT and value else value)
        ]
        return [len(keys), *keys, TRACE_CAP, TRACE_TTL, *fields]

    def append(self, record: AuditRecord) -> str:
        """Add the record (and its id to its invoice's trace); its stream id."""
        entry_id = self.redis.eval(_APPEND, *self._script_args(record))
        record.id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        return record.id

    def queue(self, pipe: redis.client.Pipeline, record: AuditRecord) -> None:
        """Queue the append on `pipe` (a transaction with the writes it records); its result there is
        the stream id."""
        pipe.eval(_APPEND, *self._script_args(record))

    def for_invoice(self, invoice_id: str, history_since: datetime | None = None) -> tuple[list[AuditRecord], bool]:
        """The invoice's records in stream order, read by the ids its trace keeps (and the index list of
        releases before: two LRANGEs, then one pipelined XRANGE id id each; an id trimmed from the
        stream reads nothing), and whether the stream had to be read instead: whole for an invoice
        with no index (its records predate it), or up to the first indexed record when the invoice's
        history (`history_since`, its oldest trace entry) began before the index did."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.lrange(self.index_key(invoice_id), 0, -1)
            pipe.lrange(self.trace_key(invoice_id), 0, -1)
            pipe.get(self.indexed_since_key())
            indexed, trace, since = pipe.execute()
        # the ids: in the trace list (an `audit <id>` entry, written by _APPEND with the record), and
        # in the list of releases before, `<stream>:invoice:<invoice>`, read until it expires
        listed = [raw.decode() for raw in indexed] + read_trace_list(trace).audit_ids
        ids = sorted(dict.fromkeys(listed), key=_id_parts)
        # Records written before any index are in none: an invoice with no id at all is found by
        # reading the stream whole (unless the stream holds no record from before the index), and one
        # whose history began before the index also reads the stream up to `indexed_since`; both say so.
        if not ids:
            if self.all_indexed():  # no record of the invoice in the stream
                return [], False
            return list(self.query(AuditFilter(invoice_id=invoice_id))), True
        older: list[AuditRecord] = []
        if since is not None and history_since is not None and _millis(history_since) < _millis(since.decode()):
            older = list(self._before(invoice_id, since.decode()))
        with self.redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xrange(self.key, min=entry_id, max=entry_id)
            found = pipe.execute()
        records = [record for record in older if record.id not in ids]
        for entries in found:
            for raw_id, raw_fields in entries:
                fields = {k.decode(): v.decode() for k, v in raw_fields.items()}
                if fields.get("invoice_id") == invoice_id:
                    records.append(AuditRecord.from_fields(raw_id.decode(), fields))
        return records, bool(older)

    def listed_ids(self, invoice_id: str) -> list[str]:
        """The stream ids of the invoice's records that its trace (and the index of releases before)
        keeps, in stream order; one trimmed from the stream since is in the archive."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.lrange(self.index_key(invoice_id), 0, -1)
            pipe.lrange(self.trace_key(invoice_id), 0, -1)
            indexed, trace = pipe.execute()
        listed = [raw.decode() for raw in indexed] + read_trace_list(trace).audit_ids
        return sorted(dict.fromkeys(listed), key=_id_parts)

    def all_indexed(self) -> bool:
        """Whether every record the stream still holds was written with the index (the oldest is
        not older than the first one indexed): then an invoice without an index has no record."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.indexed_since_key())
            pipe.xrange(self.key, count=1)
            since, first = pipe.execute()
        if not first:
            return True
        return since is not None and _id_parts(first[0][0].decode()) >= _id_parts(since.decode())

    def _before(self, invoice_id: str, stream_id: str, batch: int = 1000) -> Iterator[AuditRecord]:
        """The invoice's records before `stream_id`, read from the start of the stream."""
        low = "-"
        while entries := self.redis.xrange(self.key, min=low, max=f"({stream_id}", count=batch):
            for raw_id, raw_fields in entries:
                fields = {k.decode(): v.decode() for k, v in raw_fields.items()}
                if fields.get("invoice_id") == invoice_id:
                    yield AuditRecord.from_fields(raw_id.decode(), fields)
            low = "(" + entries[-1][0].decode()

    def query(
        self,
        where: AuditFilter | None = None,
        *,
        limit: int | None = None,
        newest_first: bool = False,
        batch: int = 1000,
    ) -> Iterator[AuditRecord]:
        """The records `where` selects (all of them without it), in time order or newest first, up to
        `limit`; reads the stream in batches of `batch` so memory stays flat."""
        where = where or AuditFilter()
        # the window as stream-id bounds, so a window costs only its size
        low = stream_id_bound(where.since) if where.since else "-"
        high = stream_id_bound(where.until) if where.until else "+"
        yielded = 0
        while True:
            if newest_first:
                entries = self.redis.xrevrange(self.key, max=high, min=low, count=batch)
            else:
                entries = self.redis.xrange(self.key, min=low, max=high, count=batch)
            if not entries:
                return
            for raw_id, raw_fields in entries:
                fields = {k.decode(): v.decode() for k, v in raw_fields.items()}
                if not where.matches(fields):
                    continue
                yield AuditRecord.from_fields(raw_id.decode(), fields)
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            # the next batch starts past the last entry read
            if newest_first:
                high = "(" + entries[-1][0].decode()
            else:
                low = "(" + entries[-1][0].decode()

    def for_event(self, event_id: str) -> list[AuditRecord]:
        return list(self.query(AuditFilter(event_id=event_id)))

    def count(self) -> int:
        return int(self.redis.xlen(self.key))
