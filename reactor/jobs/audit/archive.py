"""The audit archive (`AuditArchive`): the stream's records written in order, once, to gzip JSON-lines
segments outside Redis, each followed by a manifest entry that hashes it and the entry before
(reactor/jobs/audit/manifest.py); the stream is trimmed only up to what is archived.

One archive serves one stream: it takes the Redis connection, the stream's key and the root (a
directory or any fsspec URL, `s3://bucket/prefix`) it is given, and derives nothing else.

| where | what |
|---|---|
| `<root>/segments/<stem>.jsonl.gz` | the records, one JSON object a line: `id` and the fields as stored |
| `<root>/manifest/<stem>.json` | the segment's manifest entry, one JSON line |
| `{stream}:archive` (Redis hash) | `last_id`, `last_entry` (its SHA-256), `segment`, `at`; `archived`, `base` |
| | (counts, for the lag); `error`, `error_at` while the archive fails |
| `{stream}:archive:lock` | held during a round, so two rounds never write the same segment |

A round: take the lock; catch up with the manifest (an entry written before a crash, its position
not yet in Redis, is adopted, never written twice); cut the records after `last_id` into segments;
for each, write the segment, read it back and compare its SHA-256, write its entry, then record
`last_id` in Redis (`RECORD`: only under the round's lock, only forward); then trim the stream
(`TRIM`), never past `last_id`. A root whose manifest lacks the recorded position, a file that would
change, or a stream holding unarchived ids at or before the manifest's end refuse the round.
"""

from __future__ import annotations

import bisect
import contextlib
import gzip
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import fsspec
import redis
from fsspec.implementations.local import LocalFileSystem

from .manifest import (
    GENESIS,
    MANIFEST,
    ManifestEntry,
    Problem,
    chain_problems,
    cut,
    entry_path,
    id_parts,
    read_record_line,
    record_line,
    segment_bytes,
    segment_path,
    sha256,
    stem_id,
)

log = logging.getLogger(__name__)

READ_BATCH = 5000
"""Records read from the stream per XRANGE while a segment is cut."""

LOCK_SECONDS = 120
"""How long a round's lock outlives its last segment: one segment's write must fit in it."""

TRIM_BATCH = 100_000
"""Most records one trim removes (the script reads the ids it passes; a large backlog goes in steps)."""


class ArchiveUnavailable(Exception):
    """The archive could not be listed, read or written (a read-only directory, S3 down, a missing
    bucket, a segment that did not read back as written); nothing was trimmed."""


# KEYS[1] the stream; KEYS[2] the archive's state (hash, `last_id`: the last record archived); KEYS[3..]
# keys each holding a stream id another reader must pass before a record goes (the tally's cursor).
# ARGV[1] records the stream keeps at least, ARGV[2] most records to trim at once. Trims the oldest
# records beyond ARGV[1], never one after `last_id` nor after a holder's id; returns how many went.
TRIM = """
local function le(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if #ams ~= #bms then return #ams < #bms end
  if ams ~= bms then return ams < bms end
  return tonumber(aseq) <= tonumber(bseq)
end
local bound = redis.call('HGET', KEYS[2], 'last_id')
if not bound then return 0 end
for i = 3, #KEYS do
  local held = redis.call('GET', KEYS[i])
  if held and not le(bound, held) then bound = held end
end
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1])
if excess <= 0 then return 0 end
if excess > tonumber(ARGV[2]) then excess = tonumber(ARGV[2]) end
local going = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess)
local last = going[#going][1]
if not le(last, bound) then last = bound end
local ms, seq = string.match(last, '^(%d+)-(%d+)$')
return redis.call('XTRIM', KEYS[1], 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
"""

# KEYS[1] the archive's state, KEYS[2] the round's lock; ARGV[1] the lock's token, ARGV[2..5] last_id,
# last_entry, segment, at; ARGV[6] records to count. Records the position only while the lock holds
# the token and only past the recorded last_id; returns 'ok', else why not (nothing changed).
RECORD = """
local held = redis.call('GET', KEYS[2])
if held ~= ARGV[1] then return 'the round lost its lock' end
local last = redis.call('HGET', KEYS[1], 'last_id')
if last then
  local ams, aseq = string.match(last, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(ARGV[2], '^(%d+)-(%d+)$')
  local forward
  if #ams ~= #bms then forward = #ams < #bms
  elseif ams ~= bms then forward = ams < bms
  else forward = tonumber(aseq) < tonumber(bseq) end
  if not forward then return 'not after the recorded ' .. last end
end
redis.call('HSET', KEYS[1], 'last_id', ARGV[2], 'last_entry', ARGV[3], 'segment', ARGV[4], 'at', ARGV[5])
if tonumber(ARGV[6]) > 0 then redis.call('HINCRBY', KEYS[1], 'archived', ARGV[6]) end
return 'ok'
"""


@dataclass(frozen=True)
class ArchiveState:
    """What Redis keeps about the archive (`{stream}:archive`)."""

    last_id: str | None = None
    last_entry: str = GENESIS
    segment: str | None = None
    at: str | None = None
    archived: int = 0
    base: int | None = None
    error: str | None = None
    error_at: str | None = None

    @classmethod
    def read(cls, raw: dict[bytes, bytes]) -> ArchiveState:
        data = {k.decode(): v.decode() for k, v in raw.items()}
        return cls(
            last_id=data.get("last_id") or None,
            last_entry=data.get("last_entry") or GENESIS,
            segment=data.get("segment") or None,
            at=data.get("at") or None,
            archived=int(data.get("archived") or 0),
            base=int(data["base"]) if data.get("base") else None,
            error=data.get("error") or None,
            error_at=data.get("error_at") or None,
        )


@dataclass
class ArchiveRound:
    """What one round did: the segments written (their paths), the records in them, those trimmed."""

    segments: list[str] = field(default_factory=list)
    records: int = 0
    trimmed: int = 0
    adopted: int = 0  # manifest entries found written before a crash, adopted without writing again


@dataclass(frozen=True)
class ArchiveLag:
    """The oldest record not yet archived: its age in seconds (0 when none waits) and how many wait
    (None on a Redis before 7.0, which does not count a stream's appends)."""

    seconds: float
    waiting: int | None
    last_id: str | None
    error: str | None

    def as_dict(self) -> dict[str, object]:
        return {"lag_seconds": self.seconds, "waiting": self.waiting, "last_id": self.last_id, "error": self.error}


@dataclass
class Verification:
    """`AuditArchive.verify`'s findings: every problem, in stream order (the first is the first broken
    or missing segment), and how many entries and records were checked."""

    problems: list[Problem] = field(default_factory=list)
    entries: int = 0
    records: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditArchive:
    """The archive of one audit stream, under `root` (a directory or any fsspec URL; `fs` a filesystem
    already made for it, else one is made from the URL, credentials from the environment as the
    backend expects)."""

    def __init__(
        self,
        connection: redis.Redis,
        stream_key: str,
        root: str,
        *,
        fs: fsspec.AbstractFileSystem | None = None,
        segment_records: int = 50_000,
        segment_seconds: int = 3600,
        keep: int = 1_000_000,
        hold_keys: Sequence[str] = (),
    ):
        self.redis = connection
        self.stream_key = stream_key
        self.url = str(root)
        if fs is None:
            fs, root = fsspec.core.url_to_fs(str(root))
        self.fs = fs
        self.root = str(root).rstrip("/")
        self.segment_records = segment_records
        self.segment_seconds = segment_seconds
        self.keep = keep
        self.hold_keys = tuple(hold_keys)
        self._token: str | None = None  # the lock's token while a round runs

    @property
    def state_key(self) -> str:
        return state_key(self.stream_key)

    @property
    def lock_key(self) -> str:
        return f"{self.stream_key}:archive:lock"

    def state(self) -> ArchiveState:
        return ArchiveState.read(self.redis.hgetall(self.state_key))

    # -- a round ------------------------------------------------------------------------------------

    def run(self, flush: bool = False, now: datetime | None = None) -> ArchiveRound | None:
        """One round: archive what is due (everything waiting with `flush`), then trim. None when
        another round holds the lock. ArchiveUnavailable when the archive failed: what was archived
        before stays, nothing more is trimmed, and `error` in the state says why until a round works."""
        lock = self.redis.lock(self.lock_key, timeout=LOCK_SECONDS, blocking_timeout=0)
        if not lock.acquire():
            return None
        token = lock.local.token
        self._token = token.decode() if isinstance(token, bytes) else token
        try:
            done = ArchiveRound()
            try:
                state = self._catch_up(done)
                while entry := self._next_segment(state, flush, now or datetime.now(timezone.utc)):
                    state = self._record(state, entry)
                    lock.reacquire()  # a lock of a process killed mid-round frees itself within LOCK_SECONDS
                    done.segments.append(entry.segment)
                    done.records += entry.records
            except ArchiveUnavailable as exc:
                self._failed(str(exc))
                raise
            except Exception as exc:  # any failure of the storage backend (OSError, botocore's, ...)
                if isinstance(exc, redis.RedisError):
                    raise
                message = f"{exc.__class__.__name__}: {exc}".strip()
                self._failed(message)
                raise ArchiveUnavailable(message) from exc
            self.redis.hdel(self.state_key, "error", "error_at")
            done.trimmed = self.trim()
            return done
        finally:
            self._token = None
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("audit archive: the round's lock expired before its end")

    def trim(self) -> int:
        """Trim the stream to `keep` records, never one not archived (nor one a holder has not read)."""
        keys = [self.stream_key, self.state_key, *self.hold_keys]
        return int(self.redis.eval(TRIM, len(keys), *keys, self.keep, TRIM_BATCH))

    def _failed(self, message: str) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.redis.hset(self.state_key, mapping={"error": message[:500], "error_at": stamp})

    def _catch_up(self, done: ArchiveRound) -> ArchiveState:
        """The state, caught up with the manifest: with no position in Redis (a first round, or a Redis
        that lost it), the manifest's last entry; else each entry written after the position (a crash
        between the entry and the position's update) is adopted."""
        state = self.state()
        self.fs.invalidate_cache()
        if state.last_id is None:
            names = self._entry_names()
            if names:
                entry = ManifestEntry.read(self.fs.cat_file(f"{self.root}/{names[-1]}"))
                behind = self.redis.xrange(self.stream_key, min="-", max=entry.last_id, count=1)
                behind += self.redis.xrevrange(self.stream_key, max=entry.last_id, min="-", count=1)
                ours = self.find([raw.decode() for raw, _ in behind])
                strays = [
                    raw.decode()
                    for raw, fields in behind
                    if ours.get(raw.decode(), ("", None))[1] != {k.decode(): v.decode() for k, v in fields.items()}
                ]
                if strays:  # records at or before the archive's end that it does not hold (archived ones are fine)
                    raise ArchiveUnavailable(
                        f"the stream holds {strays[0]}, at or before {entry.last_id} where the archive"
                        f" at {self.url} ends, and Redis has no archive position (a flushed Redis, a clock"
                        " behind?): those records would never be archived; nothing trimmed"
                    )
                state = self._adopt(state, entry, count=False)
                done.adopted += 1
            return self._with_base(state)
        self._require_position(state)
        while True:
            following = self.redis.xrange(self.stream_key, min=f"({state.last_id}", max="+", count=1)
            if not following:
                return state
            path = f"{self.root}/{entry_path(following[0][0].decode())}"
            if not self.fs.exists(path):
                return state
            state = self._adopt(state, ManifestEntry.read(self.fs.cat_file(path)), count=True)
            done.adopted += 1

    def _require_position(self, state: ArchiveState) -> None:
        """Refuse a root whose manifest does not hold the entry Redis recorded last (a relative root
        read from another directory, another host's default): writing there and trimming would lose
        records."""
        assert state.last_id is not None
        names = self._entry_names()
        at = _last_at_or_before([id_parts(stem_id(name)) for name in names], id_parts(state.last_id))
        held = ManifestEntry.read(self.fs.cat_file(f"{self.root}/{names[at]}")) if at >= 0 else None
        if held is None or held.last_id != state.last_id or held.digest() != state.last_entry:
            raise ArchiveUnavailable(
                f"the archive at {self.url} does not hold the last archived records (up to {state.last_id},"
                f" {state.segment or 'no segment'} recorded in Redis); nothing trimmed"
            )

    def _with_base(self, state: ArchiveState) -> ArchiveState:
        """Record, once, how many records had left the stream before the archive began (for the
        count of those waiting: appends so far less those and the archived ones)."""
        if state.base is not None:
            return state
        added = self._appended()
        if added is None:
            return state
        base = max(0, added[0] - added[1])
        self.redis.hsetnx(self.state_key, "base", base)
        return ArchiveState(**{**state.__dict__, "base": base})

    def _appended(self) -> tuple[int, int] | None:
        return _appended(self.redis, self.stream_key)

    def _adopt(self, state: ArchiveState, entry: ManifestEntry, count: bool) -> ArchiveState:
        log.info("audit archive: %s was written before; its position recorded now", entry.segment)
        return self._record(state, entry, count)

    def _record(self, state: ArchiveState, entry: ManifestEntry, count: bool = True) -> ArchiveState:
        """Record `entry` as the archive's last one in Redis: from here on its records may be trimmed.
        Only while this round holds the lock, and only forward (RECORD); else ArchiveUnavailable."""
        answer = self.redis.eval(
            RECORD,
            2,
            self.state_key,
            self.lock_key,
            self._token or "",
            entry.last_id,
            entry.digest(),
            entry.segment,
            entry.at,
            entry.records if count else 0,
        )
        answer = answer.decode() if isinstance(answer, bytes) else str(answer)
        if answer != "ok":
            raise ArchiveUnavailable(
                f"the position {entry.last_id} was not recorded ({answer}): another round may run; nothing trimmed"
            )
        return ArchiveState(
            last_id=entry.last_id,
            last_entry=entry.digest(),
            segment=entry.segment,
            at=entry.at,
            archived=state.archived + (entry.records if count else 0),
            base=state.base,
        )

    def _next_segment(self, state: ArchiveState, flush: bool, now: datetime) -> ManifestEntry | None:
        """Write the next segment due and its manifest entry; None when none is due."""
        ids: list[str] = []
        lines: list[str] = []
        low = f"({state.last_id}" if state.last_id else "-"
        while len(ids) < self.segment_records:
            entries = self.redis.xrange(self.stream_key, min=low, max="+", count=READ_BATCH)
            for raw_id, raw_fields in entries:
                entry_id = raw_id.decode()
                ids.append(entry_id)
                lines.append(record_line(entry_id, {k.decode(): v.decode() for k, v in raw_fields.items()}))
            if len(entries) < READ_BATCH or _windows_differ(ids, self.segment_seconds):
                break
            low = "(" + ids[-1]
        count = cut(ids, self.segment_records, self.segment_seconds, int(now.timestamp() * 1000), flush)
        if not count:
            return None
        data = segment_bytes(lines[:count])
        entry = ManifestEntry(
            segment=segment_path(ids[0]),
            sha256=sha256(data),
            records=count,
            first_id=ids[0],
            last_id=ids[count - 1],
            at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            prev=state.last_entry,
        )
        self._put(entry.segment, data)
        written = self.fs.cat_file(f"{self.root}/{entry.segment}")
        if sha256(written) != entry.sha256:
            raise ArchiveUnavailable(f"{entry.segment} did not read back as written")
        self._put(entry_path(entry.first_id), entry.line())
        return entry

    def _put(self, path: str, data: bytes) -> None:
        """Write a file whole. A local one is written to a temporary file, flushed to the disk, and
        renamed into place (the directory flushed too), so a crash leaves the old file or the new one;
        an object store's PUT is whole and durable once answered."""
        full = f"{self.root}/{path}"
        if self.fs.exists(full) and self.fs.cat_file(full) != data:
            raise ArchiveUnavailable(f"{self.url}: {path} exists with other bytes; not overwritten, nothing trimmed")
        if not isinstance(self.fs, LocalFileSystem):
            self.fs.pipe_file(full, data)
            return
        directory = os.path.dirname(full)
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".writing-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, full)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    # -- reading ------------------------------------------------------------------------------------

    def _entry_names(self) -> list[str]:
        """The manifest's entry files (paths under the root), in stream order."""
        base = f"{self.root}/{MANIFEST}"
        self.fs.invalidate_cache()  # a long-lived process (cron) must see what others wrote, not a listing it cached
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        names = [f"{MANIFEST}/{path.rsplit('/', 1)[-1]}" for path in found if path.endswith(".json")]
        return sorted(names, key=lambda name: id_parts(stem_id(name)))

    def segments(self) -> list[tuple[str, str]]:
        """(first id, segment path) of every segment the manifest lists, in stream order; raises
        ArchiveUnavailable when the archive cannot be listed."""
        try:
            return [(stem_id(name), segment_path(stem_id(name))) for name in self._entry_names()]
        except Exception as exc:
            raise ArchiveUnavailable(f"{self.url}: cannot list the manifest ({exc.__class__.__name__}: {exc})") from exc

    def read_segment(self, path: str) -> list[tuple[str, dict[str, str]]]:
        """A segment's records, (stream id, fields), in order."""
        try:
            data = self.fs.cat_file(f"{self.root}/{path}")
        except Exception as exc:
            raise ArchiveUnavailable(f"{self.url}: cannot read {path} ({exc.__class__.__name__}: {exc})") from exc
        return [read_record_line(line) for line in gzip.decompress(data).splitlines() if line]

    def records(
        self, low: str | None = None, high: str | None = None, reverse: bool = False
    ) -> Iterator[tuple[str, str, dict[str, str]]]:
        """(segment, stream id, fields) of the archived records with `low` < id < `high` (exclusive
        bounds; None: no bound), oldest first (newest first with `reverse`); only the segments that
        can hold such ids are read."""
        listed = self.segments()
        chosen = []
        for index, (first_id, path) in enumerate(listed):
            following = listed[index + 1][0] if index + 1 < len(listed) else None
            if high is not None and id_parts(first_id) >= id_parts(high):
                break
            if low is not None and following is not None and id_parts(following) <= id_parts(low):
                continue
            chosen.append(path)
        for path in reversed(chosen) if reverse else chosen:
            found = self.read_segment(path)
            for entry_id, fields in reversed(found) if reverse else found:
                if low is not None and id_parts(entry_id) <= id_parts(low):
                    continue
                if high is not None and id_parts(entry_id) >= id_parts(high):
                    continue
                yield path, entry_id, fields

    def find(self, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, str]]]:
        """The archived records of `ids`: id → (segment, fields); ids in no segment are left out."""
        wanted = sorted(set(ids), key=id_parts)
        listed = self.segments()
        found: dict[str, tuple[str, dict[str, str]]] = {}
        starts = [id_parts(first) for first, _ in listed]
        paths = {
            listed[max(0, _last_at_or_before(starts, id_parts(entry_id)))][1]
            for entry_id in wanted
            if starts and id_parts(entry_id) >= starts[0]
        }
        for path in sorted(paths):
            for entry_id, fields in self.read_segment(path):
                if entry_id in wanted:
                    found[entry_id] = (path, fields)
        return found

    # -- lag and verification -----------------------------------------------------------------------

    def lag(self, now: datetime | None = None) -> ArchiveLag:
        return archive_lag(self.redis, self.stream_key, now)

    def verify(self, since: datetime | None = None) -> Verification:
        """Check the manifest's chain, each segment's SHA-256 and record count against its entry, and
        that the manifest reaches the position Redis has recorded; from the segment holding `since`
        on (the chain from the entry before it). ArchiveUnavailable when it cannot be read."""
        try:
            names = self._entry_names()
            start = 0
            if since is not None:
                starts = [id_parts(stem_id(name)) for name in names]
                start = max(0, _last_at_or_before(starts, (int(since.timestamp() * 1000), 0)))
            chosen = names[max(0, start - 1) :]
            data = self.fs.cat([f"{self.root}/{name}" for name in chosen]) if chosen else {}
        except Exception as exc:
            raise ArchiveUnavailable(f"{self.url}: cannot read the manifest ({exc.__class__.__name__}: {exc})") from exc
        contents = [(name, data[f"{self.root}/{name}"]) for name in chosen]
        prev = GENESIS
        if start > 0:
            prev = sha256(contents[0][1])
            contents = contents[1:]
        report = Verification(problems=chain_problems(contents, prev), entries=len(contents))
        for _name, raw in contents:
            try:
                entry = ManifestEntry.read(raw)
            except ValueError:
                continue  # named by chain_problems
            report.problems.extend(self._segment_problems(entry, report))
        report.problems.extend(self._end_problems(contents))
        order = {name: index for index, name in enumerate(segment_path(stem_id(n)) for n, _ in contents)}
        report.problems.sort(key=lambda problem: order.get(problem.where, len(order)))
        return report

    def _segment_problems(self, entry: ManifestEntry, report: Verification) -> list[Problem]:
        try:
            data = self.fs.cat_file(f"{self.root}/{entry.segment}")
        except FileNotFoundError:
            return [Problem(entry.segment, "missing: the manifest lists it, the archive does not hold it")]
        if sha256(data) != entry.sha256:
            return [Problem(entry.segment, "its SHA-256 differs from the manifest's: the segment was changed")]
        try:
            lines = [line for line in gzip.decompress(data).splitlines() if line]
        except (OSError, EOFError) as exc:  # pragma: no cover - a hash that matches a corrupt file
            return [Problem(entry.segment, f"does not decompress: {exc}")]
        report.records += len(lines)
        if len(lines) != entry.records:
            return [Problem(entry.segment, f"holds {len(lines)} records, its entry says {entry.records}")]
        return []

    def _end_problems(self, contents: list[tuple[str, bytes]]) -> list[Problem]:
        """The manifest must reach the last record Redis says is archived: entries removed from the end
        leave no broken link, only this gap."""
        state = self.state()
        if state.last_id is None:
            return []
        last = None
        for _name, raw in reversed(contents):
            try:
                last = ManifestEntry.read(raw)
                break
            except ValueError:
                continue
        if last is None or id_parts(last.last_id) < id_parts(state.last_id):
            ends = f"ends at {last.last_id}" if last else "is empty"
            return [
                Problem(
                    state.segment or MANIFEST,
                    f"missing: the manifest {ends} but Redis has records archived up to {state.last_id}",
                )
            ]
        return []


def state_key(stream_key: str) -> str:
    """The archive's state in Redis, next to its stream."""
    return f"{stream_key}:archive"


def archive_lag(connection: redis.Redis, stream_key: str, now: datetime | None = None) -> ArchiveLag:
    """The archive's lag, from Redis alone (no call to the archive, so /readyz and /metrics need no
    storage backend): the age of the oldest record not archived yet, and how many wait."""
    state = ArchiveState.read(connection.hgetall(state_key(stream_key)))
    low = f"({state.last_id}" if state.last_id else "-"
    oldest = connection.xrange(stream_key, min=low, max="+", count=1)
    moment = (now or datetime.now(timezone.utc)).timestamp() * 1000
    seconds = max(0.0, (moment - id_parts(oldest[0][0].decode())[0]) / 1000) if oldest else 0.0
    waiting: int | None
    if not oldest:
        waiting = 0
    elif state.last_id is None:
        waiting = int(connection.xlen(stream_key))
    else:
        added = _appended(connection, stream_key)
        waiting = None if added is None or state.base is None else max(1, added[0] - state.base - state.archived)
    return ArchiveLag(round(seconds, 3), waiting, state.last_id, state.error)


def _appended(connection: redis.Redis, stream_key: str) -> tuple[int, int] | None:
    """(appends ever made to the stream, its length now), read at once; None before Redis 7.0."""
    try:
        with connection.pipeline(transaction=True) as pipe:
            pipe.xinfo_stream(stream_key)
            pipe.xlen(stream_key)
            info, length = pipe.execute()
    except redis.ResponseError:  # no stream yet
        return 0, 0
    added = info.get("entries-added", info.get(b"entries-added"))
    return None if added is None else (int(added), int(length))


def _last_at_or_before(starts: list[tuple[int, int]], point: tuple[int, int]) -> int:
    """The index of the last start at or before `point` (-1 when none is)."""
    return bisect.bisect_right(starts, point) - 1


def _windows_differ(ids: list[str], window_seconds: int) -> bool:
    """Whether the ids read so far reach past the first one's window (the segment is cut there)."""
    span = window_seconds * 1000
    return bool(ids) and id_parts(ids[-1])[0] // span != id_parts(ids[0])[0] // span
