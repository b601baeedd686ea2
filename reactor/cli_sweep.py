"""`reactor held list|release`: the write-offs a budget held back (reactor/held.py).

Registered on the `main` group of `cli.py`.
"""

from __future__ import annotations

import click
from rich.table import Table
from rq import Queue

from .audit import AuditLog, AuditRecord
from .cli import _settings, chargebee_settings, connect, main
from .cli_ops import _actor, _cell, _console
from .held import list_held, release


@main.group()
def held() -> None:
    """Write-offs held back by a budget (limits.max_per_day, limits.max_count_per_hour)."""


@held.command("list")
def held_list() -> None:
    """Every held write-off, oldest first, with the reason it was held."""
    settings = _settings()
    items = list_held(connect(settings), settings.key_prefix)
    if not items:
        click.echo("no held write-offs")
        return
    table = Table("invoice", "rule", "amount", "held at", "reason")
    for item in items:
        table.add_row(*map(_cell, (item.invoice_id, item.rule, item.amount_text(), item.held_at, item.reason)))
    _console().print(table)
    click.echo(f"{len(items)} held; release with `reactor held release INVOICE...` or `--all`")


@held.command("release")
@click.argument("invoice_ids", nargs=-1)
@click.option("--all", "release_all", is_flag=True, help="Release every held write-off.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def held_release(invoice_ids: tuple[str, ...], release_all: bool, yes: bool) -> None:
    """Hand held write-offs back to a worker: it fetches each invoice fresh and decides again (the
    rules still apply), without the budget check that held it. Recorded in the audit as released."""
    settings = _settings()
    connection = connect(settings)
    if release_all == bool(invoice_ids):
        raise click.UsageError("name the invoices to release, or give --all (not both)")
    ids = [h.invoice_id for h in list_held(connection, settings.key_prefix)] if release_all else list(invoice_ids)
    if not ids:
        click.echo("no held write-offs")
        return
    if release_all and not yes:
        click.confirm(f"release {len(ids)} held write-offs past their budget?", abort=True)
    actor = _actor()
    done = release(
        connection, Queue(settings.queue_name, connection=connection), ids, actor, prefix=settings.key_prefix
    )
    audit = AuditLog(connection, f"{settings.key_prefix}:audit")
    for invoice_id in done:
        audit.append(AuditRecord(event_id=None, invoice_id=invoice_id, outcome="released", reason=f"by {actor}"))
    for invoice_id in sorted(set(ids) - set(done)):
        click.echo(f"{invoice_id}: not held (already released, or never held)", err=True)
    click.echo(f"released {len(done)}: {', '.join(done)}" if done else "nothing released")
    if len(done) != len(ids):
        raise SystemExit(1)


@main.command()
@click.option("--dry-run", is_flag=True, help="Decide on every invoice, write nothing off, record nothing.")
@click.option("--report", type=click.Path(dir_okay=False), help="CSV of what would be written off.")
@click.option(
    "--resume/--restart", default=True, show_default=True, help="Continue an interrupted sweep, or start over."
)
@click.option(
    "--min-days-overdue",
    type=click.IntRange(0, 36500),
    default=0,
    help="Skip invoices less overdue than this (due_date, our side).",
)
def sweep(dry_run: bool, report: str | None, resume: bool, min_days_overdue: int) -> None:
    """List every unpaid invoice from Chargebee and act on each as a webhook would (reactor/sweep.py)."""
    import sys

    from rich.progress import Progress

    from .chargebee import ChargebeeError
    from .jobs import build_context
    from .rules import RulesError
    from .sweep import ReportError, check_report_path, run_sweep, totals, write_report

    settings = chargebee_settings(_settings())
    try:
        if report:
            check_report_path(report)  # before minutes of listing, not after
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    connection = connect(settings)
    try:
        ctx = build_context(settings, connection)
        with Progress(disable=not sys.stderr.isatty(), console=_console(stderr=True)) as progress:
            task = progress.add_task("sweeping", total=None)

            def on_page(point, count: int) -> None:
                progress.update(task, advance=count, description=f"page {point.pages}, {point.matched} matching")

            result = run_sweep(
                ctx, dry_run=dry_run or bool(report), resume=resume, min_days_overdue=min_days_overdue, on_page=on_page
            )
    except ChargebeeError as exc:
        raise click.ClickException(f"sweep stopped: {exc}") from None
    except RulesError:
        raise click.ClickException(f"{settings.rules_path}: refused; fix it first (`reactor rules check`)") from None
    point = result.checkpoint
    if report:
        try:
            write_report(report, result.candidates)
        except ReportError as exc:
            raise click.ClickException(str(exc)) from None
    if dry_run or report:
        table = Table("rule", "currency", "count", "amount")
        for (rule, currency), (count, amount) in totals(result.candidates).items():
            table.add_row(*map(_cell, (rule, currency, str(count), str(amount))))
        _console().print(table)
        click.echo(f"dry run: {point.seen} invoices seen, {len(result.candidates)} would be written off")
    else:
        click.echo(
            f"sweep {point.sweep_id}: {point.pages} pages, {point.seen} invoices, "
            f"{point.matched} matching, {result.queued} queued"
        )


@main.command()
def cron() -> None:
    """Run the sweep on schedule (REACTOR_SWEEP_CRON, or every REACTOR_SWEEP_INTERVAL seconds).

    RQ's cron scheduler enqueues the sweep job; workers run it. Run one `cron` process (it does
    not elect a leader); a second one only makes sweeps that find the first one's lock and stop."""
    import signal

    from rq.cron import CronScheduler

    from .sweep import SWEEP_JOB_TIMEOUT, scheduled_sweep

    settings = _settings()
    connection = connect(settings)
    if not settings.sweep_interval and not settings.sweep_cron:
        click.echo("sweeps are disabled (REACTOR_SWEEP_CRON is empty); waiting for a stop signal")
        signal.pause()
        return
    scheduler = CronScheduler(connection=connection)
    scheduler.register(
        scheduled_sweep,
        queue_name=settings.queue_name,
        interval=settings.sweep_interval or None,
        cron=None if settings.sweep_interval else settings.sweep_cron,
        job_timeout=SWEEP_JOB_TIMEOUT,
        name="sweep",
    )
    when = f"every {settings.sweep_interval} s" if settings.sweep_interval else f"on '{settings.sweep_cron}' (UTC)"
    click.echo(f"sweeping unpaid invoices {when}")
    scheduler.start()
