"""The on-call commands: `reactor audit`, `reactor dlq list|show|replay|purge` (`reactor events replay`
is in reactor/cli/events.py).

Registered on the `main` group by reactor/cli/__init__.py. Written for someone woken at 3 a.m.: every refusal
says why and what to do instead, bulk changes are confirmed, and nothing crashes on a job or an
event that has expired in the meantime.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

import click
import redis
from rich.cells import cell_len
from rich.table import Table

from ..config import Settings
from ..console.archiving import audit_archive
from ..console.deadletters import DeadLetter, DeadLetterError, DeadLetters, redact, select
from ..jobs.audit import FIELDS, OUTCOMES, AuditFilter, AuditLog, AuditRecord, export_lines, spreadsheet_cell, visible
from ..jobs.audit.archive import ArchiveUnavailable, AuditArchive
from ..jobs.audit.full_trail import AuditTrail
from ..keys import Keys
from ..rules import load_rules
from ..timestamps import shown_time
from .helpers import (
    cell,
    command_settings,
    confirm_or_refuse,
    connect,
    console,
    current_actor,
    each_site,
    end_of_replay,
    one_site,
    parse_duration,
    parse_since,
    plural,
    say,
    site_option,
    warn,
)
from .identity import acting_person, user_option

DEFAULT_TABLE_LIMIT = 200


def _since(value: str | None) -> datetime | None:
    return parse_since(value) if value else None


def _rules_version(settings: Settings) -> Callable[[], str | None]:
    """The version (hash) of the rules file in force, read once per command."""

    @functools.cache
    def version() -> str | None:
        return load_rules(settings.rules_path).version

    return version


def _letters_of(settings: Settings, user_name: str | None = None, acting: bool = False) -> DeadLetters:
    """The dead letters of the site `settings` are scoped to; `acting`: for a replay a person answers for
    (reactor/cli/identity.py)."""
    connection = connect(settings)
    actor = acting_person(settings, connection, user_name, "replay dead letters") if acting else current_actor()
    return DeadLetters(connection, settings, rules_version=_rules_version(settings), actor=actor)


def _dead_letters(site: str | None, user_name: str | None = None, acting: bool = False) -> DeadLetters:
    """The dead letters of the site `--site` names (or the only site): a job or an event id means
    nothing without its site."""
    return _letters_of(one_site(command_settings(), site), user_name, acting)


# -- audit ---------------------------------------------------------------------------------------


def _outcome_list(values: tuple[str, ...]) -> list[str] | None:
    outcomes = [part.strip() for value in values for part in value.split(",") if part.strip()]
    unknown = [o for o in outcomes if o not in OUTCOMES]
    if unknown:
        warn(f"note: unknown outcome {', '.join(unknown)}; known: {', '.join(OUTCOMES)}")
    return outcomes or None


AUDIT_HEADERS = ("at (UTC)", "event", "invoice", "rule", "action", "outcome", "amount", "mode", "rules")
"""The columns of `reactor audit`'s rows; each record's reason is printed below its row."""
GAP = "  "
REASON_MIN_WIDTH = 40
"""The narrowest a reason is wrapped to below its row; a terminal too narrow for the rows with every id
whole and this much beside the time gets blocks instead (`_audit_blocks`)."""


def _audit_cells(record: AuditRecord) -> tuple[tuple[str, ...], str]:
    """A record's cells in AUDIT_HEADERS order and its reason, as shown (control characters escaped)."""
    values = (
        shown_time(record.at),
        record.event_id,
        record.invoice_id,
        record.rule,
        record.action,
        getattr(record.outcome, "value", record.outcome),
        record.amount_text(),
        record.mode,
        record.rules_version,
    )
    return tuple(visible("" if value is None else str(value)) for value in values), visible(record.reason or "")


def _wrapped(text: str, width: int, first: str, indent: int) -> list[str]:
    """`text` wrapped to `width`, after `first` and then `indent` spaces; a word longer than a line
    (an id in a reason) is left whole, for the terminal to wrap."""
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=first.ljust(indent),
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _audit_rows(rows: list[tuple[tuple[str, ...], str]], widths: list[int], width: int) -> Iterator[str]:
    """A header, then a row a record, every column as wide as its widest cell; the reason below the
    row, from the event column on, wrapped to the terminal."""

    def line(cells: Iterable[str]) -> str:
        return GAP.join(cell + " " * (size - cell_len(cell)) for cell, size in zip(cells, widths, strict=True))

    indent = widths[0] + len(GAP)
    yield line(AUDIT_HEADERS).rstrip()
    for cells, reason in rows:
        yield line(cells).rstrip()
        if reason:
            yield from _wrapped(reason, width, "", indent)


def _audit_blocks(rows: list[tuple[tuple[str, ...], str]], width: int) -> Iterator[str]:
    """The records for a terminal too narrow for rows: a line with the time, outcome and amount, then
    one line each for the event, invoice and rule, whole, the action (with the mode and rules
    version), and the reason wrapped below."""
    for (at, event, invoice, rule, action, outcome, amount, mode, version), reason in rows:
        yield GAP.join(part for part in (at, outcome, amount) if part)
        acted = ", ".join(part for part in (action, mode, f"rules {version}" if version else "") if part)
        for label, value in (("event", event), ("invoice", invoice), ("rule", rule), ("action", acted)):
            if value:
                yield f"  {label:<9}{value}"
        if reason:
            yield from _wrapped(reason, max(width, REASON_MIN_WIDTH), "  reason", 11)


def print_audit(records: Iterable[AuditRecord]) -> None:
    """The records as rows where every id fits whole on the terminal (a pipe is 240 columns wide),
    else as blocks: an id, an invoice, an event or a rule name is never cut or folded."""
    rows = [_audit_cells(record) for record in records]
    widths = [
        max(cell_len(cells[i]) for cells in [AUDIT_HEADERS, *(row for row, _ in rows)])
        for i in range(len(AUDIT_HEADERS))
    ]
    width = console().width
    fits = sum(widths) + len(GAP) * (len(widths) - 1) <= width and width - widths[0] - len(GAP) >= REASON_MIN_WIDTH
    for text in _audit_rows(rows, widths, width) if fits else _audit_blocks(rows, width):
        click.echo(text)


@click.group(invoke_without_command=True)
@click.option("--since", default=None, help="ISO time or a duration back from now: 30m, 2h, 3d.")
@click.option("--until", default=None, help="Only records before: ISO time or a duration back from now.")
@click.option("--invoice", default=None, help="Only this invoice id.")
@click.option("--event", "event_id", default=None, help="Only this event id.")
@click.option("--outcome", "outcomes", multiple=True, help="Only these outcomes (repeat, or comma-separated).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "jsonl"]), default="table", show_default=True)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help=f"The latest N (table default {DEFAULT_TABLE_LIMIT})."
)
@click.pass_context
@site_option
def audit(
    ctx: click.Context,
    since: str | None,
    until: str | None,
    invoice: str | None,
    event_id: str | None,
    outcomes: tuple[str, ...],
    fmt: str,
    limit: int | None,
    site: str | None,
) -> None:
    """Every decision: event, invoice, rule, outcome, amount, the rules version it was made under.

    Reads the archive (REACTOR_AUDIT_ARCHIVE) and the stream in Redis as one trail, each record once.
    The table shows amounts in major units (12.50 USD); csv and jsonl keep Chargebee's minor units
    (amount_due 1250 with currency USD) and stream every matching record unless --limit is given.
    With several sites and no --site, every site's records, a section per site (csv and jsonl gain
    a `site` field)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = command_settings()
    connection = connect(settings)
    filters = AuditFilter(
        since=_since(since),
        until=_since(until),
        invoice_id=invoice,
        event_id=event_id,
        outcomes=_outcome_list(outcomes),
    )
    for index, scoped in enumerate(each_site(settings, site)):
        trail = audit_trail(scoped, connection)
        try:
            if fmt != "table":
                exported = trail.query(filters) if limit is None else _latest(trail, filters, limit)
                if settings.several_sites:
                    exported_lines = site_lines(exported, fmt, scoped.site_name, header=index == 0)
                else:
                    exported_lines = export_lines(exported, fmt)
                for chunk in exported_lines:
                    click.echo(chunk, nl=False)
                continue
            if settings.several_sites:
                say(("" if index == 0 else "\n") + f"site {scoped.site_name}:", keep_newlines=True)
            _audit_table(trail, filters, limit)
        except ArchiveUnavailable as exc:
            raise click.ClickException(f"the audit archive could not be read: {exc}") from None


def audit_trail(settings: Settings, connection: redis.Redis) -> AuditTrail:
    """The archive and the stream of the site `settings` are scoped to, as one trail; the stream alone,
    said on stderr, when the archive cannot be listed."""
    log = AuditLog(connection, Keys(settings.key_prefix).audit())
    archive: AuditArchive | None = audit_archive(settings, connection)
    try:
        archive.segments()
    except ArchiveUnavailable as exc:
        warn(f"note: {exc}; showing only the records in Redis")
        archive = None
    return AuditTrail(log, archive)


def site_lines(records: Iterable[AuditRecord], fmt: str, site: str, *, header: bool) -> Iterator[str]:
    """`export_lines` with a `site` field first: jsonl objects gain the key, csv a first column (its
    header only when `header`, so several sites make one file)."""
    if fmt == "jsonl":
        for record in records:
            yield json.dumps({"site": site, **record.as_dict()}, sort_keys=True, ensure_ascii=True) + "\n"
        return
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=("site", "id", *FIELDS), extrasaction="ignore")
    if header:
        writer.writeheader()
    for record in records:
        cells = {k: "" if v is None else spreadsheet_cell(v) for k, v in record.as_dict().items()}
        writer.writerow({**cells, "site": site})
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    yield out.getvalue()


def _audit_table(trail: AuditTrail, filters: AuditFilter, limit: int | None) -> None:
    wanted = limit or DEFAULT_TABLE_LIMIT
    records = _latest(trail, filters, wanted + 1)
    more = len(records) > wanted
    records = records[-wanted:]
    if not records:
        say("no audit records match")
        return
    print_audit(records)
    note = "; older ones exist: use --since or --limit" if more else ""
    say(f"{plural(len(records), 'record')}, oldest first{note}")


def _latest(trail: AuditTrail, filters: AuditFilter, count: int) -> list[AuditRecord]:
    """The latest `count` matching records, oldest first."""
    return list(reversed(list(trail.query(filters, limit=count, newest_first=True))))


# -- dead letters --------------------------------------------------------------------------------


@click.group()
def dlq() -> None:
    """Dead letters: jobs that failed after their last retry. Replays re-decide on current rules."""


def _letters_table(letters: Iterable[DeadLetter], sites: Iterable[str] | None = None) -> Table:
    """The dead letters a row each; with `sites` (the site of each letter), a first `site` column."""
    named = list(sites) if sites is not None else None
    table = Table(*(("site",) if named is not None else ()), "job", "event", "type", "invoice", "last error")
    table.add_column("attempts")
    table.add_column("failed at (UTC)")
    for index, letter in enumerate(letters):
        table.add_row(
            *map(
                cell,
                (
                    *((named[index],) if named is not None else ()),
                    letter.job_id,
                    letter.event_id,
                    letter.event_type,
                    letter.invoice_id,
                    letter.last_error,
                    str(letter.attempts) + (f" (+{letter.replays} replay)" if letter.replays else ""),
                    shown_time(letter.failed_at),
                ),
            )
        )
    return table


@dlq.command("list")
@click.option("--event-type", default=None, help="Only dead letters of this event type, e.g. payment_failed.")
@click.option("--since", default=None, help="Only those that failed since: ISO time or 30m, 2h, 3d.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@site_option
def dlq_list(event_type: str | None, since: str | None, fmt: str, site: str | None) -> None:
    """Failed jobs, newest first: job, event, invoice, last error, attempts, failed at. With several
    sites and no --site, every site's, each row (and JSON object) naming its site."""
    settings = command_settings()
    everything: list[tuple[str, DeadLetter]] = []
    shown: list[tuple[str, DeadLetter]] = []
    for scoped in each_site(settings, site):
        mine = _letters_of(scoped).list()
        everything += [(scoped.site_name, letter) for letter in mine]
        shown += [(scoped.site_name, letter) for letter in select(mine, event_type, _since(since))]
    if fmt == "json":
        click.echo(json.dumps([{"site": name, **letter.as_dict()} for name, letter in shown], indent=2))
        return
    if not everything:
        say("no dead letters: nothing has failed (or everything was replayed or purged)")
        return
    if not shown:
        say(f"no dead letters match ({plural(len(everything), 'dead letter')} in all)")
        return
    sites = [name for name, _ in shown] if settings.several_sites else None
    console().print(_letters_table([letter for _, letter in shown], sites))
    total = f" of {len(everything)}" if len(shown) != len(everything) else ""
    where = " --site SITE" if settings.several_sites else ""
    say(
        f"{len(shown)}{total} dead letter{'s' if len(everything) != 1 else ''}; "
        f"`reactor dlq show{where} JOB` for details"
    )


@dlq.command("show")
@click.argument("job_or_event_id")
@site_option
def dlq_show(job_or_event_id: str, site: str | None) -> None:
    """One dead letter (by job id or event id): the stored event, the decision trail, the traceback."""
    letters = _dead_letters(site)
    found = letters.find(job_or_event_id)
    if not found:
        warn(f"{job_or_event_id}: no job and no dead letter for an event of that id (see `reactor dlq list`)")
        sys.exit(1)
    for letter in found:
        _show_one(letters, letter)


def _show_one(letters: DeadLetters, letter: DeadLetter) -> None:
    dead = letters.is_dead(letter.job_id)
    say(f"job:        {letter.job_id}" + ("" if dead else f"  (not a dead letter: status {letter.status})"))
    say(f"event:      {letter.event_id or '-'}  {letter.event_type or ''}")
    say(f"invoice:    {letter.invoice_id or '-'}")
    say(f"attempts:   {letter.attempts}" + (f" (replayed {letter.replays}x)" if letter.replays else ""))
    say(f"failed at:  {shown_time(letter.failed_at) or '-'}")
    say(f"last error: {letter.last_error}")
    event = letters.stored_event(letter.event_id)
    say("\n-- stored event (payment details redacted) --", keep_newlines=True)
    if letter.event_id is None:  # a triage job (it drains the inbox) or a re-check: no event of its own
        say("(none: this job does not evaluate one stored event; a replay runs it again)")
    elif event is None:
        say(
            f"(gone: the stored event has expired after {letters.settings.event_ttl // 86400} days, "
            "or was never stored; a replay cannot re-decide it)"
        )
    else:
        say(json.dumps(redact(event), indent=2, sort_keys=True), keep_newlines=True)
    say("\n-- decision trail --", keep_newlines=True)
    trail = letters.trail(letter, (event or {}).get("occurred_at"))
    if trail:
        print_audit(trail)
    else:
        say("(no audit records for this event)")
    say("\n-- traceback --", keep_newlines=True)
    say(letter.traceback.rstrip() or "(none recorded)", keep_newlines=True)
    say("")


def _select(
    letters: DeadLetters, job_ids: tuple[str, ...], everything: bool, event_type: str | None, since: str | None
) -> tuple[list[str], bool]:
    """The job ids to act on, and whether they were chosen in bulk (which asks for a confirmation)."""
    if job_ids and (everything or event_type or since):
        raise click.UsageError("name job ids, or select with --all/--event-type/--since, not both")
    if not job_ids and not (everything or event_type or since):
        raise click.UsageError("name job ids, or select with --all (optionally with --event-type/--since)")
    if job_ids:
        return list(job_ids), False
    return [letter.job_id for letter in letters.list(event_type=event_type, since=_since(since))], True


@dlq.command("replay")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter (narrow with --event-type/--since).")
@click.option("--event-type", default=None, help="Only dead letters of this event type.")
@click.option("--since", default=None, help="Only those that failed since: ISO time or 30m, 2h, 3d.")
@click.option("--dry-run", is_flag=True, help="List what would be replayed; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation of a bulk replay.")
@user_option
@site_option
def dlq_replay(
    job_ids: tuple[str, ...],
    replay_all: bool,
    event_type: str | None,
    since: str | None,
    dry_run: bool,
    yes: bool,
    user_name: str | None,
    site: str | None,
) -> None:
    """Run dead letters again: current rules, the invoice fetched fresh, the same safeguards.

    A replay cannot write an invoice off twice: the written-off mark, the fresh invoice and the
    idempotency key all stop a second write-off. Exit 1 if any id could not be replayed."""
    letters = _dead_letters(site, user_name, acting=not dry_run)
    targets, bulk = _select(letters, job_ids, replay_all, event_type, since)
    if not targets:
        say("no dead letters to replay")
        return
    if dry_run:
        chosen = []
        for job_id in targets:
            if letters.is_dead(job_id):
                chosen.append(letters.get(job_id))
            else:
                warn(f"would refuse {job_id}: not in the dead letters")
        console().print(_letters_table(chosen))
        say(f"dry run: {plural(len(targets), 'dead letter')} would be replayed; nothing requeued")
        return
    if bulk:
        confirm_or_refuse(f"Replay {plural(len(targets), 'dead letter')}?", yes, "add --yes")
    refused = 0
    for job_id in targets:
        try:
            job = letters.replay(job_id)
        except DeadLetterError as exc:
            refused += 1
            warn(f"not replayed: {exc}")
            continue
        meta = job.meta or {}
        say(f"requeued {job.id} (event {meta.get('event_id') or '-'}, invoice {meta.get('invoice_id') or '-'})")
    end_of_replay(len(targets), "dead letter", "requeued", refused)


@dlq.command("purge")
@click.option("--older-than", "older_than", required=True, help="Age of the failure, e.g. 30d, 12h.")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@site_option
def dlq_purge(older_than: str, dry_run: bool, yes: bool, site: str | None) -> None:
    """Delete dead letters that failed longer ago than --older-than (the job and its registry entry)."""
    age = parse_duration(older_than)
    letters = _dead_letters(site)
    candidates = letters.purge(age, dry_run=True)
    if not candidates:
        say(f"no dead letters older than {older_than}")
        return
    console().print(_letters_table(candidates))
    if dry_run:
        say(f"dry run: {plural(len(candidates), 'dead letter')} would be deleted")
        return
    confirm_or_refuse(f"Delete {plural(len(candidates), 'dead letter')} for good?", yes, "add --yes")
    purged = letters.purge(age, label=older_than)
    say(f"purged {plural(len(purged), 'dead letter')} (recorded in the audit trail)")


COMMANDS = (audit, dlq)
