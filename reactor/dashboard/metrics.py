"""Prometheus metrics, from two sources.

1. Web-process metrics (webhook deliveries, webhook latency) are prometheus-client objects. Under
   gunicorn, PROMETHEUS_MULTIPROC_DIR (set by reactor.gunicorn_conf; `Settings.metrics_dir`) makes
   every gunicorn worker write its samples there, and /metrics adds them up.
2. Facts that happen elsewhere (decisions, write-offs and job latency in RQ workers, which may run
   on other hosts and serve no HTTP; queue depth, dead letters, held write-offs, rules reloads) are
   read from Redis at scrape time by `RedisCollector` (rules reloads as reactor/reloads.py records
   them). Decisions, write-offs and their undos are folded from the audit stream into counters
   (`AuditTally`, reactor/console/tally.py): every record, whoever wrote it and in whatever
   transaction, is counted exactly once, and nothing on the job path has to remember to count. Any
   web process can answer, and a restarted process loses nothing.

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
from ..console.approvals import waiting
from ..console.tally import JOB_BUCKETS, AuditTally, seconds_between, stats_key
from ..ingest.inbox import Inbox
from ..jobs.audit.archive import ArchiveLag, archive_lag
from ..jobs.held import count_held
from ..keys import Keys
from ..reloads import RulesReloadReporter
from ..rules.live import LiveRules
from ..rules.money import to_major

log = logging.getLogger(__name__)


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
        yield from _archive_families(archive_lag(self.redis, audit_key))

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
        yield from self._approvals()
        oldest = GaugeMetricFamily("reactor_queue_oldest_seconds", "Seconds the oldest queued job has waited")
        oldest.add_metric([], _oldest_wait(queue, datetime.now(timezone.utc)))
        yield oldest
        keys = Keys(self.settings.key_prefix)
        throttled = CounterMetricFamily("reactor_chargebee_429s", "Chargebee's 429 answers, each pausing every worker")
        throttled.add_metric([], int(self.redis.get(keys.chargebee_429s()) or 0))
        yield throttled

    def _approvals(self) -> Iterator[Any]:
        """What waits for approvers (rules.yaml `approvals:`), and how long the oldest has waited."""
        items = waiting(self.redis, self.settings.key_prefix)
        now = datetime.now(timezone.utc)
        count = GaugeMetricFamily(
            "reactor_approvals_waiting", "Write-offs waiting for approvers (reactor approvals list)"
        )
        count.add_metric([], len(items))
        yield count
        oldest = GaugeMetricFamily(
            "reactor_approval_oldest_seconds", "Seconds the oldest write-off waiting for approvers has waited"
        )
        oldest.add_metric([], max((item.waited(now) or 0.0 for item in items), default=0.0))
        yield oldest

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
    waits = [seconds_between(stamp.decode() if stamp else None, now.isoformat()) for stamp in stamps]
    known = [seconds for seconds in waits if seconds is not None]
    return round(max(known), 3) if known else 0.0


def _audit_families(stats: dict[str, str]) -> Iterator[Any]:
    """Decisions, write-offs and undone write-offs (count and amount) from the counters `AuditTally`
    folded. The undone counters are their own series: a counter never goes down, so what still
    stands is `reactor_write_off_amount_total - reactor_write_off_undone_amount_total`."""
    decisions = CounterMetricFamily(
        "reactor_decisions", "Audit records by rule, action and outcome", labels=["rule", "action", "outcome"]
    )
    count = CounterMetricFamily("reactor_write_offs", "Invoices written off, by currency", labels=["currency"])
    amount = CounterMetricFamily(
        "reactor_write_off_amount", "Amount written off in major units, by currency", labels=["currency"]
    )
    undone_count = CounterMetricFamily(
        "reactor_write_offs_undone",
        "Write-offs of ours undone by a person (reactor undo), by currency",
        labels=["currency"],
    )
    undone_amount = CounterMetricFamily(
        "reactor_write_off_undone_amount",
        "Amount of our write-offs undone by a person, in major units, by currency",
        labels=["currency"],
    )
    money: dict[str, dict[str, int]] = {"written_off": {}, "written_off_minor": {}, "undone": {}, "undone_minor": {}}
    for field, value in stats.items():
        kind, _, rest = field.partition("|")
        if kind == "decision":
            rule, action, outcome = [*rest.split("|"), "", ""][:3]
            decisions.add_metric([rule, action, outcome], int(value))
        elif kind in money:
            money[kind][rest] = int(value)
    # every currency written off has its undone series, 0 until an undo, so that the difference exists
    for currency in sorted(set(money["written_off"]) | set(money["undone"])):
        count.add_metric([currency], money["written_off"].get(currency, 0))
        amount.add_metric([currency], float(to_major(money["written_off_minor"].get(currency, 0), currency)))
        undone_count.add_metric([currency], money["undone"].get(currency, 0))
        undone_amount.add_metric([currency], float(to_major(money["undone_minor"].get(currency, 0), currency)))
    yield from (decisions, count, amount, undone_count, undone_amount)


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


def _archive_families(lag: ArchiveLag) -> Iterator[GaugeMetricFamily]:
    """The audit archive's lag (reactor/jobs/audit/archive.py): records leave Redis only once archived."""
    age = GaugeMetricFamily(
        "reactor_audit_archive_lag_seconds", "Age of the oldest audit record not yet archived (0: none waits)"
    )
    age.add_metric([], lag.seconds)
    yield age
    if lag.waiting is not None:  # Redis before 7.0 does not count a stream's appends
        waiting = GaugeMetricFamily("reactor_audit_archive_waiting", "Audit records not yet archived")
        waiting.add_metric([], lag.waiting)
        yield waiting
    failing = GaugeMetricFamily(
        "reactor_audit_archive_failing", "1 while the last archive round failed (nothing is trimmed meanwhile)"
    )
    failing.add_metric([], 1 if lag.error else 0)
    yield failing


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
