"""The `reactor` command."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the web process listens on.")
@click.option("--port", type=int, default=None, help="Web port (default $PORT or 8000).")
@click.option("--sandbox-port", type=int, default=8001, show_default=True, help="Port of the local sandbox.")
def run(host: str, port: int | None, sandbox_port: int) -> None:
    """Web + worker + scheduler in one command; embedded Redis and the sandbox when not configured."""
    from .supervisor import run_all

    sys.exit(run_all(_settings(), host=host, port=port, sandbox_port=sandbox_port))


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", type=int, default=None, help="Default: $PORT or 8000.")
@click.option("--workers", type=int, default=2, show_default=True, help="gunicorn worker processes.")
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

    settings = _settings()
    connection = connect(settings)
    LiveRules.default_reporter = RulesReloadReporter(connection, settings.key_prefix)  # refused edits → /metrics
    try:
        run_worker(settings, connection, burst=burst, name=name)
    except RulesError as exc:
        raise click.ClickException(f"rules file refused:\n{exc}") from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8001, show_default=True)
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


def parse_since(value: str) -> datetime:
    """`2h`, `30m`, `3d`, `45s` back from now, or an ISO time."""
    from datetime import timedelta

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(timezone.utc) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    return _parse_time(value)


# `reactor audit`, `reactor dlq ...` and `reactor events replay` live in cli_ops, `reactor held ...`
# in cli_sweep; importing them registers them on `main`.
from . import cli_ops, cli_sweep  # noqa: E402, F401
