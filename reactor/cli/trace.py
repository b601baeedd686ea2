"""`reactor trace INVOICE_OR_EVENT_ID`: the whole story of an invoice in order (reactor/console/trace/
reads what reactor/jobs/trace/ and the webhook wrote)."""

from __future__ import annotations

import json
from typing import Any

import click

from ..console.trace import build_timeline, find_invoice, read_receipt, read_sources, render_text
from ..jobs.audit import visible
from .helpers import INVOICE_OR_EVENT_ID, command_settings, connect, one_site, site_option


@click.command("trace")
@click.argument("some_id", metavar="INVOICE_OR_EVENT_ID", type=INVOICE_OR_EVENT_ID)
@click.option(
    "--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)
@site_option
def trace(some_id: str, output: str, site: str | None) -> None:
    """Every event received (duplicates and stale ones too), every decision with the facts it read and
    which conditions were true, every Chargebee call (status, idempotency key, rate-limit wait), the
    outcome with its credit note, retries, dead letters, releases and replays with who did them.
    Given an event id, the trace of its invoice; for an event answered `ignored` or refused with 400,
    the receipt of its delivery. Exits 1 when nothing is kept about the id."""
    settings = one_site(command_settings(), site)
    connection = connect(settings)
    invoice_id = find_invoice(connection, settings, some_id)
    if invoice_id is None:
        _show_receipt(some_id, read_receipt(connection, settings, some_id), output)
        return
    sources = read_sources(connection, settings, invoice_id)
    steps = sources.timeline()
    if output == "json":
        payload = {"invoice_id": invoice_id, "asked": some_id, "steps": [step.as_dict() for step in steps]}
        payload["audit_scanned"] = sources.scanned
        payload["audit_archived_from"] = sources.archived_from
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    for line in render_text(invoice_id, steps).splitlines():
        click.echo(visible(line))
    for note in sources.notes(settings.audit_archive_url):
        click.echo(visible(f"note: {note}"))


def _show_receipt(event_id: str, receipt: dict[str, Any] | None, output: str) -> None:
    """An event that names no invoice: the receipt of its delivery (answered `ignored` or 400), or
    the refusal when nothing was ever kept about the id."""
    if receipt is None:
        raise click.ClickException(
            f"nothing kept about {event_id!r}: no invoice or event of that id (older than its trace's 400 days"
            " and not in the audit archive, or mistyped?)"
        )
    steps = build_timeline([receipt], [])
    if output == "json":
        payload = {"invoice_id": None, "asked": event_id, "steps": [step.as_dict() for step in steps]}
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    for line in render_text(event_id, steps, subject="event").splitlines():
        click.echo(visible(line))
    click.echo("note: the event names no invoice; its receipt is all that is kept")


COMMANDS = (trace,)
