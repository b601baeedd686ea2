"""`reactor approvals list|approve|decline|expire`: the write-offs that wait for approvers (rules.yaml
`approvals:` tiers; reactor/console/approvals.py). Approving and declining need `--user` and its password,
and `--site` when several sites are configured (users are the deployment's, every site's approvers)."""

from __future__ import annotations

from datetime import datetime, timezone

import click
from rich.table import Table
from rq import Queue

from ..config import Settings
from ..console.approvals import ApprovalRefused, approve, decline, expire_approvals, waiting
from ..jobs.audit import visible
from ..timestamps import shown_time
from .helpers import INVOICE_ID, cell, command_settings, connect, console, each_site, one_site, say, site_option
from .identity import acting_person, user_option


@click.group()
def approvals() -> None:
    """Write-offs above an approval tier, waiting for their approvers."""


@approvals.command("list")
@site_option
def approvals_list(site: str | None) -> None:
    """The approvals queue, oldest first: amount, tier, approvers so far, waiting since; with several
    sites and no --site, every site's, each row naming its site."""
    settings = command_settings()
    scoped = each_site(settings, site)
    connection = connect(settings)
    items = [(each.site_name, item) for each in scoped for item in waiting(connection, each.key_prefix)]
    if not items:
        say("no write-offs wait for approval")
        return
    now = datetime.now(timezone.utc)
    with_site = settings.several_sites
    columns = ("invoice", "amount", "tier", "approved by", "waiting since (UTC)", "reason")
    table = Table(*(("site",) if with_site else ()), *columns)
    for site_name, item in items:
        approved = ", ".join(f"{a['user']} {shown_time(a['at'])}" for a in item.approvals) or "-"
        needed = f"{item.tier} ({len(item.approvers)} of {item.approvers_needed})"
        shown = (item.invoice_id, item.amount_text(), needed, approved, shown_time(item.held_at), item.reason)
        table.add_row(*map(cell, ((site_name,) if with_site else ()) + shown))
    console().print(table)
    oldest = min(item.held_at or "" for _, item in items) if with_site else items[0][1].held_at
    where = " --site SITE" if with_site else ""
    say(
        f"{len(items)} waiting (oldest since {shown_time(oldest)}, now {shown_time(now.isoformat())}); "
        f"`reactor approvals approve{where} INVOICE --user NAME`"
    )


@approvals.command("approve")
@click.argument("invoice_id", type=INVOICE_ID)
@click.option("--reason", default="", help="Why, for the audit trail.")
@user_option
@site_option
def approvals_approve(invoice_id: str, reason: str, user_name: str | None, site: str | None) -> None:
    """Approve the write-off of INVOICE_ID as --user. The last approval its tier needs hands it to a
    worker, which fetches the invoice fresh and decides again (paid meanwhile: nothing written off)."""
    settings = one_site(command_settings(), site)
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
    say(done.summary() + _on(settings))


@approvals.command("decline")
@click.argument("invoice_id", type=INVOICE_ID)
@click.option("--reason", default="", help="Why, for the audit trail.")
@user_option
@site_option
def approvals_decline(invoice_id: str, reason: str, user_name: str | None, site: str | None) -> None:
    """Decline the write-off of INVOICE_ID as --user: nothing is written off; it stays held, declined,
    for people (`reactor held release` sends it through the approvals again)."""
    settings = one_site(command_settings(), site)
    connection = connect(settings)
    user = acting_person(settings, connection, user_name, "decline write-offs", always=True)
    try:
        done = decline(connection, invoice_id, user, prefix=settings.key_prefix, reason=reason)
    except ApprovalRefused as exc:
        raise click.ClickException(visible(str(exc))) from None
    say(done.summary() + _on(settings))


@approvals.command("expire")
@site_option
def approvals_expire(site: str | None) -> None:
    """Drop approvals older than REACTOR_APPROVAL_TTL, recording each (`reactor cron` does it too);
    with several sites and no --site, on every site."""
    settings = command_settings()
    scoped = each_site(settings, site)
    connection = connect(settings)
    counts = [
        (each.site_name, expire_approvals(connection, prefix=each.key_prefix, approval_ttl=each.approval_ttl))
        for each in scoped
    ]
    dropped = sum(count for _, count in counts)
    per_site = f" ({', '.join(f'{name}: {count}' for name, count in counts)})" if settings.several_sites else ""
    say(f"{dropped} approval{'s' if dropped != 1 else ''} expired{per_site}")


def _on(settings: Settings) -> str:
    """` (site NAME)` when the deployment has several sites: whose invoice it was."""
    return f" (site {settings.site_name})" if settings.several_sites else ""


COMMANDS = (approvals,)
