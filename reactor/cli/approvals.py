"""`reactor approvals list|approve|decline|expire`: the write-offs that wait for approvers (rules.yaml
`approvals:` tiers; reactor/console/approvals.py). Approving and declining need `--user` and its password."""

from __future__ import annotations

from datetime import datetime, timezone

import click
from rich.table import Table
from rq import Queue

from ..console.approvals import ApprovalRefused, approve, decline, expire_approvals, waiting
from ..jobs.audit import visible
from ..timestamps import shown_time
from .helpers import INVOICE_ID, cell, command_settings, connect, console, say
from .identity import acting_person, user_option


@click.group()
def approvals() -> None:
    """Write-offs above an approval tier, waiting for their approvers."""


@approvals.command("list")
def approvals_list() -> None:
    """The approvals queue, oldest first: amount, tier, approvers so far, waiting since."""
    settings = command_settings()
    items = waiting(connect(settings), settings.key_prefix)
    if not items:
        say("no write-offs wait for approval")
        return
    now = datetime.now(timezone.utc)
    table = Table("invoice", "amount", "tier", "approved by", "waiting since (UTC)", "reason")
    for item in items:
        approved = ", ".join(f"{a['user']} {shown_time(a['at'])}" for a in item.approvals) or "-"
        needed = f"{item.tier} ({len(item.approvers)} of {item.approvers_needed})"
        table.add_row(
            *map(cell, (item.invoice_id, item.amount_text(), needed, approved, shown_time(item.held_at), item.reason))
        )
    console().print(table)
    oldest = items[0].held_at
    say(
        f"{len(items)} waiting (oldest since {shown_time(oldest)}, now {shown_time(now.isoformat())}); "
        "`reactor approvals approve INVOICE --user NAME`"
    )


@approvals.command("approve")
@click.argument("invoice_id", type=INVOICE_ID)
@click.option("--reason", default="", help="Why, for the audit trail.")
@user_option
def approvals_approve(invoice_id: str, reason: str, user_name: str | None) -> None:
    """Approve the write-off of INVOICE_ID as --user. The last approval its tier needs hands it to a
    worker, which fetches the invoice fresh and decides again (paid meanwhile: nothing written off)."""
    settings = command_settings()
    connection = connect(settings)
    user = acting_person(settings, connection, user_name, "approve write-offs", always=True)
    queue = Queue(settings.queue_name, connection=connection)
    try:
        done = approve(
            connection,
            queue,
            invoice_id,
            user,
            prefix=settings.key_prefix,
            approval_ttl=settings.approval_ttl,
            reason=reason,
        )
    except ApprovalRefused as exc:
        raise click.ClickException(visible(str(exc))) from None
    say(done.summary())


@approvals.command("decline")
@click.argument("invoice_id", type=INVOICE_ID)
@click.option("--reason", default="", help="Why, for the audit trail.")
@user_option
def approvals_decline(invoice_id: str, reason: str, user_name: str | None) -> None:
    """Decline the write-off of INVOICE_ID as --user: nothing is written off; it stays held, declined,
    for people (`reactor held release` sends it through the approvals again)."""
    settings = command_settings()
    connection = connect(settings)
    user = acting_person(settings, connection, user_name, "decline write-offs", always=True)
    try:
        done = decline(connection, invoice_id, user, prefix=settings.key_prefix, reason=reason)
    except ApprovalRefused as exc:
        raise click.ClickException(visible(str(exc))) from None
    say(done.summary())


@approvals.command("expire")
def approvals_expire() -> None:
    """Drop approvals older than REACTOR_APPROVAL_TTL, recording each (`reactor cron` does it too)."""
    settings = command_settings()
    dropped = expire_approvals(connect(settings), prefix=settings.key_prefix, approval_ttl=settings.approval_ttl)
    say(f"{dropped} approval{'s' if dropped != 1 else ''} expired")


COMMANDS = (approvals,)
