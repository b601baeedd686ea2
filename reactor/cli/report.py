"""`reactor report bad-debt`: the register of the write-offs the reactor made, for VAT bad-debt
relief and for finance (reactor/console/bad_debt.py). A report: it writes nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlsplit

import click

from ..chargebee import ChargebeeError
from ..config import Settings
from ..console.bad_debt import COLUMNS, FactCache, RegisterRow, gather
from ..console.bad_debt_formats import notes, to_csv, to_json, to_markdown
from ..jobs import build_context
from ..jobs.audit import visible
from ..jobs.recovery import open_candidates
from .helpers import chargebee_settings, command_settings, connect, parse_since, say


@click.group()
def report() -> None:
    """Reports for finance; they write nothing."""


def site_name(settings: Settings) -> str:
    """The Chargebee site the rows belong to: its name, or the API host when only a base URL is set."""
    return settings.chargebee_site or urlsplit(settings.api_base or "").hostname or ""


def _until(value: str | None) -> datetime | None:
    """`--to`: a date counts whole (up to its last moment); a time or a duration as given."""
    if not value:
        return None
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise click.BadParameter(f"{value} is not a date") from None
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1, microseconds=-1)
    return parse_since(value)


@report.command("bad-debt")
@click.option("--from", "since", default=None, help="Write-offs from: a date, an ISO time or a duration back (90d).")
@click.option("--to", "until", default=None, help="Write-offs up to: a date (the whole day) or an ISO time.")
@click.option("--country", default=None, help="Only invoices billed to this country (ISO code, e.g. GB).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]), default="table", show_default=True
)
def bad_debt(since: str | None, until: str | None, country: str | None, fmt: str) -> None:
    """One row per write-off the reactor made: invoice number and dates, customer and VAT number,
    billing country, total and tax, the amount written off and the tax within it, when, from when
    VAT relief may be claimed (REACTOR_RELIEF_DELAYS), payments received after, and its status
    (claimable, not yet, recovered, undone; a country without a rule says so). Invoices and customers
    are fetched from Chargebee once each, under the shared rate limit; nothing is written."""
    settings = chargebee_settings(command_settings())
    connection = connect(settings)
    try:
        ctx = build_context(settings, connection, records=False)
    except ChargebeeError as exc:
        raise click.ClickException(str(exc)) from None
    client = ctx.chargebee
    fetchers = {"invoice": client.retrieve_invoice, "customer": client.retrieve_customer}
    unapplied: dict[str, int] = {}
    for candidate in open_candidates(connection, ctx.keys):
        unapplied[candidate.invoice_id] = unapplied.get(candidate.invoice_id, 0) + candidate.amount
    site = site_name(settings)
    delays = dict(settings.relief_delays)
    rows = gather(
        ctx.audit,
        FactCache(lambda kind, resource_id: fetchers[kind](resource_id)),
        site=site,
        delays=delays,
        today=datetime.now(timezone.utc).date(),
        since=parse_since(since) if since else None,
        until=_until(until),
        unapplied=unapplied,
    )
    if country:
        rows = [row for row in rows if row.country == country.strip().upper()]
    header = {"site": site, "from": since, "to": until, "country": country}
    if fmt == "csv":
        click.echo(to_csv(rows), nl=False)
    elif fmt == "json":
        click.echo(to_json(rows, header, delays), nl=False)
    elif fmt == "markdown":
        click.echo(to_markdown(rows, header, delays), nl=False)
    else:
        _table(rows, delays)


def _table(rows: list[RegisterRow], delays: dict[str, int]) -> None:
    """Aligned columns, each cell whole on one line (a register is read and copied, never folded)."""
    if not rows:
        say("no write-offs of the reactor's match")
    else:
        cells = [list(COLUMNS), *([visible(row.values[c]) for c in COLUMNS] for row in rows)]
        widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
        for line in cells:
            say("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip())
    for note in notes(delays):
        say(f"note: {note}")


COMMANDS = (report,)
