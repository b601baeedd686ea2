"""The audit archive as the reactor runs it: built from the settings (`audit_archive`), a round that
counts the new records first and tells a person when the archive fails (`archive_round`), the
verification with its notice (`verify_archive`), and the thread `reactor cron` runs them in
(`start_archiver`).

When the archive cannot be written (a read-only directory, S3 down), nothing is trimmed: the stream
keeps every record not archived, Redis memory is the buffer, and each failing round logs an error
line and, once an hour, appends a notice for the digest. Everything waiting is archived once the
archive is back.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

import redis

from ..config import Settings
from ..jobs.audit.archive import ArchiveRound, ArchiveUnavailable, AuditArchive, Verification
from ..keys import Keys
from ..notices import Notices
from .approvals import expire_approvals
from .tally import AuditTally

log = logging.getLogger(__name__)

VERIFY_EVERY = 24 * 3600
"""Seconds between the verifications `reactor cron` runs (of the last two days' segments)."""
VERIFY_SPAN = timedelta(days=2)


def audit_archive(settings: Settings, connection: redis.Redis, stream_key: str | None = None) -> AuditArchive:
    """The archive of `stream_key` (the settings' audit stream by default), where REACTOR_AUDIT_ARCHIVE
    says. The tally's cursor holds the trim back: a record leaves the stream only once it is counted."""
    key = stream_key or Keys(settings.key_prefix).audit()
    return AuditArchive(
        connection,
        key,
        settings.audit_archive_url,
        segment_records=settings.audit_segment_records,
        segment_seconds=settings.audit_segment_seconds,
        keep=settings.audit_keep,
        hold_keys=(f"{key}:stats:cursor",),
    )


def archive_round(settings: Settings, archive: AuditArchive, flush: bool = False) -> ArchiveRound | None:
    """Count the new records (reactor/console/tally.py), then archive and trim; on failure, log an
    error line and append a notice (once an hour), and raise ArchiveUnavailable."""
    AuditTally(archive.redis, archive.stream_key).fold()
    try:
        done = archive.run(flush=flush)
    except ArchiveUnavailable as exc:
        lag = archive.lag()
        log.error(
            "audit archive unreachable, nothing trimmed: %s; %s records wait in Redis, the oldest %.0f s old",
            exc,
            "?" if lag.waiting is None else lag.waiting,
            lag.seconds,
        )
        _notices(settings, archive).add(
            "audit_archive",
            f"the audit archive {archive.url} cannot be written ({exc}); nothing is trimmed from Redis meanwhile",
            once=f"audit_archive:{archive.stream_key}",
        )
        raise
    if done and done.segments:
        log.info("audit archive: %d records in %d segments, %d trimmed", done.records, len(done.segments), done.trimmed)
    return done


def verify_archive(settings: Settings, archive: AuditArchive, since: datetime | None = None) -> Verification:
    """Verify the archive; a failure is logged as an error and appended as a notice for the digest."""
    report = archive.verify(since)
    if not report.ok:
        first = report.problems[0]
        log.error("audit archive verification failed: %s", first)
        _notices(settings, archive).add(
            "audit_verify", f"the audit archive {archive.url} failed verification: {first}", once=f"verify:{first}"
        )
    return report


def _notices(settings: Settings, archive: AuditArchive) -> Notices:
    return Notices(archive.redis, settings.key_prefix, enabled=bool(settings.notify_url))


class Archiver:
    """`reactor cron`'s archiver thread; `stop` lets a round under way finish (its lock released)."""

    def __init__(self, thread: threading.Thread, stopping: threading.Event):
        self.thread = thread
        self.stopping = stopping

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        self.thread.join(timeout)


def start_archiver(settings: Settings, connection: redis.Redis) -> Archiver:
    """`reactor cron`'s archiver: every REACTOR_AUDIT_ARCHIVE_INTERVAL seconds, a round per Chargebee
    site into that site's archive, and the approvals older than REACTOR_APPROVAL_TTL let lapse on
    every site; a verification of each site's last two days' segments once a day. A failing site is
    told and tried again next round; the others go on."""
    sites = [(name, settings.for_site(name)) for name in settings.site_names] or [("", settings)]
    archives = {name: audit_archive(scoped, connection) for name, scoped in sites}
    stop = threading.Event()

    def loop() -> None:
        verified_at: dict[str, float] = {}
        while not stop.is_set():
            for name, scoped in sites:
                site_round(scoped, archives[name], verified_at, name)
            stop.wait(settings.audit_archive_interval)

    thread = threading.Thread(target=loop, name="reactor-audit-archive", daemon=True)
    thread.start()
    return Archiver(thread, stop)


def site_round(settings: Settings, archive: AuditArchive, verified_at: dict[str, float], name: str) -> None:
    """One site's turn in the archiver: archive (verify once a day), then let stale approvals lapse;
    whatever fails is logged and left to the next round."""
    where = f" of site {name}" if settings.several_sites else ""
    try:
        archive_round(settings, archive)
        now = datetime.now(timezone.utc).timestamp()
        if now - verified_at.get(name, 0.0) >= VERIFY_EVERY:
            verify_archive(settings, archive, datetime.now(timezone.utc) - VERIFY_SPAN)
            verified_at[name] = now
    except ArchiveUnavailable:
        pass  # told by archive_round; the stream keeps everything meanwhile
    except redis.RedisError as exc:
        log.warning("audit archive%s: Redis unavailable: %s", where, exc)
    except Exception:
        log.exception("audit archive%s: the round failed", where)
    try:
        expire_approvals(archive.redis, prefix=settings.key_prefix, approval_ttl=settings.approval_ttl)
    except Exception:
        log.exception("approval expiry%s failed", where)
