"""The layout of an invoice's trace list, `{p}:trace:<invoice>` (reactor/keys.py), for the four that
write it: the webhook's accept script (receipts, reactor/ingest/events.py), the jobs' trace log
(decisions and Chargebee calls, reactor/jobs/trace/store.py), the audit stream's script (the ids of
the invoice's audit records, reactor/jobs/audit/stream.py) and the order check (the newest
resource_version, reactor/jobs/evaluate.py).

One list per invoice holds what used to be three keys (the trace, the audit index and the
resource_version), because a Redis key costs about 170 bytes before its value: the per-invoice keys
were a third of what an event kept (docs/benchmarks.md, "Redis memory per event"). Its entries:

- `version <n>`: the newest resource_version of the invoice acted on so far; only ever the head of
  the list (index 0), written by the order check alone;
- `audit <stream id>`: one of the invoice's audit records, written with the record;
- anything else: a trace entry, packed JSON (reactor/ingest/packing.py) or JSON.

Every writer keeps TRACE_CAP entries and renews the list's TTL; trimming keeps the `version` head
(TRIM_LUA), so the order check never forgets a version while the trace lives, and drops the oldest
trace entries before audit ids (up to AUDIT_KEEP of them), so that redeliveries, which add a receipt
each, cannot push the invoice's audit records out of `reactor trace`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TRACE_CAP = 300
"""Entries kept per invoice, the newest: receipts, decisions and calls, and one per audit record (an
event decided without a Chargebee call takes three), so an invoice redelivered for months cannot grow
without bound."""

TRACE_TTL = 400 * 24 * 3600
"""Seconds an invoice's trace outlives its last entry: as long as the `written_off` mark (400 days,
reactor/jobs/marks.py), so a write-off can be traced as long as it is remembered."""

VERSION = b"version "
AUDIT = b"audit "

_AUDIT_ID = re.compile(rb"audit (\d+-\d+)")
_VERSION = re.compile(rb"version (\d+)")

AUDIT_KEEP = 100
"""Audit ids the trim passes over, oldest first, before it drops one: the oldest entries that go are
trace entries (receipts, decisions, calls), so a flood of redeliveries or calls cannot push the ids
of the invoice's audit records (its write-off) out of the list; only more than AUDIT_KEEP audit ids
older than every trace entry kept lose the oldest of them."""

TRIM_LUA = (
    """
local AUDIT_KEEP = """
    + str(AUDIT_KEEP)
    + """
local function is_version(entry)
  return entry and string.sub(entry, 1, 8) == 'version '
end
local function trim_trace(key, cap, ttl)
  local n = redis.call('LLEN', key)
  if n > cap then
    local first = 0
    if is_version(redis.call('LINDEX', key, 0)) then first = 1 end
    while n > cap do
      -- the oldest entry that is not an audit id, among the AUDIT_KEEP + 1 after the head; else the oldest
      local drop = first
      local at = first
      for _, upto in ipairs({first + 3, first + AUDIT_KEEP}) do
        local found = nil
        for i, value in ipairs(redis.call('LRANGE', key, at, upto)) do
          if string.sub(value, 1, 6) ~= 'audit ' then found = at + i - 1 break end
        end
        if found then drop = found break end
        at = upto + 1
      end
      if drop == 0 then
        redis.call('LPOP', key)
      else
        redis.call('LSET', key, drop, 'reactor:trimmed')
        redis.call('LREM', key, 1, 'reactor:trimmed')
      end
      n = n - 1
    end
  end
  redis.call('EXPIRE', key, ttl)
end
"""
)
"""`trim_trace(key, cap, ttl)`: keep `cap` entries and renew the TTL; `is_version(entry)`: whether an
entry is the `version` head (a false entry, a missing head, is not). What goes is the oldest trace
entry, not the `version` head and not an audit id among the AUDIT_KEEP oldest entries after it (when
those are all audit ids, the oldest of them goes). Every script that writes a trace defines it."""

APPEND_LUA = (
    TRIM_LUA
    + """
redis.call('RPUSH', KEYS[1], ARGV[1])
trim_trace(KEYS[1], tonumber(ARGV[2]), ARGV[3])
return 1
"""
)
"""KEYS[1] the trace; ARGV: the entry, the cap, the TTL. The one way a single entry is appended."""


@dataclass
class TraceList:
    """A trace list as read: its trace entries (stored bytes, oldest first), the ids of its audit
    records, and the version the order check keeps."""

    entries: list[bytes] = field(default_factory=list)
    audit_ids: list[str] = field(default_factory=list)
    version: int | None = None


def read_trace_list(stored: list[bytes]) -> TraceList:
    """Split an LRANGE of a trace into its kinds of entry."""
    found = TraceList()
    for value in stored:
        if value.startswith(AUDIT) and (audit := _AUDIT_ID.fullmatch(value)):
            found.audit_ids.append(audit.group(1).decode())
        elif value.startswith(VERSION) and (version := _VERSION.fullmatch(value)):
            found.version = int(version.group(1))
        else:
            found.entries.append(value)
    return found
