"""What a job needs (`JobContext`), built once per worker process and passed in (tests build their own),
and the ones a worker process installs for RQ's entry points: one per Chargebee site it serves, each
with that site's settings, keys, queue, Chargebee client and rate limit. A job runs with the context
of the site whose queue it came from (its RQ `origin`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import redis
from rq import Queue, get_current_job

from ..chargebee import ChargebeeClient, ChargebeeError
from ..chargebee.ratelimit import ChargebeeRateLimit, Waiting
from ..config import Settings, load_settings
from ..ingest.events import EventStore
from ..keys import Keys
from ..notices import Notices
from ..redaction import remember
from ..redis_connect import connect
from ..reloads import RulesReloadReporter
from ..rules import load_rules
from ..rules.live import LiveRules
from .audit import AuditLog
from .trace.calls import record_calls
from .trace.store import TraceLog


@dataclass
class JobContext:
    """What a job needs, built once per worker process and passed in (tests build their own)."""

    settings: Settings
    redis: redis.Redis
    queue: Queue
    events: EventStore
    audit: AuditLog
    chargebee: ChargebeeClient
    rules: LiveRules
    keys: Keys = field(default_factory=Keys)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    rate_limit: ChargebeeRateLimit | None = None  # its Chargebee client's, for the worker's look before a job

    @property
    def notices(self) -> Notices:
        """Where a job leaves what a person must act on, for the digest (off without REACTOR_NOTIFY_URL)."""
        return Notices(self.redis, self.keys.prefix, enabled=bool(self.settings.notify_url))


def build_context(settings: Settings, connection: redis.Redis, *, records: bool = True) -> JobContext:
    """The context of a worker or a command. `records=False` is for a dry run or a preview, which must
    leave nothing behind: its Chargebee calls go to no trace and a refused rules file is not reported
    (the web and the workers report it); the shared rate limit still counts its calls."""
    remember(settings.secrets)  # this process's logs, audit records and dead letters never show them
    keys = Keys(settings.key_prefix)
    queue = Queue(settings.queue_name, connection=connection)
    if not settings.api_base:
        raise ChargebeeError("no Chargebee API configured: set CHARGEBEE_SITE or CHARGEBEE_API_BASE")
    # Refused rules edits seen by workers reach /metrics and the dashboard through Redis.
    # One rules file for every site: its reloads are the deployment's, under its own prefix.
    notices = Notices(connection, settings.deployment_key_prefix, enabled=bool(settings.notify_url))
    reporter = RulesReloadReporter(connection, settings.deployment_key_prefix, notices) if records else None
    # Each site decides with its view of the one rules file (`sites:`); a file naming a site this
    # deployment does not serve is refused like any broken file.
    loader = functools.partial(load_rules, sites=settings.site_names)
    rules = LiveRules(settings.rules_path, loader=loader, reporter=reporter, site=settings.site_name or None)
    rate_limit = build_rate_limit(settings, connection)
    client = ChargebeeClient(
        settings.api_base, settings.chargebee_api_key, timeout=settings.http_timeout, rate_limit=rate_limit
    )
    return JobContext(
        settings=settings,
        redis=connection,
        queue=queue,
        events=EventStore.from_settings(connection, queue, settings),
        # Records written without a decision (retrying, failed, ...) still name the rules in force.
        audit=AuditLog(connection, keys.audit(), rules_version=lambda: rules.current().version),
        # Every call lands in its invoice's trace (reactor/jobs/trace/calls.py), for `reactor trace`.
        chargebee=record_calls(client, TraceLog(connection, keys)) if records else client,
        rules=rules,
        keys=keys,
        rate_limit=rate_limit,
    )


def build_rate_limit(settings: Settings, connection: redis.Redis) -> ChargebeeRateLimit:
    """The call budget shared by every process using this Redis for this Chargebee site."""
    return ChargebeeRateLimit(
        connection,
        settings.chargebee_rate_limit,
        settings.rate_limit_window,
        scope=settings.chargebee_site or settings.api_base or "chargebee",
        key_prefix=settings.key_prefix,
        waiting=Waiting(max_wait=settings.rate_limit_max_wait),
    )


_context: JobContext | None = None
_by_queue: dict[str, JobContext] = {}


def install(context: JobContext, *others: JobContext) -> None:
    """Make `context` the one job functions use in this process (and in forked work horses); with
    `others`, each site's context serves the jobs of its own queue (`context_for`)."""
    global _context, _by_queue
    _context = context
    _by_queue = {c.queue.name: c for c in (context, *others)}


def installed() -> tuple[JobContext, ...]:
    """Every context installed in this process, one per site it serves."""
    return tuple(_by_queue.values()) or ((_context,) if _context is not None else ())


def context_for(queue_name: str) -> JobContext:
    """The context of the site whose queue is `queue_name`. A queue this process does not serve is
    refused: a job must never run with another site's key and keys."""
    if _context is None:
        current_context()
    try:
        return _by_queue[queue_name]
    except KeyError:
        raise RuntimeError(f"this worker serves no Chargebee site whose queue is {queue_name!r}") from None


def current_context() -> JobContext:
    """The context of the running job's site (the queue it came from), or this process's only one."""
    global _context
    if _context is None:  # a plain `rq worker` started without `reactor worker`
        settings = load_settings()
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL must be set for a worker started outside `reactor worker`")
        connection = connect(settings.redis_url)
        install(*(build_context(settings.for_site(name), connection) for name in settings.site_names))
    assert _context is not None
    if len(_by_queue) > 1:
        job = get_current_job()
        if job is not None:
            return context_for(job.origin)
    return _context
