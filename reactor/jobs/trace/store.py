"""`TraceLog`: the capped Redis list `{p}:trace:<invoice>` (reactor/keys.py), and which invoice the
job in this process is working on, so that a call whose path does not name it (a customer's, a
subscription's) still lands in its trace.

Entries are stored packed (reactor/ingest/packing.py; a decision lists every rule it read, some 1.5 kB
of JSON, about 200 bytes packed); an entry without the mark is read as JSON, as are the entries of
releases before packing. The same list holds the ids of the invoice's audit records and the version
the order check keeps (reactor/ingest/trace_list.py), which `entries` leaves out.

Recording never fails a job: fail closed applies to money, not to the trace. A write that fails is
logged and dropped."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

import redis

from ...ingest.packing import pack, unpack
from ...ingest.trace_list import APPEND_LUA, TRACE_CAP, TRACE_TTL, read_trace_list
from ...keys import Keys

log = logging.getLogger(__name__)

_invoice: ContextVar[str | None] = ContextVar("reactor_trace_invoice", default=None)


@contextmanager
def tracing_invoice(invoice_id: str | None) -> Iterator[None]:
    """Calls made inside belong to `invoice_id`'s trace."""
    token = _invoice.set(invoice_id)
    try:
        yield
    finally:
        _invoice.reset(token)


def current_invoice() -> str | None:
    return _invoice.get()


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class TraceLog:
    """Append to and read an invoice's trace; at most `cap` entries, the newest kept."""

    def __init__(self, connection: redis.Redis, keys: Keys, cap: int = TRACE_CAP, ttl: int = TRACE_TTL):
        self.redis = connection
        self.keys = keys
        self.cap = cap
        self.ttl = ttl
        self._append = connection.register_script(APPEND_LUA)

    def add(self, invoice_id: str | None, entry: dict[str, Any]) -> None:
        """Append one entry (stamped `at` now unless it has one). Never raises."""
        if not invoice_id:
            return
        entry.setdefault("at", now_text())
        try:
            stored = pack(json.dumps(entry, separators=(",", ":"), default=str).encode())
            self._append(keys=[self.keys.trace(invoice_id)], args=[stored, self.cap, self.ttl])
        except Exception:
            kind = entry.get("kind")
            log.warning("could not record a %s in the trace of invoice %s", kind, invoice_id, exc_info=True)

    def entries(self, invoice_id: str) -> list[dict[str, Any]]:
        """The stored entries, oldest first, packed or not; an unreadable one is skipped, and so are
        the list's audit ids and version (reactor/ingest/trace_list.py)."""
        found = []
        for stored in read_trace_list(self.redis.lrange(self.keys.trace(invoice_id), 0, -1)).entries:
            try:
                entry = json.loads(unpack(stored))
            except ValueError:
                continue
            if isinstance(entry, dict):
                found.append(entry)
        return found
