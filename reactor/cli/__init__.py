"""The `reactor` command: the `main` group, and each module's commands registered on it."""

import os

import click

from ..config import process_environment, secrets_in
from ..redaction import redact, remember
from . import approvals, archive, diff, events, held, ops, processes, recover, report, rules, sweep, trace, undo, users
from .helpers import start_logging


class RedactedGroup(click.Group):
    """The command group whose refusals (`Error: ...`, printed by click itself) are redacted as the
    lines of `say` are: a refusal may quote a rules file or a URL."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            exc.message = redact(exc.message)
            raise


@click.group(cls=RedactedGroup)
@click.version_option(package_name="chargebee-reactor")
def main() -> None:
    """chargebee-reactor: Chargebee webhooks in, rule-driven invoice write-offs out."""
    start_logging(os.environ)  # the command's edge: its environment is read here and passed on
    remember(secrets_in(process_environment()))  # never printed nor logged, `.env` included


for _command in (
    *processes.COMMANDS,
    *rules.COMMANDS,
    *diff.COMMANDS,
    *ops.COMMANDS,
    *archive.COMMANDS,
    *events.COMMANDS,
    *held.COMMANDS,
    *sweep.COMMANDS,
    *undo.COMMANDS,
    *recover.COMMANDS,
    *report.COMMANDS,
    *trace.COMMANDS,
    *approvals.COMMANDS,
    *users.COMMANDS,
):
    main.add_command(_command)
