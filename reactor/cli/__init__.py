"""The `reactor` command: the `main` group, and each module's commands registered on it."""

import os

import click

from . import diff, events, held, ops, processes, rules, sweep, trace, undo
from .helpers import start_logging


@click.group()
@click.version_option(package_name="chargebee-reactor")
def main() -> None:
    """chargebee-reactor: Chargebee webhooks in, rule-driven invoice write-offs out."""
    start_logging(os.environ)  # the command's edge: its environment is read here and passed on


for _command in (
    *processes.COMMANDS,
    *rules.COMMANDS,
    *diff.COMMANDS,
    *ops.COMMANDS,
    *events.COMMANDS,
    *held.COMMANDS,
    *sweep.COMMANDS,
    *undo.COMMANDS,
    *trace.COMMANDS,
):
    main.add_command(_command)
