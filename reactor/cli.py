"""The `reactor` command."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import click
import redis
from rich.console import Console
from rich.table import Table

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
    from .rules import RulesError
    from .worker import run_worker

    settings = _settings()
    try:
        run_worker(settings, connect(settings), burst=burst, name=name)
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
        for problem in exc.problems:
            err_console.print(str(problem), highlight=False, markup=False)
        count = len(exc.problems)
        err_console.print(f"{path}: {count} problem{'s' if count != 1 else ''}; rules refused", style="red")
        sys.exit(1)
    names = ", ".join(rule.name for rule in ruleset.rules)
    console.print(
        f"{path}: OK, version {ruleset.version}, mode {ruleset.mode}, {len(ruleset.rules)} rules ({names})",
        highlight=False,
        markup=False,
    )


@rules.command("explain")
@click.option("--event", "event_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--at", "at", default=None, help="Evaluate at this ISO time instead of now.")
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def rules_explain(event_file: Path | None, at: str | None, rules_path: Path | None) -> None:
    """Show, rule by rule and condition by condition, how an event would be decided."""
    import json

    from .rules import RulesError, explain, format_explanation, load_rules

    if event_file is None:
        raise click.UsageError("give --event FILE.json")
    try:
        ruleset = load_rules(rules_path or _settings().rules_path)
    except RulesError as exc:
        raise click.ClickException(str(exc)) from None
    event = json.loads(event_file.read_text())
    now = _parse_time(at) if at else datetime.now(timezone.utc)
    console.print(format_explanation(explain(ruleset, event, now)))


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# -- audit and dead letters ----------------------------------------------------------------------


@main.command()
@click.option("--since", default=None, help="ISO time or a duration like 2h, 3d.")
@click.option("--invoice", default=None, help="Only this invoice id.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "jsonl"]), default="table", show_default=True)
@click.option("--limit", type=int, default=None)
def audit(since: str | None, invoice: str | None, fmt: str, limit: int | None) -> None:
    """Every decision: event, invoice, rule, action, outcome, amount, rules version."""
    from .audit import AuditLog, export
    from .events import Keys

    settings = _settings()
    log = AuditLog(connect(settings), Keys(settings.key_prefix).audit())
    records = log.query(since=parse_since(since) if since else None, invoice_id=invoice, limit=limit)
    if fmt != "table":
        click.echo(export(records, fmt), nl=False)
        return
    table = Table("at", "event", "invoice", "rule", "action", "outcome", "amount", "mode", "rules", "reason")
    for r in records:
        amount = f"{r.amount_due} {r.currency or ''}" if r.amount_due is not None else ""
        table.add_row(
            r.at, r.event_id, r.invoice_id, r.rule, r.action, r.outcome, amount, r.mode, r.rules_version, r.reason
        )
    console.print(table)


def parse_since(value: str) -> datetime:
    """`2h`, `30m`, `3d`, `45s` back from now, or an ISO time."""
    from datetime import timedelta

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(timezone.utc) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    return _parse_time(value)


@main.group()
def dlq() -> None:
    """Dead letters: jobs that failed after their last retry."""


@dlq.command("list")
def dlq_list() -> None:
    """Failed jobs: job, event, invoice, last error, attempts, failed at."""
    from .deadletters import DeadLetters

    settings = _settings()
    letters = DeadLetters(connect(settings), settings)
    table = Table("job", "event", "invoice", "last error", "attempts", "failed at")
    for letter in letters.list():
        table.add_row(
            letter.job_id, letter.event_id, letter.invoice_id, letter.last_error, str(letter.attempts), letter.failed_at
        )
    console.print(table)


@dlq.command("replay")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
def dlq_replay(job_ids: tuple[str, ...], replay_all: bool) -> None:
    """Run dead letters again against the current rules and the fresh invoice."""
    from .deadletters import DeadLetters

    if not job_ids and not replay_all:
        raise click.UsageError("name job ids or use --all")
    settings = _settings()
    letters = DeadLetters(connect(settings), settings)
    ids = [letter.job_id for letter in letters.list()] if replay_all else list(job_ids)
    for job_id in ids:
        try:
            letters.replay(job_id)
            console.print(f"requeued {job_id}", highlight=False)
        except KeyError as exc:
            err_console.print(f"{job_id}: {exc.args[0]}", highlight=False)
            sys.exit(1)
