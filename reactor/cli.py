"""The `reactor` command."""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import redis
from rich.console import Console

from .cli_rules import register as register_rules_commands
from .config import ConfigError, Settings, load_settings

console = Console()
err_console = Console(stderr=True)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def embedded_url_file(settings: Settings) -> Path:
    return settings.var_dir / "redis.url"


def sandbox_url_file(settings: Settings) -> Path:
    """Where `reactor run` records the API base of the local sandbox it started (removed on stop)."""
    return settings.var_dir / "sandbox.url"


NO_CHARGEBEE = (
    "no Chargebee configured: set CHARGEBEE_SITE (or CHARGEBEE_API_BASE) and CHARGEBEE_API_KEY, "
    "or start `reactor run` in this directory for the local sandbox"
)


def _answers(url: str, timeout: float = 2.0) -> bool:
    """Whether something accepts connections at the host and port of `url`."""
    import socket
    from urllib.parse import urlsplit

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
    from .sandbox import DEMO_API_KEY

    return settings.with_overrides(chargebee_api_base=url, chargebee_api_key=DEMO_API_KEY)


def connect(settings: Settings) -> redis.Redis:
    """REDIS_URL, or the embedded Redis that a `reactor run` in this directory started."""
    url = settings.redis_url
    if not url:
        marker = embedded_url_file(settings)
        if not marker.exists():
            raise click.ClickException(
                "REDIS_URL is not set and no embedded Redis is running here (start `reactor run` first)"
            )
        url = marker.read_text().strip()
    connection = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        connection.ping()
    except redis.RedisError as exc:
        raise click.ClickException(f"cannot reach Redis at {url}: {exc}") from None
    return connection


@click.group()
@click.version_option(package_name="chargebee-reactor")
def main() -> None:
    """chargebee-reactor: Chargebee webhooks in, rule-driven invoice write-offs out."""
    from .logs import setup_logging

    setup_logging()


# -- processes -----------------------------------------------------------------------------------

PORT = click.IntRange(1, 65535)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the web process listens on.")
@click.option("--port", type=PORT, default=None, help="Web port (default $PORT or 8000).")
@click.option("--sandbox-port", type=PORT, default=8001, show_default=True, help="Port of the local sandbox.")
def run(host: str, port: int | None, sandbox_port: int) -> None:
    """Web + worker + scheduler in one command; embedded Redis and the sandbox when not configured."""
    from .supervisor import run_all

    sys.exit(run_all(_settings(), host=host, port=port, sandbox_port=sandbox_port))


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", type=PORT, default=None, help="Default: $PORT or 8000.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="gunicorn worker processes.")
def web(host: str, port: int | None, workers: int) -> None:
    """The webhook endpoint under gunicorn (what the Procfile's `web:` runs)."""
    from .supervisor import serve_web

    settings = _settings()
    serve_web(settings, host, port or settings.port, workers)


@main.command()
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.option("--name", default=None, help="Worker name (default: RQ's).")
def worker(burst: bool, name: str | None) -> None:
    """An RQ worker for the reactor's jobs, with RQ's scheduler."""
    from .metrics import RulesReloadReporter
    from .rules import RulesError
    from .rules.live import LiveRules
    from .worker import run_worker

    settings = chargebee_settings(_settings())
    connection = connect(settings)
    LiveRules.default_reporter = RulesReloadReporter(connection, settings.key_prefix)  # refused edits → /metrics
    try:
        run_worker(settings, connection, burst=burst, name=name)
    except RulesError as exc:
        raise click.ClickException(f"rules file refused:\n{exc}") from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=PORT, default=8001, show_default=True)
@click.option("--no-seed", is_flag=True, help="Start empty instead of with the demo invoices.")
def sandbox(host: str, port: int, no_seed: bool) -> None:
    """A local Chargebee stand-in (invoices, write_off, faults) for demos and tests."""
    from .sandbox import SandboxState, seed_demo, serve

    state = SandboxState()
    if not no_seed:
        seed_demo(state)
    serve(host, port, state)


# -- rules ---------------------------------------------------------------------------------------


@main.group()
def rules() -> None:
    """Check, explain and test rules.yaml."""


@rules.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
def rules_check(path: Path | None) -> None:
    """Validate a rules file; exit 1 with file:line:col for every problem."""
    from .rules import RulesError, load_rules

    path = path or _settings().rules_path
    try:
        ruleset = load_rules(path)
    except RulesError as exc:
        for problem in exc.problems:  # plain lines, never wrapped: editors and grep read file:line:col
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        click.echo(f"{path}: {count} problem{'s' if count != 1 else ''}; rules refused", err=True)
        sys.exit(1)
    for warning in ruleset.warnings:  # the file is in force; these only point at likely mistakes
        click.echo(f"{warning.file}:{warning.line}:{warning.col}: warning: {warning.message}", err=True)
    names = ", ".join(rule.name for rule in ruleset.rules)
    click.echo(f"{path}: OK, version {ruleset.version}, mode {ruleset.mode}, {len(ruleset.rules)} rules ({names})")
    for rule in ruleset.rules:
        if rule.while_collecting == "write_off":
            click.echo(
                f"rule {rule.name} writes off even while Chargebee is still collecting (while_collecting: write_off)"
            )
    if ruleset.warnings:
        count = len(ruleset.warnings)
        click.echo(f"{path}: {count} warning{'s' if count != 1 else ''}; the rules load, but check them")


register_rules_commands(rules)  # explain, test: reactor/cli_rules.py


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# -- audit and dead letters ----------------------------------------------------------------------

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


# `reactor audit`, `reactor dlq ...` and `reactor events replay` live in cli_ops, `reactor held ...`
# in cli_sweep; importing them registers them on `main`.
from . import cli_ops, cli_sweep  # noqa: E402, F401
