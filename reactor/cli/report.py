"""`reactor report bad-debt`: the register of the write-offs the reactor made, for VAT bad-debt
relief and for finance (reactor/console/bad_debt.py). A report: it writes nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import click
import redis

from ..chargebee import ChargebeeError
from ..config import Settings
from ..console.bad_debt import COLUMNS, FactCache, RegisterRow, gather
from ..console.bad_debt_formats import notes, to_csv, to_json, to_markdown
from ..jobs import build_context
from ..jobs.audit import visible
from ..jobs.recovery import open_candidates
from .helpers import chargebee_settings, command_settings, connect, each_site, parse_since, say, site_option
from .ops import audit_trail


@click.group()
def report() -> None:
    """Reports for finance; they write nothing."""


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
@site_option
def bad_debt(since: str | None, until: str | None, country: str | None, fmt: str, site: str | None) -> None:
    """One row per write-off the reactor made: invoice number and dates, customer and VAT number,
    billing country, total and tax, the amount written off and the tax within it, when, from when
    VAT relief may be claimed (REACTOR_RELIEF_DELAYS), payments received after, and its status
    (claimable, not yet, recovered, undone; a country without a rule says so). Invoices and customers
    are fetched from Chargebee once each, under the shared rate limit; nothing is written. Without
    --site, every configured site's rows, each naming its site."""
    settings = command_settings()
    scoped = [chargebee_settings(each) for each in each_site(settings, site)]
    connection = connect(scoped[0])
    delays = dict(settings.relief_delays)
    window = (parse_since(since) if since else None, _until(until))
    rows: list[RegisterRow] = []
    for each in scoped:
        rows += _site_rows(each, connection, delays, window)
    if country:
        rows = [row for row in rows if row.country == country.strip().upper()]
    header = {"site": ", ".join(each.site_name for each in scoped), "from": since, "to": until, "country": country}
    if fmt == "csv":
        click.echo(to_csv(rows), nl=False)
    elif fmt == "json":
        click.echo(to_json(rows, header, delays), nl=False)
    elif fmt == "markdown":
        click.echo(to_markdown(rows, header, delays), nl=False)
    else:
        _table(rows, delays)


def _site_rows(
    settings: Settings,
    connection: redis.Redis,
    delays: dict[str, int],
    window: tuple[datetime | None, datetime | None],
) -> list[RegisterRow]:
    """The register rows of the one site `settings` are scoped to, its facts fetched with its own
    client (nothing recorded), each row naming the site as configured (REACTOR_SITES, CHARGEBEE_SITE,
    or `default`)."""
    try:
        ctx = build_context(settings, connection, records=False)
    except ChargebeeError as exc:
        raise click.ClickException(str(exc)) from None
    client = ctx.chargebee
    fetchers = {"invoice": client.retrieve_invoice, "customer": client.retrieve_customer}
    unapplied: dict[str, int] = {}
    for candidate in open_candidates(connection, ctx.keys):
        unapplied[candidate.invoice_id] = unapplied.get(candidate.invoice_id, 0) + candidate.amount
    return gather(
        audit_trail(settings, connection),
        FactCache(lambda kind, resource_id: fetchers[kind](resource_id)),
        site=settings.site_name,
        delays=delays,
        today=datetime.now(timezone.utc).date(),
        since=window[0],
        until=window[1],
        unapplied=unapplied,
    )


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
