"""`reactor held list|release`: the write-offs a budget held back (reactor/jobs/held.py)."""

from __future__ import annotations

import click
from rich.table import Table
from rq import Queue

from ..jobs.held import MAX_REASON, list_held, release
from ..timestamps import shown_time
from .helpers import INVOICE_ID, cell, command_settings, connect, console, each_site, one_site, site_option
from .identity import acting_person, user_option


@click.group()
def held() -> None:
    """Write-offs held back by a budget (limits.max_per_day, limits.max_count_per_hour) or undone (reactor undo)."""


@held.command("list")
@site_option
def held_list(site: str | None) -> None:
    """Every held write-off, oldest first, with the reason it was held; with several sites and no
    --site, every site's, each row naming its site."""
    settings = command_settings()
    scoped = each_site(settings, site)
    connection = connect(settings)
    items = [(each.site_name, item) for each in scoped for item in list_held(connection, each.key_prefix)]
    if not items:
        click.echo("no held write-offs")
        return
    with_site = settings.several_sites
    table = Table(*(("site",) if with_site else ()), "invoice", "rule", "amount", "held at (UTC)", "reason")
    for site_name, item in items:
        shown = (item.invoice_id, item.rule, item.amount_text(), shown_time(item.held_at), item.reason)
        table.add_row(*map(cell, ((site_name,) if with_site else ()) + shown))
    console().print(table)
    where = " --site SITE" if with_site else ""
    click.echo(f"{len(items)} held; release with `reactor held release{where} INVOICE...` or `--all`")


@held.command("release")
@click.argument("invoice_ids", nargs=-1, type=INVOICE_ID)
@click.option("--all", "release_all", is_flag=True, help="Release every held write-off.")
@click.option("--reason", default="", help="Why, for the audit trail (recorded with your user@host).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@user_option
@site_option
def held_release(
    invoice_ids: tuple[str, ...], release_all: bool, reason: str, yes: bool, user_name: str | None, site: str | None
) -> None:
    """Hand held write-offs back to a worker: it fetches each invoice fresh and decides again (the
    rules still apply), without the budget check that held it. Recorded in the audit as released,
    with who and why (the dashboard's Release records the same)."""
    settings = one_site(command_settings(), site)
    connection = connect(settings)
    actor = acting_person(settings, connection, user_name, "release held write-offs")
    if release_all == bool(invoice_ids):
        raise click.UsageError("name the invoices to release, or give --all (not both)")
    if len(" ".join(reason.split())) > MAX_REASON:
        raise click.UsageError(f"give a --reason of at most {MAX_REASON} characters")
    held_now = {h.invoice_id: h for h in list_held(connection, settings.key_prefix)}
    waits = sorted(i for i, h in held_now.items() if h.awaits_approval and (release_all or i in invoice_ids))
    ids = [i for i in held_now if i not in waits] if release_all else [i for i in invoice_ids if i not in waits]
    where_site = f" --site {settings.site_name}" if settings.several_sites else ""
    for invoice_id in waits:
        click.echo(
            f"{invoice_id}: waits for approval, which a release does not skip: "
            f"`reactor approvals approve {invoice_id} --user NAME{where_site}`",
            err=True,
        )
    if not ids:
        click.echo("no held write-offs" if not waits else "nothing released")
        raise SystemExit(1 if waits else 0)
    if release_all and not yes:
        click.confirm(f"release {len(ids)} held write-offs past their budget?", abort=True)
    queue = Queue(settings.queue_name, connection=connection)
    done = release(connection, queue, ids, actor, prefix=settings.key_prefix, reason=reason)
    for invoice_id in sorted(set(ids) - set(done)):
        click.echo(f"{invoice_id}: not held (already released, or never held)", err=True)
    where = f" on {settings.site_name}" if settings.several_sites else ""
    click.echo(f"released {len(done)}{where}: {', '.join(done)}" if done else "nothing released")
    if len(done) != len(ids) or waits:
        raise SystemExit(1)


COMMANDS = (held,)
