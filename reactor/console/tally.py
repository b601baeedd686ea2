"""Counters folded from the audit stream (`AuditTally`), for /metrics, the dashboard's chart and the
digest: every record, whoever wrote it and in whatever transaction, is counted exactly once, and
nothing on the job path has to remember to count.

| key (next to the stream `{p}:audit`) | what it holds |
|---|---|
| `{p}:audit:stats` | hash: `decision|…`, `written_off|USD`, `undone|USD`, `…_minor|USD`, job latency |
| `{p}:audit:stats:cursor` | the id of the last record counted |
| `{p}:audit:daily` | hash: `YYYY-MM-DD|USD` → minor units written off that UTC day |
| `{p}:audit:daily_undone` | hash: `YYYY-MM-DD|USD` → minor units of that day's write-offs undone since |

An `undone` record (reactor/console/undo.py) counts its amount, the amount our write-off recorded,
against the day of that write-off (`written_off_at=` in its detail; the undo's own day when a record
does not say), so a day's write-offs less its undone amount is what still stands of them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import redis

log = logging.getLogger(__name__)

JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds from a job's start to its decision; the last bucket is the default job timeout and more."""

NOT_A_JOB_END = frozenset({"decided", "replayed", "purged"})
"""Audit outcomes that do not end a job attempt, so they are not timed."""

WRITTEN_OFF_AT = "written_off_at"
"""The `detail` item of an `undone` record that says when the write-off it reversed was recorded."""
_WRITTEN_OFF_DAY = re.compile(rf"(?:^|\s){WRITTEN_OFF_AT}=(\d{{4}}-\d{{2}}-\d{{2}})")


def stats_key(audit_key: str) -> str:
    """Hash of counters next to the audit stream: `decision|rule|action|outcome`, `written_off|USD` ..."""
    return f"{audit_key}:stats"


def daily_key(audit_key: str) -> str:
    """Hash `YYYY-MM-DD|CUR` → minor units written off that day (UTC), for the dashboard chart."""
    return f"{audit_key}:daily"


def daily_undone_key(audit_key: str) -> str:
    """Hash `YYYY-MM-DD|CUR` → minor units of that day's write-offs (UTC) that were undone since."""
    return f"{audit_key}:daily_undone"


def undone_day(record: dict[str, str]) -> str:
    """The UTC day an `undone` record's amount counts against: its write-off's, else its own."""
    found = _WRITTEN_OFF_DAY.search(record.get("detail", ""))
    return found.group(1) if found else record.get("at", "")[:10]


class AuditTally:
    """Counters folded from the audit stream.

    A cursor (`{audit}:stats:cursor`, the last stream id counted) moves forward under a short Redis
    lock, so concurrent folds never count a record twice; each fold counts what was appended
    since the last one, at most `max_records`. Job latency is the time from the RQ job's (latest)
    start to the record that ended it, while RQ still keeps the job (its result TTL)."""

    def __init__(self, connection: redis.Redis, audit_key: str, batch: int = 2000, max_records: int = 50_000):
        self.redis = connection
        self.audit_key = audit_key
        self.batch = batch
        self.max_records = max_records

    def fold(self) -> int:
        """Count new records; returns how many. Another process folding already: count nothing now."""
        lock = self.redis.lock(f"{self.audit_key}:stats:lock", timeout=30, blocking_timeout=2)
        if not lock.acquire():
            return 0
        try:
            done = 0
            while done < self.max_records:
                cursor = (self.redis.get(f"{self.audit_key}:stats:cursor") or b"0-0").decode()
                entries = self.redis.xrange(self.audit_key, min=f"({cursor}", max="+", count=self.batch)
                if not entries:
                    break
                self._count(entries)
                done += len(entries)
            return done
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("audit tally: the lock expired while folding")

    def _count(self, entries: list[Any]) -> None:
        records = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
        started = self._job_starts(records)
        stats = stats_key(self.audit_key)
        pipe = self.redis.pipeline(transaction=True)
        for record in records:
            outcome = record.get("outcome") or "unknown"
            pipe.hincrby(stats, f"decision|{record.get('rule', '')}|{record.get('action', '')}|{outcome}", 1)
            amount, currency = record.get("amount_due", ""), record.get("currency", "")
            if outcome in ("written_off", "undone") and currency and amount.lstrip("-").isdigit():
                self._count_money(pipe, record, outcome, int(amount), currency)
            seconds = _job_seconds(record, started)
            if outcome not in NOT_A_JOB_END and seconds is not None:
                pipe.hincrby(stats, f"job_seconds_bucket|{next((b for b in JOB_BUCKETS if seconds <= b), '+Inf')}", 1)
                pipe.hincrbyfloat(stats, "job_seconds_sum", seconds)
                pipe.hincrby(stats, "job_seconds_count", 1)
        pipe.set(f"{self.audit_key}:stats:cursor", entries[-1][0])
        pipe.execute()

    def _count_money(
        self, pipe: redis.client.Pipeline, record: dict[str, str], outcome: str, amount: int, currency: str
    ) -> None:
        """A write-off counts on its own day; an undo against the day of the write-off it reversed."""
        stats = stats_key(self.audit_key)
        pipe.hincrby(stats, f"{outcome}|{currency}", 1)
        pipe.hincrby(stats, f"{outcome}_minor|{currency}", amount)
        if outcome == "written_off":
            pipe.hincrby(daily_key(self.audit_key), f"{record.get('at', '')[:10]}|{currency}", amount)
        else:
            pipe.hincrby(daily_undone_key(self.audit_key), f"{undone_day(record)}|{currency}", amount)

    def _job_starts(self, records: list[dict[str, str]]) -> dict[str, str]:
        """RQ's start of the jobs whose records carry no job_seconds (written by earlier releases),
        while RQ still keeps them."""
        job_ids = sorted({r["job_id"] for r in records if r.get("job_id") and not r.get("job_seconds")})
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(f"rq:job:{job_id}", "started_at")
        return {job_id: value.decode() for job_id, value in zip(job_ids, pipe.execute(), strict=True) if value}


@dataclass
class DailyWriteOffs:
    """Minor units per currency per UTC day: written off, and of those write-offs undone since."""

    written_off: dict[str, dict[date, int]] = field(default_factory=dict)
    undone: dict[str, dict[date, int]] = field(default_factory=dict)

    def currencies(self) -> list[str]:
        return sorted(set(self.written_off) | set(self.undone))

    def net(self, currency: str) -> dict[date, int]:
        """Day → what still stands of that day's write-offs (written off less undone)."""
        written, undone = self.written_off.get(currency, {}), self.undone.get(currency, {})
        return {day: written.get(day, 0) - undone.get(day, 0) for day in sorted(set(written) | set(undone))}

    def totals(self, currency: str) -> tuple[int, int, int]:
        """(written off, undone, net) over the days read, in minor units."""
        written = sum(self.written_off.get(currency, {}).values())
        undone = sum(self.undone.get(currency, {}).values())
        return written, undone, written - undone


def daily_write_offs(connection: redis.Redis, audit_key: str, first: date, last: date) -> DailyWriteOffs:
    """Fold what is new, then the days from `first` to `last`."""
    AuditTally(connection, audit_key).fold()
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(daily_key(audit_key))
        pipe.hgetall(daily_undone_key(audit_key))
        written, undone = pipe.execute()
    return DailyWriteOffs(_days(written, first, last), _days(undone, first, last))


def _days(fields: dict[bytes, bytes], first: date, last: date) -> dict[str, dict[date, int]]:
    """currency → UTC day → minor units, from a `YYYY-MM-DD|CUR` hash, for the days first to last."""
    per_currency: dict[str, dict[date, int]] = {}
    for name, value in fields.items():
        day_text, _, currency = name.decode().partition("|")
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            continue
        if first <= day <= last and currency:
            per_currency.setdefault(currency, {})[day] = int(value)
    return per_currency


def _job_seconds(record: dict[str, str], started: dict[str, str]) -> float | None:
    """The record's own job_seconds, else (a record of an earlier release) RQ's start to its `at`."""
    if record.get("job_seconds"):
        try:
            seconds = float(record["job_seconds"])
        except ValueError:
            return None
        return seconds if seconds >= 0 else None
    return seconds_between(started.get(record.get("job_id", "")), record.get("at"))


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from an RQ timestamp to an audit `at`; None when unknown or negative (a later retry)."""
    if not start or not end:
        return None
    try:
        begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
        finish = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    begin = begin if begin.tzinfo else begin.replace(tzinfo=timezone.utc)
    finish = finish if finish.tzinfo else finish.replace(tzinfo=timezone.utc)
    seconds = (finish - begin).total_seconds()
    return seconds if seconds >= 0 else None
