"""`reactor sweep`: list every unpaid invoice from Chargebee and act on each (reactor/jobs/sweep.py)."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from ..chargebee import ChargebeeError
from ..config import Settings
from ..jobs import build_context
from ..jobs.audit import visible
from ..jobs.sweep import Checkpoint, SweepResult, run_sweep
from ..jobs.sweep_report import ReportError, check_report_path, totals, write_report
from ..rules import RulesError
from ..rules.event_types import SWEEP_EVENT_TYPE
from .helpers import SiteRefused, cell, chargebee_settings, command_settings, connect, console, each_site, site_option


@click.command()
@click.option(
    "--dry-run",
    is_flag=True,
    help="Decide on every invoice, also as each event type a rule listens to would bring it; write nothing off,"
    " record nothing.",
)
@click.option("--report", type=click.Path(dir_okay=False), help="CSV of what would be written off, per trigger.")
@click.option(
    "--resume/--restart", default=True, show_default=True, help="Continue an interrupted sweep, or start over."
)
@click.option(
    "--min-days-overdue",
    type=click.IntRange(0, 36500),
    default=0,
    help="Skip invoices less overdue than this (due_date, our side).",
)
@site_option
def sweep(dry_run: bool, report: str | None, resume: bool, min_days_overdue: int, site: str | None) -> None:
    """List every unpaid invoice from Chargebee and act on each as a webhook would (reactor/jobs/sweep.py).
    With several sites and no --site, every site in turn, a section each."""
    settings = command_settings()
    if report and site is None and settings.several_sites:
        raise SiteRefused(f"a --report is one site's: name one with --site ({', '.join(settings.site_names)})")
    scoped = each_site(settings, site)
    try:
        if report:
            check_report_path(report)  # before minutes of listing, not after
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    failed = []
    for each in scoped:
        if settings.several_sites:
            click.echo(f"site {each.site_name}:")
        try:
            _sweep_site(chargebee_settings(each), dry_run, report, resume, min_days_overdue)
        except click.ClickException as exc:
            if len(scoped) == 1:
                raise
            click.echo(f"Error: {visible(exc.format_message())}", err=True)
            failed.append(each.site_name)
    if failed:
        raise click.ClickException(f"the sweep failed on {', '.join(failed)}; the other sites were swept")


def _sweep_site(settings: Settings, dry_run: bool, report: str | None, resume: bool, min_days_overdue: int) -> None:
    """One site's sweep, its report written and its result printed."""
    try:
        result = _sweep_with_progress(settings, dry_run or bool(report), resume, min_days_overdue)
    except ChargebeeError as exc:
        raise click.ClickException(f"sweep stopped: {exc}") from None
    except RulesError:
        raise click.ClickException(f"{settings.rules_path}: refused; fix it first (`reactor rules check`)") from None
    if report:
        try:
            write_report(report, [*result.candidates, *result.not_previewed, *result.held])
        except ReportError as exc:
            raise click.ClickException(str(exc)) from None
    _print_result(result, dry_run=dry_run or bool(report))


def _sweep_with_progress(settings: Settings, dry_run: bool, resume: bool, min_days_overdue: int) -> SweepResult:
    """The sweep, with a progress line on a terminal (pages, invoices matching so far)."""
    from rich.progress import Progress  # late: start-up time (rich.progress costs `reactor --help` ~7 ms)

    ctx = build_context(settings, connect(settings), records=not dry_run)
    with Progress(disable=not sys.stderr.isatty(), console=console(stderr=True)) as progress:
        task = progress.add_task("sweeping", total=None)

        def on_page(point: Checkpoint, count: int) -> None:
            progress.update(task, advance=count, description=f"page {point.pages}, {point.matched} matching")

        return run_sweep(ctx, dry_run=dry_run, resume=resume, min_days_overdue=min_days_overdue, on_page=on_page)


def _print_result(result: SweepResult, *, dry_run: bool) -> None:
    point = result.checkpoint
    if dry_run:
        for blind in result.plan.blind:  # before the table: what could not be previewed
            click.echo(f"could not preview: {blind.describe()}")
        if result.plan.others:
            click.echo(f"on {result.plan.others}: stands for every event type carrying an invoice that no `on:` names")
        table = Table("on", "rule", "currency", "count", "amount", title="would be written off", title_justify="left")
        for (on, rule, currency), (count, amount) in totals(result.candidates).items():
            table.add_row(*map(cell, (on, rule, currency, str(count), str(amount))))
        console().print(table)
        swept = sum(1 for c in result.candidates if c.on == SWEEP_EVENT_TYPE)
        click.echo(f"dry run: {point.seen} invoices seen, {swept} would be written off by the sweep")
        for trigger in result.plan.webhook_triggers:
            would = sum(1 for c in result.candidates if c.on == trigger)
            unknown = sum(1 for c in result.not_previewed if c.on == trigger)
            more = f", {unknown} not previewed (a rule reads a field only the event carries)" if unknown else ""
            click.echo(f"on next {trigger}: {would} would be written off{more} (if it arrived now, as listed)")
        if result.held:
            shown = ", ".join(f"{h.invoice_id} ({h.note or 'no reason'})" for h in result.held[:10])
            more = f" and {len(result.held) - 10} more" if len(result.held) > 10 else ""
            stay = "invoice stays" if len(result.held) == 1 else "invoices stay"
            click.echo(visible(f"held: {len(result.held)} {stay} held (reactor held list), not decided: {shown}{more}"))
    else:
        click.echo(
            f"sweep {point.sweep_id}: {point.pages} pages, {point.seen} invoices, "
            f"{point.matched} matching, {result.queued} queued"
        )


COMMANDS = (sweep,)
