"""The invoice's trace list (reactor/ingest/trace_list.py) on a real Redis: every writer keeps the newest
entries up to the cap, and the order check's `version` head with them."""

from __future__ import annotations

import pytest

from reactor.ingest.trace_list import APPEND_LUA, AUDIT_KEEP, TRACE_TTL, read_trace_list
from reactor.jobs.trace import TraceLog
from reactor.keys import Keys

pytestmark = pytest.mark.integration

KEY = "reactor:trace:inv_list"


def append(redis_conn, entry: bytes, cap: int = 5) -> None:
    redis_conn.eval(APPEND_LUA, 1, KEY, entry, cap, TRACE_TTL)


def test_appending_past_the_cap_keeps_the_newest_entries(redis_conn):
    for n in range(8):
        append(redis_conn, f"e{n}".encode())
    assert redis_conn.lrange(KEY, 0, -1) == [b"e3", b"e4", b"e5", b"e6", b"e7"]
    assert TRACE_TTL - 5 < redis_conn.ttl(KEY) <= TRACE_TTL


def test_appending_past_the_cap_keeps_the_version_head_in_place_of_the_oldest_entry(redis_conn):
    redis_conn.rpush(KEY, b"version 1795718165088", b"e0", b"e1", b"e2", b"e3")
    for n in range(4, 9):
        append(redis_conn, f"e{n}".encode())
    assert redis_conn.lrange(KEY, 0, -1) == [b"version 1795718165088", b"e5", b"e6", b"e7", b"e8"]
    # a version that is not the head (no writer puts one there) is an entry like any other
    redis_conn.delete(KEY)
    redis_conn.rpush(KEY, b"e0", b"version 1", b"e1", b"e2", b"e3")
    append(redis_conn, b"e4")
    assert redis_conn.lrange(KEY, 0, -1) == [b"version 1", b"e1", b"e2", b"e3", b"e4"]


def test_the_trace_log_reads_its_entries_and_leaves_out_audit_ids_the_version_and_what_does_not_read(redis_conn):
    log = TraceLog(redis_conn, Keys())
    log.add("inv_list", {"kind": "call", "path": "/invoices/inv_list"})
    redis_conn.lpush(KEY, b"version 1795718165088")
    redis_conn.rpush(KEY, b"audit 1795718165088-0", b"audit of a kind we never wrote", b"not json")
    log.add("inv_list", {"kind": "decision", "action": "none"})

    stored = read_trace_list(redis_conn.lrange(KEY, 0, -1))

    assert [e["kind"] for e in log.entries("inv_list")] == ["call", "decision"]
    assert stored.audit_ids == ["1795718165088-0"] and stored.version == 1795718165088
    assert len(stored.entries) == 4  # the two entries, and the two that do not read, which entries() skips


def test_appending_past_the_cap_drops_trace_entries_before_audit_ids(redis_conn):
    redis_conn.rpush(KEY, b"version 1795718165088", b"audit 1-0", b"e0", b"audit 2-0", b"e1")
    for n in range(2, 5):
        append(redis_conn, f"e{n}".encode())
    assert redis_conn.lrange(KEY, 0, -1) == [b"version 1795718165088", b"audit 1-0", b"audit 2-0", b"e3", b"e4"]
    # without a version head too
    redis_conn.delete(KEY)
    redis_conn.rpush(KEY, b"audit 1-0", b"e0", b"e1", b"audit 2-0", b"e2")
    append(redis_conn, b"e3")
    append(redis_conn, b"audit 3-0")
    assert redis_conn.lrange(KEY, 0, -1) == [b"audit 1-0", b"audit 2-0", b"e2", b"e3", b"audit 3-0"]


def test_audit_ids_past_audit_keep_lose_the_oldest_and_the_newest_entry_always_stays(redis_conn):
    cap = AUDIT_KEEP + 3
    redis_conn.rpush(KEY, b"version 7", *(f"audit {n}-0".encode() for n in range(AUDIT_KEEP + 2)))
    append(redis_conn, b"e0", cap=cap)  # AUDIT_KEEP + 1 audit ids before the first entry: the oldest goes
    stored = redis_conn.lrange(KEY, 0, -1)
    assert len(stored) == cap and stored[:2] == [b"version 7", b"audit 1-0"] and stored[-1] == b"e0"
    append(redis_conn, b"e1", cap=cap)
    stored = redis_conn.lrange(KEY, 0, -1)
    assert stored[:2] == [b"version 7", b"audit 2-0"] and stored[-2:] == [b"e0", b"e1"]
