"""The archive's pure parts (reactor/jobs/audit/manifest.py): segment names, where segments are cut,
manifest entries and the checks of their hash chain."""

from __future__ import annotations

import gzip

from reactor.jobs.audit.manifest import (
    GENESIS,
    ManifestEntry,
    chain_problems,
    cut,
    entry_path,
    next_id,
    read_record_line,
    record_line,
    segment_bytes,
    segment_path,
    sha256,
    stem,
    stem_id,
)

HOUR_MS = 3_600_000


def test_names_list_in_stream_order_and_give_back_their_id() -> None:
    ids = ["999-5", "1000-0", "1000-12", "1796652609898-0", "1796652609898-100000"]
    names = [stem(i) for i in ids]
    assert names == sorted(names)
    assert [stem_id(segment_path(i)) for i in ids] == ids
    assert [stem_id(entry_path(i)) for i in ids] == ids
    assert segment_path("1796652609898-3") == "segments/1796652609898-000003.jsonl.gz"
    assert next_id("1796652609898-3") == "1796652609898-4"


def test_a_segment_is_written_full_or_once_its_window_is_over() -> None:
    hour = 500_000 * HOUR_MS
    same_hour = [f"{hour + n}-0" for n in range(10)]
    # full: cut at the limit
    assert cut(same_hour, 4, 3600, hour + 10, flush=False) == 4
    # not full, the window still open: wait; unless flushed, or the clock has passed the window
    assert cut(same_hour, 100, 3600, hour + 10, flush=False) == 0
    assert cut(same_hour, 100, 3600, hour + 10, flush=True) == 10
    assert cut(same_hour, 100, 3600, hour + HOUR_MS, flush=False) == 10
    # a record of the next window ends the segment before it
    spanning = [*same_hour[:3], f"{hour + HOUR_MS}-0"]
    assert cut(spanning, 100, 3600, hour + 10, flush=False) == 3
    assert cut([], 100, 3600, hour, flush=True) == 0


def test_records_and_segments_read_back_and_hash_the_same_whenever_written() -> None:
    fields = {"at": "2026-12-07T10:00:00.000+00:00", "reason": "ünïcode\n\x1b[31m", "amount_due": ""}
    line = record_line("1-2", fields)
    assert line.isascii() and line.endswith("\n") and line.count("\n") == 1
    assert read_record_line(line.encode()) == ("1-2", fields)
    data = segment_bytes([line, line])
    assert sha256(data) == sha256(segment_bytes([line, line]))  # mtime 0: the same bytes
    assert gzip.decompress(data).decode() == line * 2


def entries(count: int) -> list[tuple[str, bytes]]:
    """A chain of `count` well-formed entries, as (file name, bytes)."""
    chain, prev = [], GENESIS
    for n in range(count):
        first, last = f"{1000 * (n + 1)}-0", f"{1000 * (n + 1) + 999}-0"
        entry = ManifestEntry(segment_path(first), "ab" * 32, 10, first, last, "2026-12-07T10:00:00+00:00", prev)
        chain.append((entry_path(first), entry.line()))
        prev = entry.digest()
    return chain


def test_an_intact_chain_has_no_problem_and_reads_back() -> None:
    chain = entries(4)
    assert chain_problems(chain) == []
    entry = ManifestEntry.read(chain[2][1])
    assert entry.prev == sha256(chain[1][1]) and entry.line() == chain[2][1]
    # from the middle, with the hash of the entry before
    assert chain_problems(chain[2:], prev=sha256(chain[1][1])) == []


def test_an_entry_edited_removed_or_unreadable_breaks_the_chain_at_the_next() -> None:
    chain = entries(4)
    edited = list(chain)
    edited[1] = (chain[1][0], chain[1][1].replace(b'"records": 10', b'"records": 11'))
    problems = chain_problems(edited)
    assert [p.where for p in problems] == [segment_path("3000-0")]
    assert "chain is broken" in problems[0].what

    removed = [chain[0], chain[2], chain[3]]
    assert [p.where for p in chain_problems(removed)] == [segment_path("3000-0")]

    garbage = [chain[0], (chain[1][0], b"not json"), chain[2]]
    assert [p.where for p in chain_problems(garbage)] == [entry_path("2000-0"), segment_path("3000-0")]


def test_an_entry_under_another_name_or_overlapping_the_one_before_is_named() -> None:
    chain = entries(2)
    renamed = [chain[0], (entry_path("2500-0"), chain[1][1])]
    assert "does not name its own segment" in chain_problems(renamed)[0].what
    first = ManifestEntry.read(chain[0][1])
    overlapping = ManifestEntry(segment_path("1500-0"), "cd" * 32, 3, "1500-0", "1600-0", first.at, first.digest())
    problems = chain_problems([chain[0], (entry_path("1500-0"), overlapping.line())])
    assert [p.what for p in problems] == ["records overlap the segment before (which ends at 1999-0)"]
