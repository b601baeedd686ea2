"""Prometheus metrics, from two sources.

1. Web-process metrics (webhook deliveries, webhook latency) are prometheus-client objects. Under
   gunicorn, PROMETHEUS_MULTIPROC_DIR (set by reactor.gunicorn_conf; `Settings.metrics_dir`) makes
   every gunicorn worker write its samples there, and /metrics adds them up.
2. Facts that happen elsewhere (decisions, write-offs and job latency in RQ workers, which may run
   on other hosts and serve no HTTP; queue depth, dead letters, held write-offs, rules reloads) are
   read from Redis at scrape time by `RedisCollector` (rules reloads as reactor/reloads.py records
   them). Decisions and write-offs are folded from the audit stream into counters (`AuditTally`):
   every record, whoever wrote it and in whatever transaction, is counted exactly once, and nothing
   on the job path has to remember to count. Any web process can answer, and a restarted process
   loses nothing.

Every metric and log field is listed in docs/metrics.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import redis
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from rq import Queue
from rq.job import Job

from ..config import Settings
from ..ingest.inbox import Inbox
from ..jobs.held import count_held
from ..keys import Keys
from ..reloads import RulesReloadReporter
from ..rules.live import LiveRules
from ..rules.money import to_major

log = logging.getLogger(__name__)

JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds from a job's start to its decision; the last bucket is the default job timeout and more."""

NOT_A_JOB_END = frozenset({"decided", "replayed", "purged"})
"""Audit outcomes that do not end a job attempt, so they are not timed."""


def stats_key(audit_key: str) -> str:
    """Hash of counters next to the audit stream: `decision|rule|action|outcome`, `written_off|USD` ..."""
    return f"{audit_key}:stats"


def daily_key(audit_key: str) -> str:
    """Hash `YYYY-MM-DD|CUR` → minor units written off that day (UTC), for the dashboard chart."""
    return f"{audit_key}:daily"


class AuditTally:
    """Counters folded from the audit stream, for /metrics and the dashboard chart.

    A cursor (`{audit}:stats:cursor`, the last stream id counted) moves forward under a short Redis
    lock, so concurrent scrapes never count a record twice; each scrape folds what was appended
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
            if outcome == "written_off" and currency and amount.lstrip("-").isdigit():
                pipe.hincrby(stats, f"written_off|{currency}", 1)
                pipe.hincrby(stats, f"written_off_minor|{currency}", int(amount))
                pipe.hincrby(daily_key(self.audit_key), f"{record.get('at', '')[:10]}|{currency}", int(amount))
            seconds = _job_seconds(record, started)
            if outcome not in NOT_A_JOB_END and seconds is not None:
                pipe.hincrby(stats, f"job_seconds_bucket|{next((b for b in JOB_BUCKETS if seconds <= b), '+Inf')}", 1)
                pipe.hincrbyfloat(stats, "job_seconds_sum", seconds)
                pipe.hincrby(stats, "job_seconds_count", 1)
        pipe.set(f"{self.audit_key}:stats:cursor", entries[-1][0])
        pipe.execute()

    def _job_starts(self, records: list[dict[str, str]]) -> dict[str, str]:
        """RQ's start of the jobs whose records carry no job_seconds (written by earlier releases),
        while RQ still keeps them."""
        job_ids = sorted({r["job_id"] for r in records if r.get("job_id") and not r.get("job_seconds")})
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(f"rq:job:{job_id}", "started_at")
        return {job_id: value.decode() for job_id, value in zip(job_ids, pipe.execute(), strict=True) if value}


def _job_seconds(record: dict[str, str], started: dict[str, str]) -> float | None:
    """The record's own job_seconds, else (a record of an earlier release) RQ's start to its `at`."""
    if record.get("job_seconds"):
        try:
            seconds = float(record["job_seconds"])
        except ValueError:
            return None
        return seconds if seconds >= 0 else None
    return _seconds_between(started.get(record.get("job_id", "")), record.get("at"))


def _seconds_between(start: str | None, end: str | None) -> float | None:
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


class RedisCollector(Collector):
    """Reads the cross-process facts from Redis at scrape time (a handful of commands)."""

    def __init__(self, connection: redis.Redis, settings: Settings, live: LiveRules | None = None):
        self.redis = connection
        self.settings = settings
        self.live = live

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("reactor_redis_up", "1 when /metrics could read Redis")
        try:
            self.redis.ping()  # one quick failure instead of one per family when Redis is away
            families = list(self._from_redis())
        except redis.RedisError as exc:
            log.warning("metrics: Redis unavailable: %s", exc)
            families = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield up
        yield from families
        yield from self._rules()

    def _from_redis(self) -> Iterator[Any]:
        audit_key = Keys(self.settings.key_prefix).audit()
        AuditTally(self.redis, audit_key).fold()
        stats = {k.decode(): v.decode() for k, v in self.redis.hgetall(stats_key(audit_key)).items()}
        yield from _audit_families(stats)
        yield _job_latency(stats)
        yield from self._queue_families()
        yield _reloads(RulesReloadReporter(self.redis, self.settings.key_prefix).counts())

    def _queue_families(self) -> Iterator[Any]:
        """RQ's queue and registries, the inbox, and the write-offs held for a person."""
        queue = Queue(self.settings.queue_name, connection=self.redis)
        depth = GaugeMetricFamily("reactor_queue_jobs", "RQ jobs by state", labels=["state"])
        depth.add_metric(["queued"], queue.count)
        depth.add_metric(["started"], queue.started_job_registry.count)
        depth.add_metric(["scheduled"], queue.scheduled_job_registry.count)
        depth.add_metric(["deferred"], queue.deferred_job_registry.count)
        yield depth
        inbox = Inbox(self.redis, Keys(self.settings.key_prefix)).depth()
        waiting = GaugeMetricFamily(
            "reactor_inbox_events", "Accepted events waiting for triage, or claimed by a triage job", labels=["state"]
        )
        waiting.add_metric(["waiting"], inbox.waiting)
        waiting.add_metric(["claimed"], inbox.claimed)
        yield waiting
        dead = GaugeMetricFamily("reactor_dead_letters", "Jobs in RQ's FailedJobRegistry (reactor dlq list)")
        dead.add_metric([], queue.failed_job_registry.count)
        yield dead
        held_count = GaugeMetricFamily("reactor_held_write_offs", "Write-offs held for approval (reactor:held)")
        held_count.add_metric([], count_held(self.redis, self.settings.key_prefix))
        yield held_count
        oldest = GaugeMetricFamily("reactor_queue_oldest_seconds", "Seconds the oldest queued job has waited")
        oldest.add_metric([], _oldest_wait(queue, datetime.now(timezone.utc)))
        yield oldest
        keys = Keys(self.settings.key_prefix)
        throttled = CounterMetricFamily("reactor_chargebee_429s", "Chargebee's 429 answers, each pausing every worker")
        throttled.add_metric([], int(self.redis.get(keys.chargebee_429s()) or 0))
        yield throttled

    def _rules(self) -> Iterator[Any]:
        if self.live is None:
            return
        status = self.live.status()
        info = GaugeMetricFamily(
            "reactor_rules_info", "The rules in force in this web process (value 1)", labels=["version", "mode"]
        )
        if status["version"]:
            info.add_metric([str(status["version"]), str(status["mode"])], 1)
        yield info
        refused = GaugeMetricFamily(
            "reactor_rules_refused", "1 while the rules file on disk is refused and older rules stay in force"
        )
        refused.add_metric([], 1 if status["errors"] else 0)
        yield refused


HEAD_JOBS = 100
"""Jobs read from the head of the queue for its oldest wait."""


def _oldest_wait(queue: Queue, now: datetime) -> float:
    """Seconds the longest-waiting of the first HEAD_JOBS queued jobs has waited; 0 for an empty queue.
    Not only the head's: triage jobs are pushed in front, so with the workers down the head is the
    newest triage job a webhook woke, and the older ones (and the evaluation jobs) wait behind it."""
    ids = queue.connection.lrange(queue.key, 0, HEAD_JOBS - 1)
    if not ids:
        return 0.0
    with queue.connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(f"{Job.redis_job_namespace_prefix}{job_id.decode()}", "enqueued_at")
        stamps = pipe.execute()
    waits = [_seconds_between(stamp.decode() if stamp else None, now.isoformat()) for stamp in stamps]
    known = [seconds for seconds in waits if seconds is not None]
    return round(max(known), 3) if known else 0.0


def _audit_families(stats: dict[str, str]) -> Iterator[Any]:
    """Decisions and write-offs (count and amount) from the counters `AuditTally` folded."""
    decisions = CounterMetricFamily(
        "reactor_decisions", "Audit records by rule, action and outcome", labels=["rule", "action", "outcome"]
    )
    count = CounterMetricFamily("reactor_write_offs", "Invoices written off, by currency", labels=["currency"])
    amount = CounterMetricFamily(
        "reactor_write_off_amount", "Amount written off in major units, by currency", labels=["currency"]
    )
    for field, value in stats.items():
        kind, _, rest = field.partition("|")
        if kind == "decision":
            rule, action, outcome = [*rest.split("|"), "", ""][:3]
            decisions.add_metric([rule, action, outcome], int(value))
        elif kind == "written_off":
            count.add_metric([rest], int(value))
        elif kind == "written_off_minor":
            amount.add_metric([rest], float(to_major(int(value), rest)))
    yield from (decisions, count, amount)


def _job_latency(stats: dict[str, str]) -> HistogramMetricFamily:
    """The job latency histogram, cumulative as Prometheus wants it, from the folded buckets."""
    buckets = {f.partition("|")[2]: int(v) for f, v in stats.items() if f.startswith("job_seconds_bucket|")}
    cumulative, running = [], 0
    for bound in (*JOB_BUCKETS, "+Inf"):
        running += buckets.get(str(bound), 0)
        cumulative.append((str(bound) if bound == "+Inf" else repr(float(bound)), running))
    latency = HistogramMetricFamily("reactor_job_seconds", "Seconds from a job's start to its recorded decision")
    latency.add_metric([], cumulative, sum_value=float(stats.get("job_seconds_sum", 0)))
    return latency


def _reloads(counts: dict[str, int]) -> CounterMetricFamily:
    """Distinct rules edits by outcome, as reactor/reloads.py counted them."""
    reload_counter = CounterMetricFamily(
        "reactor_rules_reloads", "Distinct rules.yaml edits seen by any process", labels=["outcome"]
    )
    for outcome in ("accepted", "refused"):
        reload_counter.add_metric([outcome], counts.get(outcome, 0))
    return reload_counter


def render(collector: Collector | None = None, multiprocess_dir: str | None = None) -> bytes:
    """The /metrics body: this host's prometheus-client samples (those every gunicorn worker wrote
    to `multiprocess_dir`, `Settings.metrics_dir`, when set), then the Redis-backed families."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
        body = generate_latest(registry)
    else:
        body = generate_latest(DEFAULT_REGISTRY)
    if collector is not None:
        extra = CollectorRegistry(auto_describe=False)
        extra.register(collector)
        body += generate_latest(extra)
    return body
