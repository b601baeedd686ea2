"""What a job needs (`JobContext`), built once per worker process and passed in (tests build their own),
and the one a worker process installs for RQ's entry points."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import redis
from rq import Queue

from ..chargebee import ChargebeeClient, ChargebeeError
from ..chargebee.ratelimit import ChargebeeRateLimit, Waiting
from ..config import Settings, load_settings
from ..ingest.events import EventStore
from ..keys import Keys
from ..notices import Notices
from ..redaction import remember
from ..redis_connect import connect
from ..reloads import RulesReloadReporter
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
    notices = Notices(connection, settings.key_prefix, enabled=bool(settings.notify_url))
    reporter = RulesReloadReporter(connection, settings.key_prefix, notices) if records else None
    rules = LiveRules(settings.rules_path, reporter=reporter)
    client = ChargebeeClient(
        settings.api_base,
        settings.chargebee_api_key,
        timeout=settings.http_timeout,
        rate_limit=build_rate_limit(settings, connection),
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


def install(context: JobContext) -> None:
    """Make `context` the one job functions use in this process (and in forked work horses)."""
    global _context
    _context = context


def current_context() -> JobContext:
    global _context
    if _context is None:  # a plain `rq worker` started without `reactor worker`
        settings = load_settings()
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL must be set for a worker started outside `reactor worker`")
        _context = build_context(settings, connect(settings.redis_url))
    return _context
