"""Who a person is on the command line: `--user NAME` and that user's password (asked on the terminal,
or read from REACTOR_USER_PASSWORD for scripts), checked against the named users
(reactor/console/users.py). The actions a person answers for (approve, decline, release, undo,
replay) record that name; they need an approver once approvals are configured: rules.yaml has
`approvals:` tiers, or any named user exists. Before that they record `user@host` as ever.
"""

from __future__ import annotations

import os

import click
import redis

from ..config import Settings
from ..console.users import User, UserError, UserStore
from ..rules import RulesError, load_rules
from .helpers import current_actor

PASSWORD_ENV = "REACTOR_USER_PASSWORD"

user_option = click.option(
    "--user",
    "user_name",
    default=None,
    metavar="NAME",
    help=f"Act as this named user (an approver or admin); its password is asked, or read from {PASSWORD_ENV}.",
)


def approvals_configured(settings: Settings, store: UserStore) -> bool:
    """Named users exist, or the rules file in force has approval tiers."""
    if store.any():
        return True
    try:
        return bool(load_rules(settings.rules_path).approvals)
    except (RulesError, OSError):
        return False  # no rules in force: no worker writes anything off either


def signed_in(settings: Settings, connection: redis.Redis, user_name: str) -> User:
    """The named user, once their password is given; a one-line refusal otherwise."""
    store = UserStore(connection, settings)
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = click.prompt(f"password for {user_name}", hide_input=True, err=True)
    try:
        found = store.authenticate(user_name, password)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    if found is None:
        raise click.ClickException(f"wrong user name or password for {user_name!r}")
    return found


def acting_person(
    settings: Settings, connection: redis.Redis, user_name: str | None, what: str, *, always: bool = False
) -> str:
    """The actor to record for `what` (e.g. "release held write-offs"): the named approver, or
    `user@host` while approvals are not configured and `always` is False. Refuses with a sentence."""
    store = UserStore(connection, settings)
    if user_name is None:
        try:
            required = always or approvals_configured(settings, store)
        except UserError as exc:
            raise click.ClickException(str(exc)) from None
        if required:
            raise click.ClickException(
                f"to {what} you must say who you are: give --user NAME (an approver or admin; its password is "
                f"asked, or read from {PASSWORD_ENV}); `reactor users add` creates users"
            )
        return current_actor()
    user = signed_in(settings, connection, user_name)
    if not user.may("approver"):
        raise click.ClickException(f"{user.name} has the role {user.role}: only an approver or an admin may {what}")
    return user.name
