"""The whole trail (`AuditTrail`): the archive's records, then the stream's, as one, in stream order,
each once. A record is in both while the stream keeps it after archiving; it is read from the
stream then. A trim during a read drops nothing: what leaves the stream is in the archive, and the
reader takes from the archive every record below the lowest the stream still gave it.
"""

from __future__ import annotations

from collections.abc import Iterator

from .archive import AuditArchive
from .manifest import id_parts
from .records import AuditRecord
from .stream import AuditFilter, AuditLog, stream_id_bound

BATCH = 1000
MAX_SEQ = 2**64 - 1


class AuditTrail:
    """`log`'s stream and `archive` (None: the stream alone) read as one trail."""

    def __init__(self, log: AuditLog, archive: AuditArchive | None):
        self.log = log
        self.archive = archive

    def query(
        self, where: AuditFilter | None = None, *, limit: int | None = None, newest_first: bool = False
    ) -> Iterator[AuditRecord]:
        """The records `where` selects, oldest first (or newest first), up to `limit`."""
        where = where or AuditFilter()
        found = self._newest_first(where) if newest_first else self._oldest_first(where)
        for count, record in enumerate(found, start=1):
            yield record
            if limit is not None and count >= limit:
                return

    def _archived(
        self, low: str | None, high: str | None, where: AuditFilter, reverse: bool = False
    ) -> Iterator[AuditRecord]:
        """The archive's records with `low` < id < `high` that `where` selects (its window included),
        oldest first, or newest first with `reverse` (a segment at a time)."""
        if self.archive is None:
            return
        since = id_parts(stream_id_bound(where.since))[0] if where.since else None
        until = id_parts(stream_id_bound(where.until))[0] if where.until else None
        if since and (low is None or id_parts(low)[0] < since - 1):
            low = f"{since - 1}-{MAX_SEQ}"  # the last id before the window: segments before it are skipped
        if until is not None and (high is None or id_parts(high)[0] > until + 1):
            high = f"{until + 1}-0"
        for _segment, entry_id, fields in self.archive.records(low, high, reverse=reverse):
            if where.matches(fields):
                yield AuditRecord.from_fields(entry_id, fields)

    def _oldest_first(self, where: AuditFilter) -> Iterator[AuditRecord]:
        low = stream_id_bound(where.since) if where.since else "-"
        high = stream_id_bound(where.until) if where.until else "+"
        last: str | None = None  # the last record read, from either source
        while True:
            with self.log.redis.pipeline(transaction=True) as pipe:
                pipe.xrange(self.log.key, count=1)
                pipe.xrange(self.log.key, min=f"({last}" if last else low, max=high, count=BATCH)
                first, entries = pipe.execute()
            # below the stream's first record, and after the last one read, the archive holds them
            bottom = first[0][0].decode() if first else None
            if bottom is None or last is None or id_parts(bottom) > id_parts(last):
                for record in self._archived(last, bottom, where):
                    yield record
                    last = record.id
                if not entries:
                    return
            if not entries:
                return
            for raw_id, raw_fields in entries:
                fields = {k.decode(): v.decode() for k, v in raw_fields.items()}
                last = raw_id.decode()
                if where.matches(fields):
                    yield AuditRecord.from_fields(last, fields)

    def _newest_first(self, where: AuditFilter) -> Iterator[AuditRecord]:
        low = stream_id_bound(where.since) if where.since else "-"
        high = stream_id_bound(where.until) if where.until else "+"
        lowest: str | None = None  # the lowest stream record read
        while entries := self.log.redis.xrevrange(
            self.log.key, max=f"({lowest}" if lowest else high, min=low, count=BATCH
        ):
            for raw_id, raw_fields in entries:
                fields = {k.decode(): v.decode() for k, v in raw_fields.items()}
                lowest = raw_id.decode()
                if where.matches(fields):
                    yield AuditRecord.from_fields(lowest, fields)
        if lowest is None:  # nothing in the window in the stream: the archive holds what is below its bottom
            first = self.log.redis.xrange(self.log.key, count=1)
            lowest = first[0][0].decode() if first else None
        yield from self._archived(None, lowest, where, reverse=True)
