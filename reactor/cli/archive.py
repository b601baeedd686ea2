"""`reactor audit archive` (one round of the archive `reactor cron` runs) and `reactor audit verify`
(the archive's hashes and chain), registered on the `audit` group of reactor/cli/ops.py.

`verify` exits with a status a scheduled job can alert on: VERIFY_OK, VERIFY_BROKEN (a segment
changed or missing, the chain broken), VERIFY_UNREACHABLE (the archive or Redis could not be read).
"""

from __future__ import annotations

import sys

import click

from ..console.archiving import archive_round, audit_archive, verify_archive
from ..jobs.audit.archive import ArchiveUnavailable
from .helpers import RedisUnavailable, command_settings, connect, parse_since, plural, say, warn
from .ops import audit

VERIFY_OK = 0
VERIFY_BROKEN = 1
VERIFY_UNREACHABLE = 3


@audit.command("archive")
@click.option("--flush", is_flag=True, help="Archive every record waiting, however few (before a Redis move).")
def archive_command(flush: bool) -> None:
    """Archive the records due, then trim the stream of what the archive holds (what `reactor cron`
    does every REACTOR_AUDIT_ARCHIVE_INTERVAL seconds). Exit 3 when the archive cannot be written:
    nothing is trimmed then."""
    settings = command_settings()
    archive = audit_archive(settings, connect(settings))
    try:
        done = archive_round(settings, archive, flush=flush)
    except ArchiveUnavailable as exc:
        warn(f"the audit archive {archive.url} cannot be written: {exc}; nothing trimmed")
        sys.exit(VERIFY_UNREACHABLE)
    if done is None:
        say("another archive round is running; nothing done")
        return
    lag = archive.lag()
    waiting = "" if not lag.waiting else f"; {plural(lag.waiting, 'record')} wait for their segment"
    say(
        f"archived {plural(done.records, 'record')} in {plural(len(done.segments), 'segment')} to {archive.url}, "
        f"trimmed {done.trimmed} from Redis{waiting}"
    )


@audit.command("verify")
@click.option("--since", default=None, help="Only the segments from then on: ISO time or 30m, 2h, 3d.")
def verify_command(since: str | None) -> None:
    """Check every segment's SHA-256 and record count against the manifest, the manifest's hash
    chain, and that it reaches what Redis says is archived; name the first broken or missing segment.

    Exit 0: intact; 1: broken (a segment changed or missing, the chain broken); 3: the archive or
    Redis could not be read."""
    settings = command_settings()
    try:
        archive = audit_archive(settings, connect(settings))
        report = verify_archive(settings, archive, parse_since(since) if since else None)
    except (ArchiveUnavailable, RedisUnavailable) as exc:
        warn(f"cannot verify the audit archive: {exc}")
        sys.exit(VERIFY_UNREACHABLE)
    if report.ok:
        say(f"ok: {plural(report.entries, 'segment')}, {plural(report.records, 'record')} in {archive.url}")
        return
    warn(f"first broken: {report.problems[0]}")
    for problem in report.problems[1:]:
        warn(f"also: {problem}")
    sys.exit(VERIFY_BROKEN)


COMMANDS = ()
