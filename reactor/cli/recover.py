"""`reactor recover INVOICE [--transaction ID]`: reverse our write-off and apply the payment that came
back (reactor/console/recover.py). It moves money as `reactor undo` does, so it needs an approver's
`--user` once approvals are configured (reactor/cli/identity.py), and `--site` when several sites are."""

from __future__ import annotations

import click

from .. import ids
from ..chargebee import ChargebeeError
from ..console.recover import RecoveryRefused, recover_payment
from ..jobs import build_context
from ..jobs.audit import visible
from .helpers import (
    INVOICE_ID,
    ChargebeeId,
    chargebee_settings,
    command_settings,
    connect,
    one_site,
    say,
    site_option,
)
from .identity import acting_person, user_option


@click.command("recover")
@click.argument("invoice_id", type=INVOICE_ID)
@click.option(
    "--transaction",
    "transaction",
    type=ChargebeeId(ids.TRANSACTION),
    default=None,
    help="The payment to apply (a transaction id); default: the one payment seen for the invoice, else the "
    "customer's excess payments.",
)
@user_option
@site_option
def recover(invoice_id: str, transaction: str | None, user_name: str | None, site: str | None) -> None:
    """Money came back for INVOICE_ID, which the reactor wrote off: reverse the write-off (as `reactor
    undo` does) and apply the payment in Chargebee, so the invoice is paid by payment. A part payment
    leaves the rest due and the invoice held. Exits 1 when any step did not happen, saying what stands."""
    settings = chargebee_settings(one_site(command_settings(), site))
    connection = connect(settings)
    actor = acting_person(settings, connection, user_name, "recover payments")
    try:
        ctx = build_context(settings, connection)
    except ChargebeeError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        result = recover_payment(ctx, invoice_id, actor, transaction)
    except RecoveryRefused as exc:
        raise click.ClickException(visible(str(exc))) from None
    where = f" --site {settings.site_name}" if settings.several_sites else ""
    say(result.summary(f"reactor held release{where} {invoice_id}" if where else "reactor held release"))
    say(f"audit: recovered by {actor}")


COMMANDS = (recover,)
