"""`reactor rules diff NEW.yaml`: what a rules edit would change on every open invoice, before it is
in force (reactor/console/rules_diff.py lists and decides, reactor/rules/diff.py compares).

Every invoice is decided as the sweep finds it and as Chargebee's next event of each type a rule
listens to would bring it (`on` payment_failed ...: reactor/rules/preview.py); a held invoice stays
held.

Exit codes, for CI: 0 no change, 1 changes, 2 an error (a rules file that does not load, Chargebee
or Redis unreachable, a snapshot that cannot be read, written or used, an --at or --fail-over that
cannot be read, or any other failure: one line, never a traceback, never 1, which a CI job lets
through), 3 the change newly writes off more than --fail-over (on any trigger, each invoice once),
4 a change could not be previewed (a decision rests on a field only the event carries, or a rule
reading one changed; the rule and field are named before the tables). When several hold: 2, then
3, then 4, then 1.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import click
import redis
from rich.table import Table

from ..chargebee import ChargebeeError
from ..config import Settings
from ..console.diff_formats import (
    CHANGE_COLUMNS,
    as_data,
    change_rows,
    count_and_amount,
    outcome_lines,
    preview_notes,
    to_csv,
    to_json,
    to_markdown,
    triggers_line,
)
from ..console.rules_diff import (
    FactSource,
    Listing,
    SnapshotError,
    check_snapshot_path,
    diff_listing,
    list_open_invoices,
    load_snapshot,
    parse_instant,
    save_snapshot,
)
from ..jobs import build_context
from ..jobs.audit import visible
from ..jobs.budget import budgets_used
from ..jobs.preview import held_invoices
from ..rules import RulesError, RuleSet, load_rules
from ..rules.diff import CHANGE_MEANINGS, BudgetsUsed, RulesDiff
from ..rules.event_types import SWEEP_EVENT_TYPE
from ..rules.fail_over import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_NO_CHANGE,
    EXIT_NOT_PREVIEWED,
    EXIT_OVER,
    FailOver,
    FailOverError,
    exit_code,
)
from ..timestamps import shown_time
from .helpers import SiteRefused, cell, chargebee_settings, command_settings, connect, console, each_site, site_option
from .rules import rules


def _fail(message: str) -> NoReturn:
    """One line on stderr and exit 2, the error code (ClickException would exit 1, "changes")."""
    click.echo(f"Error: {visible(message)}", err=True)
    sys.exit(EXIT_ERROR)


def _load(path: Path) -> RuleSet:
    try:
        return load_rules(path)
    except RulesError as exc:
        for problem in exc.problems:  # file:line:col, as `reactor rules check` prints them
            click.echo(str(problem), err=True)
        _fail(f"{path}: refused; fix it first (`reactor rules check {path}`)")
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}")


def _online_listing(site: Settings) -> tuple[Listing, FactSource, Callable[[datetime], BudgetsUsed]]:
    """Every open invoice of one site from Chargebee under its rate limit, with a progress bar on a
    terminal; and the reader of that site's budget counters today (read only) at the diff's instant."""
    from rich.progress import Progress  # late: start-up time (rich.progress costs `reactor --help` ~7 ms)

    settings = chargebee_settings(site)
    connection = connect(settings)
    client = build_context(settings, connection, records=False).chargebee  # a preview: no call traced
    taken = datetime.now(timezone.utc).isoformat(timespec="seconds")
    listing = Listing(taken_at=taken, source=settings.api_base or "")
    with Progress(disable=not sys.stderr.isatty(), console=console(stderr=True)) as progress:
        task = progress.add_task("listing open invoices", total=None)
        list_open_invoices(client, listing, lambda count: progress.update(task, advance=count))
    listing.held = held_invoices(connection, settings.key_prefix)  # read only: held stays held
    return listing, FactSource(listing, client), lambda now: budgets_used(connection, now, settings.key_prefix)


@dataclass(frozen=True)
class DiffOptions:
    """The command line of `reactor rules diff`, as click parsed it."""

    new_path: Path
    base_path: Path | None
    fmt: str
    snapshot: str | None
    invoices_file: str | None
    at: str | None
    fail_over: tuple[str, ...]
    site: str | None


def _parsed_as_options(command: Callable[[DiffOptions], None]) -> Callable[..., None]:
    """Hand the command click's parsed options as one DiffOptions."""

    @functools.wraps(command)
    def with_options(**parsed: Any) -> None:
        command(DiffOptions(**parsed))

    return with_options


@rules.command("diff")
@click.argument("new_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--base",
    "base_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The rules to compare with. Default: the rules in force ($REACTOR_RULES or ./rules.yaml).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table")
@click.option("--snapshot", type=click.Path(dir_okay=False), help="Save the listing here (.gz: gzipped).")
@click.option("--invoices", "invoices_file", type=click.Path(dir_okay=False), help="Diff offline from a snapshot.")
@click.option("--at", "at", help="Decide at this ISO time. Default: now, or the snapshot's time offline.")
@click.option("--fail-over", multiple=True, help="Exit 3 when newly written off passes AMOUNT or CUR=AMOUNT.")
@site_option
@_parsed_as_options
def rules_diff(options: DiffOptions) -> None:
    """What NEW.yaml would change on every open invoice: exit 0 no change, 1 changes, 2 error, 3 over
    --fail-over, 4 a change could not be previewed. With several sites and no --site, every site's
    open invoices, a section each (json: a list, one document per site), the exit code the worst."""
    try:
        code = _diff(options)
    except click.UsageError:
        raise  # click prints it under the usage line and exits 2
    except click.ClickException as exc:  # settings, Redis or Chargebee not configured: an error, not "changes"
        _fail(exc.format_message())
    except (ChargebeeError, SnapshotError, FailOverError, redis.RedisError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted")
    except Exception as exc:  # a bug: exit 2 all the same, since 1 ("changes") is what a CI job lets through
        _fail(f"the diff failed: {type(exc).__name__}: {exc}")
    sys.exit(code)


def _diff(options: DiffOptions) -> int:
    """The command's work; returns its exit code (0, 1, 3 or 4) and raises on an error."""
    allowance = FailOver.parse(options.fail_over)
    snapshot, invoices_file, new_path = options.snapshot, options.invoices_file, options.new_path
    if snapshot and invoices_file:
        raise click.ClickException("give --snapshot (save a listing) or --invoices (diff from one), not both")
    at_time = _at(options.at) if options.at else None
    settings = command_settings()
    if invoices_file and options.site:
        raise click.ClickException("--invoices diffs a snapshot, which is one site's already: leave --site out")
    if snapshot and options.site is None and settings.several_sites:
        raise SiteRefused(f"a --snapshot is one site's: name one with --site ({', '.join(settings.site_names)})")
    scoped: list[Settings | None] = [None] if invoices_file else list(each_site(settings, options.site))
    base_path = options.base_path or settings.rules_path
    base, new = _load(base_path), _load(new_path)
    read = [base_path, new_path, *([invoices_file] if invoices_file else [])]
    if snapshot:
        check_snapshot_path(snapshot, read)  # before minutes of listing, not after
    several = len(scoped) > 1 or (settings.several_sites and options.site is not None)
    documents, codes = [], []
    for site in scoped:
        listing, facts, read_budgets = _listing(invoices_file, site)
        at = at_time
        if at is None and invoices_file:
            at = parse_instant(listing.taken_at)  # offline: the snapshot's moment, the same answer
        now = at or datetime.now(timezone.utc)
        if read_budgets is not None:  # online: what today's budgets have used, at the diff's instant
            listing.budgets = read_budgets(now)
        view = site.site_name if site is not None else None  # each site's own view of both files
        diff = diff_listing(base.for_site(view), new.for_site(view), listing, now, facts)
        if snapshot:
            save_snapshot(snapshot, listing)
        header = {
            **({"site": site.site_name} if several and site is not None else {}),
            "base": str(base_path),
            "base_version": base.version,
            "new": str(new_path),
            "new_version": new.version,
            "at": now.isoformat(timespec="seconds"),
            "source": invoices_file or listing.source,
            "chargebee_calls": listing.calls,
            "budgets": diff.budgets,
        }
        if options.fmt != "table":  # before the output; the table prints them first itself
            for line in preview_notes(diff):
                click.echo(visible(line), err=True)
        if options.fmt == "json" and len(scoped) > 1:
            documents.append(as_data(diff, header))
        else:
            if several and site is not None and options.fmt != "json":
                _site_heading(site.site_name, options.fmt, first=not codes)
            _print(diff, header, options.fmt)
        for line in allowance.exceeded(diff) if allowance is not None else []:
            click.echo(f"over --fail-over: {line}", err=True)
        codes.append(exit_code(diff, allowance))
    if documents:
        click.echo(json.dumps(documents, indent=2, ensure_ascii=True))
    return min(codes, key=SITE_CODE_ORDER.index)


SITE_CODE_ORDER = (EXIT_OVER, EXIT_NOT_PREVIEWED, EXIT_CHANGES, EXIT_NO_CHANGE)
"""Which site's exit code the command's is, first found first: 3, then 4, then 1, then 0."""


def _site_heading(name: str, fmt: str, *, first: bool) -> None:
    """The line that opens a site's section: a `site` row in csv, a heading in markdown, a line in a table."""
    gap = "" if first else "\n"
    if fmt == "csv":
        click.echo(f"{gap}site,{name}")
    elif fmt == "markdown":
        click.echo(f"{gap}## site {name}\n")
    else:
        click.echo(f"{gap}site {name}:")


def _at(value: str) -> datetime:
    try:
        return parse_instant(value, "--at")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None  # one line, exit 2, as every other refusal here


def _listing(
    invoices_file: str | None, site: Settings | None
) -> tuple[Listing, FactSource, Callable[[datetime], BudgetsUsed] | None]:
    """The open invoices: from a snapshot (offline, with the budget counts it kept), or from the
    site's Chargebee."""
    if invoices_file or site is None:
        listing = load_snapshot(invoices_file or "")
        return listing, FactSource(listing, None), None
    return _online_listing(site)


def _print(diff: RulesDiff, header: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(to_json(diff, header), nl=False)
    elif fmt == "csv":
        click.echo(to_csv(diff), nl=False)
    elif fmt == "markdown":
        click.echo(to_markdown(diff, header), nl=False)
    else:
        _print_table(diff, header)


def _print_table(diff: RulesDiff, header: dict[str, Any]) -> None:
    out = console()
    for line in preview_notes(diff):  # before the tables: what could not be previewed
        click.echo(visible(line))
    if diff.changes:
        table = Table(*CHANGE_COLUMNS, title="changed invoices", title_justify="left")
        for row in change_rows(diff):
            table.add_row(*map(cell, row))
        out.print(table)
    kinds = Table("on", "change", "meaning", "count", "amount", title="changes", title_justify="left")
    for trigger, totals in diff.totals.items():
        for kind, count in totals.kind_counts().items():
            if count or trigger == SWEEP_EVENT_TYPE:
                amounts = ", ".join(f"{a} {cur}" for cur, (_, a) in sorted(totals.by_kind.get(kind, {}).items()))
                kinds.add_row(trigger, kind, CHANGE_MEANINGS[kind], str(count), amounts)
    out.print(kinds)
    per_rule = Table("rule", "on", "currency", "old", "new", title="written off per rule", title_justify="left")
    for trigger, totals in diff.totals.items():
        for rule, sides in totals.by_rule.items():
            for currency in sorted(set(sides["old"]) | set(sides["new"])):
                old, new = sides["old"].get(currency, (0, 0)), sides["new"].get(currency, (0, 0))
                per_rule.add_row(cell(rule), trigger, currency, count_and_amount(old), count_and_amount(new))
    out.print(per_rule)
    outcomes = Table("on", "outcome", "old", "new", title="outcomes", title_justify="left")
    for trigger, outcome, old_count, new_count in outcome_lines(diff):
        outcomes.add_row(trigger, outcome, str(old_count), str(new_count))
    out.print(outcomes)
    newly = ", ".join(f"{n} for {a} {cur}" for cur, (n, a) in sorted(diff.newly_written_off.items())) or "none"
    click.echo(
        f"{header['base']} ({header['base_version']}) → {header['new']} ({header['new_version']}) "
        f"at {shown_time(header['at'])}: "
        f"{diff.invoices} open invoices, {diff.changed_invoices} changed; {header['chargebee_calls']} Chargebee calls"
    )
    click.echo(triggers_line(diff))
    click.echo(f"newly written off on any trigger, each invoice once: {newly}")
    click.echo(visible(diff.held))  # invoice ids and reasons come from Redis or the snapshot
    click.echo(visible(header["budgets"]))  # currencies come from Redis or the snapshot


COMMANDS = ()  # `rules diff` is registered on the `rules` group (reactor/cli/rules.py) by the decorator
