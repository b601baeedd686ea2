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
   web process can answer, and a restarted process loses nothing. Each of these families has a
   sample per Chargebee site, labelled `site` (the home site's name, `default` without
   CHARGEBEE_SITE, in a single-site deployment); rules reloads and Redis are the deployment's.

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
        """Every site's families, each sample labelled with its site; then the deployment's own."""
        sites = [self.settings.for_site(name) for name in self.settings.site_names]
        audit = AuditFamilies()
        latency = HistogramMetricFamily(
            "reactor_job_seconds", "Seconds from a job's start to its recorded decision", labels=["site"]
        )
        queues = QueueFamilies()
        lags = []
        for site in sites:
            audit_key = Keys(site.key_prefix).audit()
            AuditTally(self.redis, audit_key).fold()
            stats = {k.decode(): v.decode() for k, v in self.redis.hgetall(stats_key(audit_key)).items()}
            audit.add(site.site_name, stats)
            _job_latency(latency, site.site_name, stats)
            queues.add(self.redis, site)
            lags.append((site.site_name, archive_lag(self.redis, audit_key)))
        yield from audit.families()
        yield latency
        yield from queues.families()
        yield from self._approvals(sites)
        yield _reloads(RulesReloadReporter(self.redis, self.settings.deployment_key_prefix).counts())
        yield from _archive_families(lags)

    def _approvals(self, sites: list[Settings]) -> Iterator[Any]:
        """What waits for approvers (rules.yaml `approvals:`), and how long the oldest has waited, per site."""
        now = datetime.now(timezone.utc)
        count = GaugeMetricFamily(
            "reactor_approvals_waiting", "Write-offs waiting for approvers (reactor approvals list)", labels=["site"]
        )
        oldest = GaugeMetricFamily(
            "reactor_approval_oldest_seconds",
            "Seconds the oldest write-off waiting for approvers has waited",
            labels=["site"],
        )
        for site in sites:
            items = waiting(self.redis, site.key_prefix)
            count.add_metric([site.site_name], len(items))
            oldest.add_metric([site.site_name], max((item.waited(now) or 0.0 for item in items), default=0.0))
        yield count
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


class QueueFamilies:
    """RQ's queue and registries, the inbox, the write-offs held for a person and Chargebee's 429s,
    a sample per site (`site` label)."""

    def __init__(self) -> None:
        self.depth = GaugeMetricFamily("reactor_queue_jobs", "RQ jobs by state", labels=["site", "state"])
        self.waiting = GaugeMetricFamily(
            "reactor_inbox_events",
            "Accepted events waiting for triage, or claimed by a triage job",
            labels=["site", "state"],
        )
        self.dead = GaugeMetricFamily(
            "reactor_dead_letters", "Jobs in RQ's FailedJobRegistry (reactor dlq list)", labels=["site"]
        )
        self.held = GaugeMetricFamily(
            "reactor_held_write_offs", "Write-offs held for approval (reactor:held)", labels=["site"]
        )
        self.oldest = GaugeMetricFamily(
            "reactor_queue_oldest_seconds", "Seconds the oldest queued job has waited", labels=["site"]
        )
        self.throttled = CounterMetricFamily(
            "reactor_chargebee_429s", "Chargebee's 429 answers, each pausing every worker", labels=["site"]
        )

    def add(self, connection: redis.Redis, settings: Settings) -> None:
        site, keys = settings.site_name, Keys(settings.key_prefix)
        queue = Queue(settings.queue_name, connection=connection)
        self.depth.add_metric([site, "queued"], queue.count)
        self.depth.add_metric([site, "started"], queue.started_job_registry.count)
        self.depth.add_metric([site, "scheduled"], queue.scheduled_job_registry.count)
        self.depth.add_metric([site, "deferred"], queue.deferred_job_registry.count)
        inbox = Inbox(connection, keys).depth()
        self.waiting.add_metric([site, "waiting"], inbox.waiting)
        self.waiting.add_metric([site, "claimed"], inbox.claimed)
        self.dead.add_metric([site], queue.failed_job_registry.count)
        self.held.add_metric([site], count_held(connection, settings.key_prefix))
        self.oldest.add_metric([site], _oldest_wait(queue, datetime.now(timezone.utc)))
        self.throttled.add_metric([site], int(connection.get(keys.chargebee_429s()) or 0))

    def families(self) -> Iterator[Any]:
        yield from (self.depth, self.waiting, self.dead, self.held, self.oldest, self.throttled)


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


MONEY_KINDS = ("written_off", "written_off_minor", "undone", "undone_minor")
"""The money counters `AuditTally` folds, per currency."""


class AuditFamilies:
    """Decisions, write-offs and undone write-offs (count and amount) from the counters `AuditTally`
    folded, a sample set per site. The undone counters are their own series: a counter never goes
    down, so what still stands is `reactor_write_off_amount_total - reactor_write_off_undone_amount_total`."""

    def __init__(self) -> None:
        self.decisions = CounterMetricFamily(
            "reactor_decisions",
            "Audit records by rule, action and outcome",
            labels=["site", "rule", "action", "outcome"],
        )
        self.count = CounterMetricFamily(
            "reactor_write_offs", "Invoices written off, by currency", labels=["site", "currency"]
        )
        self.amount = CounterMetricFamily(
            "reactor_write_off_amount", "Amount written off in major units, by currency", labels=["site", "currency"]
        )
        self.undone_count = CounterMetricFamily(
            "reactor_write_offs_undone",
            "Write-offs of ours undone by a person (reactor undo), by currency",
            labels=["site", "currency"],
        )
        self.undone_amount = CounterMetricFamily(
            "reactor_write_off_undone_amount",
            "Amount of our write-offs undone by a person, in major units, by currency",
            labels=["site", "currency"],
        )

    def add(self, site: str, stats: dict[str, str]) -> None:
        money: dict[str, dict[str, int]] = {
            "written_off": {},
            "written_off_minor": {},
            "undone": {},
            "undone_minor": {},
        }
        for field, value in stats.items():
            kind, _, rest = field.partition("|")
            if kind == "decision":
                rule, action, outcome = [*rest.split("|"), "", ""][:3]
                self.decisions.add_metric([site, rule, action, outcome], int(value))
            elif kind in money:
                money[kind][rest] = int(value)
        # every currency written off has its undone series, 0 until an undo, so that the difference exists
        for currency in sorted(set(money["written_off"]) | set(money["undone"])):
            labels = [site, currency]
            self.count.add_metric(labels, money["written_off"].get(currency, 0))
            self.amount.add_metric(labels, float(to_major(money["written_off_minor"].get(currency, 0), currency)))
            self.undone_count.add_metric(labels, money["undone"].get(currency, 0))
            self.undone_amount.add_metric(labels, float(to_major(money["undone_minor"].get(currency, 0), currency)))

    def families(self) -> Iterator[Any]:
        yield from (self.decisions, self.count, self.amount, self.undone_count, self.undone_amount)


def _job_latency(latency: HistogramMetricFamily, site: str, stats: dict[str, str]) -> None:
    """One site's job latency histogram, cumulative as Prometheus wants it, from the folded buckets."""
    buckets = {f.partition("|")[2]: int(v) for f, v in stats.items() if f.startswith("job_seconds_bucket|")}
    cumulative, running = [], 0
    for bound in (*JOB_BUCKETS, "+Inf"):
        running += buckets.get(str(bound), 0)
        cumulative.append((str(bound) if bound == "+Inf" else repr(float(bound)), running))
    latency.add_metric([site], cumulative, sum_value=float(stats.get("job_seconds_sum", 0)))


def _archive_families(lags: list[tuple[str, ArchiveLag]]) -> Iterator[GaugeMetricFamily]:
    """Each site's audit archive lag (reactor/jobs/audit/archive.py): records leave Redis only once archived."""
    age = GaugeMetricFamily(
        "reactor_audit_archive_lag_seconds",
        "Age of the oldest audit record not yet archived (0: none waits)",
        labels=["site"],
    )
    waiting = GaugeMetricFamily("reactor_audit_archive_waiting", "Audit records not yet archived", labels=["site"])
    failing = GaugeMetricFamily(
        "reactor_audit_archive_failing",
        "1 while the last archive round failed (nothing is trimmed meanwhile)",
        labels=["site"],
    )
    for site, lag in lags:
        age.add_metric([site], lag.seconds)
        if lag.waiting is not None:  # Redis before 7.0 does not count a stream's appends
            waiting.add_metric([site], lag.waiting)
        failing.add_metric([site], 1 if lag.error else 0)
    yield age
    if waiting.samples:
        yield waiting
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
