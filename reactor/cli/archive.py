"""`reactor audit archive` (one round of the archive `reactor cron` runs) and `reactor audit verify`
(the archive's hashes and chain), registered on the `audit` group of reactor/cli/ops.py.

`verify` exits with a status a scheduled job can alert on: VERIFY_OK, VERIFY_BROKEN (a segment
changed or missing, the chain broken), VERIFY_UNREACHABLE (the archive or Redis could not be read).
"""

from __future__ import annotations

import sys
from datetime import datetime

import click
import redis

from ..config import Settings
from ..console.archiving import archive_round, audit_archive, verify_archive
from ..jobs.audit.archive import ArchiveUnavailable
from .helpers import RedisUnavailable, command_settings, connect, each_site, parse_since, plural, say, site_option, warn
from .ops import audit

VERIFY_OK = 0
VERIFY_BROKEN = 1
VERIFY_UNREACHABLE = 3


@audit.command("archive")
@click.option("--flush", is_flag=True, help="Archive every record waiting, however few (before a Redis move).")
@site_option
def archive_command(flush: bool, site: str | None) -> None:
    """Archive the records due, then trim the stream of what the archive holds (what `reactor cron`
    does every REACTOR_AUDIT_ARCHIVE_INTERVAL seconds). Without --site, every site's stream to its
    own archive. Exit 3 when an archive cannot be written: nothing of that site is trimmed then."""
    settings = command_settings()
    scoped = each_site(settings, _site(site))
    connection = connect(settings)
    worst = VERIFY_OK
    for each in scoped:
        worst = max(worst, _archive_site(each, connection, flush, _named(settings, each)))
    if worst:
        sys.exit(worst)


def _site(site: str | None) -> str | None:
    """`--site` given to the subcommand, or else to `reactor audit` before it."""
    parent = click.get_current_context().parent
    return site if site is not None or parent is None else parent.params.get("site")


def _named(settings: Settings, scoped: Settings) -> str:
    """`site NAME: ` before each line when several sites are configured."""
    return f"site {scoped.site_name}: " if settings.several_sites else ""


def _archive_site(settings: Settings, connection: redis.Redis, flush: bool, named: str) -> int:
    """One archive round of the site `settings` are scoped to; its exit status."""
    archive = audit_archive(settings, connection)
    try:
        done = archive_round(settings, archive, flush=flush)
    except ArchiveUnavailable as exc:
        warn(f"{named}the audit archive {archive.url} cannot be written: {exc}; nothing trimmed")
        return VERIFY_UNREACHABLE
    if done is None:
        say(f"{named}another archive round is running; nothing done")
        return VERIFY_OK
    lag = archive.lag()
    waiting = "" if not lag.waiting else f"; {plural(lag.waiting, 'record')} wait for their segment"
    say(
        f"{named}archived {plural(done.records, 'record')} in {plural(len(done.segments), 'segment')} to "
        f"{archive.url}, trimmed {done.trimmed} from Redis{waiting}"
    )
    return VERIFY_OK


@audit.command("verify")
@click.option("--since", default=None, help="Only the segments from then on: ISO time or 30m, 2h, 3d.")
@site_option
def verify_command(since: str | None, site: str | None) -> None:
    """Check every segment's SHA-256 and record count against the manifest, the manifest's hash
    chain, and that it reaches what Redis says is archived; name the first broken or missing segment.
    Without --site, every site's archive, each named when several are configured.

    Exit 0: intact; 1: broken (a segment changed or missing, the chain broken); 3: the archive or
    Redis could not be read. Over several sites, the highest of theirs."""
    settings = command_settings()
    scoped = each_site(settings, _site(site))
    moment = parse_since(since) if since else None
    try:
        connection = connect(settings)
    except RedisUnavailable as exc:
        warn(f"cannot verify the audit archive: {exc}")
        sys.exit(VERIFY_UNREACHABLE)
    sys.exit(max(_verify_site(each, connection, moment, _named(settings, each)) for each in scoped))


def _verify_site(settings: Settings, connection: redis.Redis, since: datetime | None, named: str) -> int:
    """Verify the archive of the site `settings` are scoped to; its exit status."""
    try:
        archive = audit_archive(settings, connection)
        report = verify_archive(settings, archive, since)
    except (ArchiveUnavailable, RedisUnavailable) as exc:
        warn(f"{named}cannot verify the audit archive: {exc}")
        return VERIFY_UNREACHABLE
    if report.ok:
        say(f"{named}ok: {plural(report.entries, 'segment')}, {plural(report.records, 'record')} in {archive.url}")
        return VERIFY_OK
    warn(f"{named}first broken: {report.problems[0]}")
    for problem in report.problems[1:]:
        warn(f"{named}also: {problem}")
    return VERIFY_BROKEN


COMMANDS = ()
