"""`reactor users add|list|remove|passwd`: the named users who log in to the dashboard and answer for
approvals, releases, undos and replays (reactor/console/users.py). Once any user exists, changing
users needs `--user` of an admin (REACTOR_ADMIN_USER counts; a user may change their own password);
with REACTOR_ADMIN_USER set, so does the first. Each change appends a `user_changed` audit record."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial

import click
from rich.table import Table

from ..console.users import ROLES, UserError, UserStore, record_user_change
from .helpers import cell, command_settings, connect, console, current_actor, say
from .identity import PASSWORD_ENV, signed_in, user_option

Recorder = Callable[[str, str], str]
"""Appends a `user_changed` record: (the user changed, what changed) → its stream id."""


@click.group()
def users() -> None:
    """Named users and their roles: viewer (reads), approver (approves, releases, undoes, replays), admin."""


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("new password", hide_input=True, confirmation_prompt="repeat it", err=True)


def _store_for_change(user_name: str | None, target: str | None = None) -> tuple[UserStore, Recorder]:
    """The store and how to record a change (with the actor), once whoever runs the command may."""
    settings = command_settings()
    connection = connect(settings)
    store = UserStore(connection, settings)
    try:
        first = not store.any()
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    env_admin = bool(settings.admin_user and settings.admin_password)
    if first and not env_admin:
        # the first user: nobody to ask yet (whoever reaches this Redis may), recorded as user@host
        return store, partial(record_user_change, connection, settings, current_actor())
    if user_name is None:
        if first:
            raise click.ClickException(
                "REACTOR_ADMIN_USER is set: give --user NAME of that admin (its password is asked, or read from "
                f"{PASSWORD_ENV}) to add the first user"
            )
        raise click.ClickException("users exist: give --user NAME of an admin to change users")
    actor = signed_in(settings, connection, user_name)
    if not actor.may("admin") and actor.name != target:
        raise click.ClickException(f"{actor.name} has the role {actor.role}: only an admin may change users")
    who = f"{actor.name} (REACTOR_ADMIN_USER)" if actor.from_environment else actor.name
    return store, partial(record_user_change, connection, settings, who)


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@user_option
def users_add(name: str, role: str, password_stdin: bool, user_name: str | None) -> None:
    """Add a user (the password is asked twice, or read with --password-stdin). With REACTOR_ADMIN_USER
    set, the first user too needs --user of that admin; every change is in the audit trail."""
    store, record = _store_for_change(user_name)
    if role != "admin" and not store.settings.admin_user and not store.any():
        raise click.ClickException("the first user must be an admin (--role admin): only an admin may add the others")
    try:
        user = store.add(name, role, _new_password(password_stdin))
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    record(user.name, f"added {user.name} with the role {user.role}")
    say(f"added {user.name} ({user.role})")


@users.command("list")
def users_list() -> None:
    """Every named user with their role (REACTOR_ADMIN_USER is an admin besides them)."""
    settings = command_settings()
    try:
        found = UserStore(connect(settings), settings).list()
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    if not found:
        say("no named users")
        return
    table = Table("user", "role", "created (UTC)")
    for user in found:
        table.add_row(cell(user.name), cell(user.role), cell(user.created))
    console().print(table)


@users.command("remove")
@click.argument("name")
@user_option
def users_remove(name: str, user_name: str | None) -> None:
    """Remove a user; their dashboard sessions end at their next request."""
    store, record = _store_for_change(user_name)
    try:
        before = store.get(name)
        store.remove(name)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    role = f" (role {before.role})" if before is not None else ""
    record(name, f"removed {name}{role}")
    say(f"removed {name}")


@users.command("passwd")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default=None, help="Also change the role (admins only).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@user_option
def users_passwd(name: str, role: str | None, password_stdin: bool, user_name: str | None) -> None:
    """Change a user's password (and role with --role)."""
    store, record = _store_for_change(user_name, target=None if role else name)
    try:
        before = store.get(name)
        user = store.update(name, password=_new_password(password_stdin), role=role)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    change = f"password changed for {user.name}"
    if before is not None and before.role != user.role:
        change += f"; role {before.role} -> {user.role}"
    record(user.name, change)
    say(f"changed {user.name} ({user.role})")


COMMANDS = (users,)
