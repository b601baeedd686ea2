"""The `reactor` command: the `main` group, and each module's commands registered on it."""

import click

from ..logs import setup_logging
from . import held, ops, processes, rules, sweep


@click.group()
@click.version_option(package_name="chargebee-reactor")
def main() -> None:
    """chargebee-reactor: Chargebee webhooks in, rule-driven invoice write-offs out."""
    setup_logging()


for _command in (*processes.COMMANDS, *rules.COMMANDS, *ops.COMMANDS, *held.COMMANDS, *sweep.COMMANDS):
    main.add_command(_command)
