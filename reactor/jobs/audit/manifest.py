"""The audit archive's pure parts: how a segment is named and cut, what a manifest entry holds, and
the checks of the hash chain the entries form (as CloudTrail's digest files, each naming the one
before). No I/O: reactor/jobs/audit/archive.py reads and writes what these describe.

A manifest entry is one JSON line, the file `manifest/<stem>.json`:

| field | what |
|---|---|
| `segment` | the segment's path under the archive's root, `segments/<stem>.jsonl.gz` |
| `sha256` | SHA-256 of the segment file's bytes (gzip, written with mtime 0) |
| `records`, `first_id`, `last_id` | how many records, the stream ids of the first and the last |
| `at` | when the entry was written (UTC) |
| `prev` | SHA-256 of the previous entry's file bytes; GENESIS for the first |
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

GENESIS = "0" * 64
"""The `prev` of the first manifest entry: no entry before it."""

SEGMENTS = "segments"
MANIFEST = "manifest"


def id_parts(stream_id: str) -> tuple[int, int]:
    """A stream id `ms-seq` as numbers, which order as the stream does."""
    millis, _, seq = stream_id.partition("-")
    return int(millis), int(seq or 0)


def next_id(stream_id: str) -> str:
    """The smallest stream id after `stream_id` (XTRIM MINID keeps it and every later one)."""
    millis, seq = id_parts(stream_id)
    return f"{millis}-{seq + 1}"


def stem(first_id: str) -> str:
    """A segment's and its entry's name, from the stream id of its first record: the milliseconds
    zero-padded to 13 digits and the sequence to 6, so names list in stream order, and a segment
    written again after a crash (the same records from the same first id) takes the same name."""
    millis, seq = id_parts(first_id)
    return f"{millis:013d}-{seq:06d}"


def stem_id(name: str) -> str:
    """The stream id a segment's or entry's file name starts with."""
    base = name.rsplit("/", 1)[-1].split(".", 1)[0]
    millis, _, seq = base.partition("-")
    return f"{int(millis)}-{int(seq)}"


def segment_path(first_id: str) -> str:
    return f"{SEGMENTS}/{stem(first_id)}.jsonl.gz"


def entry_path(first_id: str) -> str:
    return f"{MANIFEST}/{stem(first_id)}.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_line(entry_id: str, fields: dict[str, str]) -> str:
    """One record of a segment: its stream id and its fields exactly as the stream held them."""
    return json.dumps({"id": entry_id, **fields}, ensure_ascii=True) + "\n"


def read_record_line(line: bytes) -> tuple[str, dict[str, str]]:
    """A segment's line back as (stream id, fields)."""
    data = json.loads(line)
    entry_id = data.pop("id")
    return entry_id, {str(k): str(v) for k, v in data.items()}


def segment_bytes(lines: Iterable[str]) -> bytes:
    """The segment file: the lines gzip-compressed with mtime 0, so the same records give the same
    bytes (and the same SHA-256) whenever they are written."""
    return gzip.compress("".join(lines).encode(), compresslevel=6, mtime=0)


def cut(ids: Sequence[str], max_records: int, window_seconds: int, now_ms: int, flush: bool) -> int:
    """How many of `ids` (the oldest records not yet archived, in order) make the next segment, or 0
    to wait. A segment holds at most `max_records` records, all from one window of `window_seconds`
    (UTC, from the epoch: hourly by default). It is written once it is full, or once its window is
    over (a later record exists, or the clock has passed the window); `flush` writes a partial one."""
    if not ids:
        return 0
    window = id_parts(ids[0])[0] // (window_seconds * 1000)
    count = 0
    for entry_id in ids[:max_records]:
        if id_parts(entry_id)[0] // (window_seconds * 1000) != window:
            return count  # the window is over: a later record exists
        count += 1
    if count >= max_records or flush or now_ms // (window_seconds * 1000) != window:
        return count
    return 0


@dataclass(frozen=True)
class ManifestEntry:
    segment: str
    sha256: str
    records: int
    first_id: str
    last_id: str
    at: str
    prev: str

    def line(self) -> bytes:
        """The entry's file: one JSON line, keys sorted, so its hash is reproducible."""
        return (json.dumps(asdict(self), sort_keys=True, ensure_ascii=True) + "\n").encode()

    def digest(self) -> str:
        """SHA-256 of the entry's file, which the next entry names as `prev`."""
        return sha256(self.line())

    @classmethod
    def read(cls, data: bytes) -> ManifestEntry:
        """An entry from its file's bytes; ValueError when it is not one."""
        try:
            fields: dict[str, Any] = json.loads(data)
            return cls(**{name: fields[name] for name in cls.__dataclass_fields__})
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a manifest entry: {exc}") from None


@dataclass(frozen=True)
class Problem:
    """What is wrong with the archive at one entry: `where` names the segment (or the entry's file)."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def chain_problems(entries: Sequence[tuple[str, bytes]], prev: str = GENESIS) -> list[Problem]:
    """The problems of the manifest's chain, in order: `entries` are (file name, bytes) in stream
    order, `prev` the hash the first one must name. An entry that does not read, one that names
    another `prev` than the hash of the file before it (an entry edited, removed or inserted), one
    whose records do not follow the entry before (ids overlap) or whose name is not its first id."""
    problems = []
    last_id: str | None = None
    for name, data in entries:
        try:
            entry = ManifestEntry.read(data)
        except ValueError as exc:
            problems.append(Problem(name, str(exc)))
            prev, last_id = sha256(data), None
            continue
        if entry.prev != prev:
            problems.append(
                Problem(entry.segment, "the manifest's chain is broken before this entry (an entry missing or edited)")
            )
        if stem_id(name) != entry.first_id or entry.segment != segment_path(entry.first_id):
            problems.append(Problem(entry.segment, f"entry {name} does not name its own segment"))
        if last_id is not None and id_parts(entry.first_id) <= id_parts(last_id):
            problems.append(Problem(entry.segment, f"records overlap the segment before (which ends at {last_id})"))
        prev, last_id = sha256(data), entry.last_id
    return problems
