"""An invoice's trace list, `{p}:trace:<invoice>` (reactor/keys.py): its layout, and every Lua script
or script part that writes it (the webhook's accept script, the jobs' trace log, the audit stream and
the order check compose or call what is here). One list per invoice holds what used to be three keys
(trace, audit index, resource_version): docs/benchmarks.md, "Redis memory per event".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The entries of a trace list:
# - `version <n>`: the newest resource_version of the invoice acted on so far; only ever the head of
#   the list (index 0), written by the order check alone (ADVANCE_VERSION_LUA);
# - `audit <stream id>`: one of the invoice's audit records, written with the record (append_audit_id);
# - anything else: a trace entry, packed JSON (reactor/ingest/packing.py) or JSON.
# Every writer keeps TRACE_CAP entries and renews the TTL (trim_trace).
VERSION = b"version "
AUDIT = b"audit "

_AUDIT_ID = re.compile(rb"audit (\d+-\d+)")
_VERSION = re.compile(rb"version (\d+)")

TRACE_CAP = 300
"""Entries kept per invoice, the newest: receipts, decisions and calls, and one per audit record (an
event decided without a Chargebee call takes three), so an invoice redelivered for months cannot grow
without bound."""

TRACE_TTL = 400 * 24 * 3600
"""Seconds an invoice's trace outlives its last entry: as long as the `written_off` mark (400 days,
reactor/jobs/marks.py), so a write-off can be traced as long as it is remembered."""

AUDIT_KEEP = 100
"""Audit ids the trim passes over, oldest first, before it drops one: the oldest entries that go are
trace entries (receipts, decisions, calls), so a flood of redeliveries or calls cannot push the ids
of the invoice's audit records (its write-off) out of the list; only more than AUDIT_KEEP audit ids
older than every trace entry kept lose the oldest of them."""

APPEND_COMMAND = "reactor:append-trace"
"""The accept script's pseudo-command `(APPEND_COMMAND, trace, entry, cap, ttl)` (append_command):
append an entry to a trace as every writer of one does."""

TRACE_LUA = (
    """
-- The trace list's functions (reactor/ingest/trace_list.py); every script that touches a trace
-- starts with them and calls them, none writes a trace itself.
local AUDIT_KEEP = """
    + str(AUDIT_KEEP)
    + """
local APPEND_COMMAND = '"""
    + APPEND_COMMAND
    + """'

-- Whether `entry` is the `version <n>` head; a false entry (LINDEX of a missing head) is not.
local function is_version(entry)
  return entry and string.sub(entry, 1, 8) == 'version '
end

-- Keep `cap` entries of the trace `key` and renew its TTL (`ttl` seconds). What goes is the oldest
-- trace entry, never the `version` head and not an audit id among the AUDIT_KEEP oldest entries after
-- it (when those are all audit ids, the oldest of them goes): redeliveries, which add a receipt each,
-- cannot push the invoice's audit records out of `reactor trace`, and the order check never forgets
-- a version while the trace lives.
local function trim_trace(key, cap, ttl)
  local n = redis.call('LLEN', key)
  if n > cap then
    -- the first entry that may go: after the version head, if there is one
    local first = 0
    if is_version(redis.call('LINDEX', key, 0)) then first = 1 end
    while n > cap do
      -- the oldest entry that is not an audit id: looked for in the 4 entries from `first`, then in
      -- the rest of the AUDIT_KEEP + 1 (two LRANGEs, the second only for a run of audit ids); when
      -- there is none, the oldest entry (`first`) goes
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
        -- remove by index: mark the entry, then remove the one marked entry
        redis.call('LSET', key, drop, 'reactor:trimmed')
        redis.call('LREM', key, 1, 'reactor:trimmed')
      end
      n = n - 1
    end
  end
  redis.call('EXPIRE', key, ttl)
end

-- Append `entry` to the trace `key`, then trim it to `cap` entries and renew its TTL.
local function append_trace(key, entry, cap, ttl)
  redis.call('RPUSH', key, entry)
  trim_trace(key, cap, ttl)
end

-- Append the id of an audit record (`stream_id`, its stream entry's id) to the trace `key`.
local function append_audit_id(key, stream_id, cap, ttl)
  append_trace(key, 'audit ' .. stream_id, cap, ttl)
end

-- For the accept script, before it writes anything: an error reply when the trace `key` holds
-- something other than a list (its receipt would fail after the event was queued), else nil.
local function refuse_unless_trace(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'list' and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE the trace ' .. key .. ' holds a ' .. kind .. ', not a list')
  end
  return nil
end

-- For the accept script's APPEND_COMMAND: append_trace, answering the failure's message (nil if
-- none) instead of raising it, so that the script can remove the stored event first.
local function append_trace_caught(key, entry, cap, ttl)
  local ok, err = pcall(append_trace, key, entry, tonumber(cap), ttl)
  if ok then return nil end
  return type(err) == 'table' and err.err or tostring(err)
end
"""
)
"""The functions every script that touches a trace starts with (each is commented in the Lua)."""

APPEND_LUA = (
    TRACE_LUA
    + """
-- KEYS[1] the trace. ARGV[1] the entry, ARGV[2] the cap, ARGV[3] the TTL in seconds.
append_trace(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3])
return 1
"""
)
"""The one way a single entry is appended (the jobs' trace log, a duplicate's receipt)."""

ADVANCE_VERSION_LUA = (
    TRACE_LUA
    + """
-- The order check (reactor/jobs/evaluate.py): the newest resource_version of an invoice only moves
-- forward. KEYS[1] the trace; KEYS[2] the key releases before kept the version in (30 days: read,
-- never written). ARGV[1] the incoming version, ARGV[2] the trace's cap, ARGV[3] its TTL, ARGV[4]
-- the latest believable version (the clock plus RESOURCE_VERSION_SLACK_MS). Returns 1 when the
-- incoming version is not older than the stored one (act on it), 0 when it is stale.
local latest = tonumber(ARGV[4])
-- the stored version: the `version` head of the trace...
local head = redis.call('LINDEX', KEYS[1], 0)
local marked = is_version(head)
local stored = marked and tonumber(string.sub(head, 9)) or nil
-- ...unless it is past `latest` (kept before versions were bounded): then it is not compared, and
-- is replaced
if stored and stored > latest then stored = nil end
-- the key of releases before, under the same bound; the newer of the two counts
local before = tonumber(redis.call('GET', KEYS[2]) or '')
if before and before > latest then before = nil end
if before and (not stored or before > stored) then stored = before end
-- stale: a newer version was already acted on
if stored and stored > tonumber(ARGV[1]) then return 0 end
-- keep the incoming version as the head: replace the head, or push one
if marked then
  redis.call('LSET', KEYS[1], 0, 'version ' .. ARGV[1])
else
  redis.call('LPUSH', KEYS[1], 'version ' .. ARGV[1])
end
trim_trace(KEYS[1], tonumber(ARGV[2]), ARGV[3])
return 1
"""
)
"""The order check's compare-and-set of the `version` head (the Lua says what it takes)."""


def append_command(trace: str, entry: bytes) -> tuple[str, str, bytes, int, int]:
    """The accept script's pseudo-command appending `entry` to `trace` (reactor/ingest/events.py)."""
    return (APPEND_COMMAND, trace, entry, TRACE_CAP, TRACE_TTL)


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
