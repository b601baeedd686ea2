"""What every `reactor` command shares: the settings, Redis and Chargebee it works with, how it
reads ids, durations and times, and how it prints and names who ran it."""

from __future__ import annotations

import getpass
import re
import socket
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
import redis
from rich.console import Console
from rich.text import Text

from .. import ids
from ..config import ConfigError, Settings, load_settings, log_settings
from ..jobs.audit import visible
from ..local.supervisor import embedded_url_file, sandbox_url_file
from ..logs import setup_logging
from ..redaction import redact
from ..redis_connect import connect as redis_connect
from ..redis_wait import RedisUnreachable, eviction_refusal, explain, redis_address, unreachable, wait_for_redis

F = TypeVar("F", bound=Callable[..., Any])

NO_CHARGEBEE = (
    "no Chargebee configured: set CHARGEBEE_SITE (or CHARGEBEE_API_BASE) and CHARGEBEE_API_KEY, "
    "or start `reactor run` in this directory for the local sandbox"
)


class RedisUnavailable(click.ClickException):
    """Redis did not answer (an embedded one that is gone, or a REDIS_URL past REACTOR_REDIS_WAIT):
    exit status 1, the one refusal at a process's start that is not a bad configuration (those exit
    EX_CONFIG: reactor/cli/processes.py), so that whatever restarts the process may start it again."""


def start_logging(env: Mapping[str, str]) -> None:
    """Logging as REACTOR_LOG_LEVEL and REACTOR_LOG_FORMAT in `env` say, or a one-line refusal."""
    try:
        wanted = log_settings(env)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging(wanted.level, wanted.json_lines)


def command_settings() -> Settings:
    """The settings from the environment, or a one-line refusal that says what is wrong."""
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _answers(url: str, timeout: float = 2.0) -> bool:
    """Whether something accepts connections at the host and port of `url`."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def chargebee_settings(settings: Settings) -> Settings:
    """The settings every command that calls Chargebee uses: CHARGEBEE_SITE / CHARGEBEE_API_BASE,
    or else the local sandbox that a `reactor run` in this directory started (as `connect` finds its
    embedded Redis), or a one-line refusal that says what to set."""
    if settings.api_base:
        return settings
    marker = sandbox_url_file(settings)
    try:
        url = marker.read_text().strip()
    except OSError:
        url = ""
    if not url:
        raise click.ClickException(NO_CHARGEBEE)
    if not _answers(url):
        raise click.ClickException(
            f"no Chargebee configured, and the local sandbox recorded in {marker} ({url}) does not answer "
            "(`reactor run` stopped?): start `reactor run` again, or set CHARGEBEE_SITE (or CHARGEBEE_API_BASE) "
            "and CHARGEBEE_API_KEY"
        )
    from ..sandbox import DEMO_API_KEY  # late: start-up time (the sandbox loads Flask; only this branch needs it)

    return settings.with_overrides(chargebee_api_base=url, chargebee_api_key=DEMO_API_KEY)


def connect(settings: Settings, wait: bool = False) -> redis.Redis:
    """REDIS_URL, or the embedded Redis that a `reactor run` in this directory started.

    With `wait` (the long-running processes: `worker`, `cron`) a REDIS_URL that does not answer yet
    is waited for, up to REACTOR_REDIS_WAIT (reactor/redis_wait.py). Anything else stops at once
    with one line: Redis refusing us (a bad password), an embedded Redis that is gone (its
    `reactor run` stopped), and every unreachable Redis for the other commands; with `wait`, also a
    Redis that may evict keys (its `maxmemory-policy`)."""
    url = settings.redis_url
    if not url:
        marker = embedded_url_file(settings)
        if not marker.exists():
            raise click.ClickException(
                "REDIS_URL is not set and no embedded Redis is running here (start `reactor run` first)"
            )
        url = marker.read_text().strip()
    connection = redis_connect(url, socket_connect_timeout=3)
    try:
        if wait and settings.redis_url:
            wait_for_redis(connection, deadline=settings.redis_wait)
        else:
            connection.ping()
        refused = eviction_refusal(connection) if wait else None
    except RedisUnreachable as exc:
        raise RedisUnavailable(f"{exc} (REACTOR_REDIS_WAIT={settings.redis_wait:g})") from None
    except redis.RedisError as exc:
        address = redis_address(connection)
        if unreachable(exc):
            raise RedisUnavailable(f"cannot reach Redis at {address}: {explain(exc)}") from None
        raise click.ClickException(f"Redis at {address} refused us: {explain(exc)}") from None
    if refused:
        raise click.ClickException(refused)
    return connection


# -- ids ---------------------------------------------------------------------------------------


class ChargebeeId(click.ParamType):
    """An argument or option that names a Chargebee id of one of `kinds` (reactor/ids.py); anything
    else (`..`, empty, a '/', a space at either end) is a usage error before Redis or Chargebee is asked."""

    def __init__(self, *kinds: ids.IdKind) -> None:
        self.kinds = kinds
        self.name = " or ".join(kind.name for kind in kinds)

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if isinstance(value, str) and any(kind.accepts(value) for kind in self.kinds):
            return value
        rules = "; ".join(f"{kind.name}: {kind.rule}" for kind in self.kinds)
        self.fail(f"{ids.shown(value)} is not a Chargebee {self.name} ({rules})", param, ctx)


INVOICE_ID = ChargebeeId(ids.INVOICE)
INVOICE_OR_EVENT_ID = ChargebeeId(ids.INVOICE, ids.EVENT)


# -- durations and times -------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"([0-9]{1,15})([smhdw])")  # ASCII digits only: int() refuses "²", isdigit() does not


def duration_seconds(value: str) -> int | None:
    """`45s`, `30m`, `2h`, `3d`, `1w` in seconds; None when `value` is not written that way."""
    match = _DURATION.fullmatch(value.strip().lower())
    return int(match[1]) * DURATION_UNITS[match[2]] if match else None


def back_from_now(seconds: int, value: str) -> datetime:
    """Now minus `seconds`; refused before 1970, where no record, job or stream id can be."""
    now = datetime.now(timezone.utc)
    if seconds > (now - EPOCH).total_seconds():
        raise click.BadParameter(f"{value} reaches back before 1970, older than anything the reactor keeps")
    return now - timedelta(seconds=seconds)


def parse_duration(value: str) -> timedelta:
    """`45s`, `30m`, `2h`, `3d`, `1w`; no longer than back to 1970 (nothing the reactor keeps is older)."""
    seconds = duration_seconds(value)
    if seconds is None:
        raise click.BadParameter(f"{visible(value)!r} is not a duration like 30m, 2h, 30d")
    back_from_now(seconds, value)  # refuses one that reaches before 1970
    return timedelta(seconds=seconds)


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_since(value: str) -> datetime:
    """`2h`, `30m`, `3d`, `45s` back from now, or an ISO time (not before 1970)."""
    seconds = duration_seconds(value)
    if seconds is not None:
        return back_from_now(seconds, value)
    moment = _parse_time(value)
    try:
        moment.astimezone(timezone.utc)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is in the year 10000 in UTC
        raise click.BadParameter(f"{value} is out of range") from None
    if moment < EPOCH:
        raise click.BadParameter(
            f"{value} is before 1970, older than anything the reactor keeps; leave --since out to read everything"
        )
    return moment


# -- output and who ran it -----------------------------------------------------------------------


def confirm_or_refuse(question: str, yes: bool, flag_hint: str) -> None:
    """Ask on a terminal; without one (cron, CI, a pipe) refuse unless --yes was given."""
    if yes:
        return
    if not sys.stdin.isatty():
        click.echo(
            visible(f"refusing: {question} needs a confirmation and there is no terminal; {flag_hint}"), err=True
        )
        sys.exit(1)
    click.confirm(question, abort=True)


def console(stderr: bool = False) -> Console:
    """Rich on a terminal; on a pipe or file, wide enough that ids are never cut or folded."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 240, highlight=False)


def cell(value: object) -> Text:
    """A table cell shown as it is: control characters escaped (reactor.jobs.audit.visible), and as a
    Text, so Rich reads no markup (`[bold]`, `[link=...]`) or emoji codes in an id or a reason."""
    return Text(visible("" if value is None else str(value)))


def current_actor() -> str:
    """`user@host` of whoever runs the command, for the audit trail."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def say(message: str, keep_newlines: bool = False) -> None:
    """A line on stdout, with control characters from Redis or Chargebee made visible and every
    configured secret redacted (a traceback may quote one)."""
    click.echo(visible(redact(message), keep_newlines=keep_newlines))


def warn(message: str) -> None:
    """A line on stderr, made visible and redacted as `say` does."""
    click.echo(visible(redact(message)), err=True)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def end_of_replay(count: int, what: str, verb: str, refused: int, *, summary: bool = True) -> None:
    """The last line of a replay (`3 events queued, 1 refused`), and exit 1 when any was refused, so
    a script sees that not everything went back on the queue."""
    if summary:
        refusals = f", {refused} refused" if refused else ""
        say(f"{plural(count - refused, what)} {verb}{refusals}; follow with `reactor audit --since 10m`")
    if refused:
        sys.exit(1)


# -- sites -----------------------------------------------------------------------------------------


class SiteRefused(click.ClickException):
    """`--site` is missing where several sites are configured, or names none of them: one line and
    exit 2, as click's usage errors."""

    exit_code = 2


def site_option(command: F) -> F:
    """`--site NAME`: the Chargebee site a command works on (REACTOR_SITES, reactor/sites.py)."""
    return click.option(
        "--site",
        default=None,
        metavar="NAME",
        help="The Chargebee site (REACTOR_SITES); required for one invoice's data when several are configured.",
    )(command)


def _named_site(settings: Settings, name: str) -> Settings:
    try:
        return settings.for_site(name)
    except ConfigError as exc:
        raise SiteRefused(str(exc)) from None


def one_site(settings: Settings, name: str | None) -> Settings:
    """The settings of the site `--site` names; of the only site when one is configured; refused
    (naming the sites) when several are and none was named: an invoice id means nothing without its
    site."""
    if name is not None:
        return _named_site(settings, name)
    if settings.several_sites:
        names = ", ".join(settings.site_names)
        raise SiteRefused(f"several Chargebee sites are configured ({names}): name one with --site")
    return settings.for_site(settings.site_names[0])


def each_site(settings: Settings, name: str | None) -> list[Settings]:
    """The settings of the site `--site` names, or of every configured site, the home site first."""
    if name is not None:
        return [_named_site(settings, name)]
    return [settings.for_site(site) for site in settings.site_names]
