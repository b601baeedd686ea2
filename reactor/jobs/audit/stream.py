"""The decision trail in Redis: a stream, appended to and read back in batches (`AuditLog`).

A stream gives an append-only log with time-ordered ids, cheap range reads for `reactor audit
--since`, and a length cap (`maxlen`, approximate) so Redis cannot fill up with history.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from datetime import datetime

import redis

from .records import AuditRecord


def _stream_id(moment: datetime, exclusive: bool = False) -> str:
    """A stream id bound for a moment: stream ids start with the milliseconds since the epoch."""
    bound = f"{int(moment.timestamp() * 1000)}"
    return f"({bound}-0" if exclusive else bound


class AuditLog:
    """The stream, with an optional source of the current rules version: a record written without
    one (a failure, a lock, an operator's replay) is stamped with the rules that were in force."""

    def __init__(
        self,
        connection: redis.Redis,
        key: str = "reactor:audit",
        maxlen: int = 1_000_000,
        rules_version: Callable[[], str | None] | None = None,
    ):
        self.redis = connection
        self.key = key
        self.maxlen = maxlen
        self.rules_version = rules_version

    def stamp(self, record: AuditRecord) -> AuditRecord:
        """Name the rules in force on a record written without a decision."""
        if record.rules_version is None and self.rules_version is not None:
            try:
                record.rules_version = self.rules_version()
            except Exception:  # a broken rules file must not stop the record being written
                record.rules_version = None
        return record

    def append(self, record: AuditRecord) -> str:
        self.stamp(record)
        entry_id = self.redis.xadd(self.key, record.to_fields(), maxlen=self.maxlen, approximate=True)
        record.id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        return record.id

    def query(
        self,
        since: datetime | None = None,
        invoice_id: str | None = None,
        event_id: str | None = None,
        limit: int | None = None,
        batch: int = 1000,
        *,
        until: datetime | None = None,
        outcomes: Collection[str] | None = None,
        job_id: str | None = None,
        newest_first: bool = False,
    ) -> Iterator[AuditRecord]:
        """Records in time order (or newest first), filtered; reads the stream in batches so
        memory stays flat. `since`/`until` become stream-id bounds, so a window costs only its size."""
        low = _stream_id(since) if since else "-"
        high = _stream_id(until) if until else "+"
        wanted = set(outcomes) if outcomes else None
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
                if invoice_id and fields.get("invoice_id") != invoice_id:
                    continue
                if event_id and fields.get("event_id") != event_id:
                    continue
                if job_id and fields.get("job_id") != job_id:
                    continue
                if wanted is not None and fields.get("outcome") not in wanted:
                    continue
                yield AuditRecord.from_fields(raw_id.decode(), fields)
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            if newest_first:
                high = "(" + entries[-1][0].decode()
            else:
                low = "(" + entries[-1][0].decode()

    def for_event(self, event_id: str) -> list[AuditRecord]:
        return list(self.query(event_id=event_id))

    def count(self) -> int:
        return int(self.redis.xlen(self.key))
