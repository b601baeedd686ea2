"""`reactor undo INVOICE --reason "..."`: reverse a write-off the reactor made (reactor/console/undo.py)."""

from __future__ import annotations

import click

from ..chargebee import ChargebeeError
from ..config import Settings
from ..console.undo import UndoRefused, undo_write_off
from ..jobs import build_context
from ..jobs.audit import visible
from .helpers import INVOICE_ID, chargebee_settings, command_settings, connect, one_site, say, site_option
from .identity import acting_person, user_option


@click.command("undo")
@click.argument("invoice_id", type=INVOICE_ID)
@click.option("--reason", required=True, help="Why; recorded in the audit trail with your user@host.")
@user_option
@site_option
def undo(invoice_id: str, reason: str, user_name: str | None, site: str | None) -> None:
    """Reverse the reactor's write-off of INVOICE_ID in Chargebee (its credit note removed, the invoice
    unpaid again) and hold the invoice: no job writes it off again until `reactor held release`.
    Refuses a write-off the reactor did not make. Exits 1, changing nothing, when it cannot."""
    settings = chargebee_settings(one_site(command_settings(), site))
    connection = connect(settings)
    actor = acting_person(settings, connection, user_name, "undo write-offs")
    try:
        ctx = build_context(settings, connection)
    except ChargebeeError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        result = undo_write_off(ctx, invoice_id, actor, reason)
    except UndoRefused as exc:  # it names the id as given: control characters shown escaped, as `reactor trace` does
        raise click.ClickException(visible(str(exc))) from None
    say(result.summary())
    say(f'held with reason "undone": no job writes it off until `reactor held release{_flag(settings)} {invoice_id}`')
    say(f"audit: undone by {actor}: {' '.join(reason.split())}")


def _flag(settings: Settings) -> str:
    """` --site NAME` when the deployment has several sites: the command to run next names it."""
    return f" --site {settings.site_name}" if settings.several_sites else ""


COMMANDS = (undo,)
