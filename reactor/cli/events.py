"""`reactor events replay`: stored events run again, named by id or selected by the fields ops think
in (invoice, customer, rule, outcome, event type, currency, a time window).

Registered on the `main` group by reactor/cli/__init__.py. A selection of more than one event asks
first (`--yes` skips the question, and is required without a terminal); `--dry-run`, with ids or a
selection, shows what the rules in force would decide now, calling, enqueueing and recording nothing.
Otherwise a replay only enqueues `reactor.jobs.evaluate`: the job fetches the invoice fresh and
keeps every safeguard.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import datetime, timezone

import click
from rich.table import Table

from ..console.deadletters import DeadLetterError, DeadLetters
from ..console.replay import ReplayCandidate, ReplaySelection, decide_now, gather, named
from ..jobs.audit import OUTCOMES, AuditLog
from ..keys import Keys
from ..rules import RulesError, load_rules
from .helpers import (
    cell,
    command_settings,
    confirm_or_refuse,
    connect,
    console,
    current_actor,
    end_of_replay,
    one_site,
    parse_since,
    plural,
    say,
    site_option,
    warn,
)
from .identity import acting_person, user_option


@click.group()
def events() -> None:
    """Stored events (kept REACTOR_EVENT_TTL, 30 days by default)."""


@events.command("replay")
@click.argument("event_ids", nargs=-1)
@click.option("--invoice", default=None, help="Events of this invoice id.")
@click.option("--customer", default=None, help="Events whose invoice belongs to this customer id.")
@click.option("--rule", default=None, help="Events with a decision by this rule.")
@click.option("--outcome", "outcomes", multiple=True, help="Events with a record of these outcomes (repeat, or a,b).")
@click.option("--event-type", default=None, help="Events of this type, e.g. payment_failed.")
@click.option("--currency", default=None, help="Events whose invoice is in this currency, e.g. USD.")
@click.option("--since", default=None, help="Decided since: ISO time or a duration back from now (30m, 2h, 3d).")
@click.option("--until", default=None, help="Decided until: ISO time or a duration back from now.")
@click.option("--dry-run", is_flag=True, help="Show what the rules in force decide now; call and enqueue nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before replaying more than one selected event.")
@user_option
@site_option
def events_replay(
    event_ids: tuple[str, ...], dry_run: bool, yes: bool, user_name: str | None, site: str | None, **chosen: object
) -> None:
    """Evaluate stored events again, dead or not, under new job ids (replay-EVENT-TIME).

    Name event ids, or select them with the options (any record of the event in the audit trail
    counts for --rule and --outcome). Safe on an event already acted on: an invoice we wrote off,
    or one since paid, is recorded as such and not written off again. Exit 1 if any is refused."""
    selection = _selection(chosen)
    if event_ids and selection.chooses_anything():
        raise click.UsageError("name event ids, or select with --invoice/--customer/--rule/..., not both")
    if not event_ids and not selection.chooses_anything():
        raise click.UsageError(
            "name event ids, or select with --invoice, --customer, --rule, --outcome, "
            "--event-type, --currency, --since/--until"
        )
    letters = _dead_letters(site, user_name, acting=not dry_run)
    if dry_run:  # first: no branch below, which enqueues, may be reached by a dry run
        found = _named(letters, event_ids) if event_ids else _gather(letters, selection)
        if found:
            _dry_run(letters, found)
        else:
            say("no stored events match (the audit trail names none in the window)")
        return
    if event_ids:
        _replay_ids(letters, list(event_ids))
        return
    found = _gather(letters, selection)
    if not found:
        say("no stored events match (the audit trail names none in the window)")
        return
    if len(found) > 1:
        confirm_or_refuse(f"Replay {plural(len(found), 'event')}?", yes, "add --yes")
    _replay_ids(letters, [candidate.event_id for candidate in found], progress=True)


def _selection(chosen: dict[str, object]) -> ReplaySelection:
    """The options as a ReplaySelection: outcomes split on commas (an unknown one is noted, since the
    trail may hold words of another release), times parsed as `reactor audit --since` reads them."""
    raw = chosen.pop("outcomes") or ()
    outcomes = [part.strip() for value in raw for part in str(value).split(",") if part.strip()]  # type: ignore[attr-defined]
    unknown = [o for o in outcomes if o not in OUTCOMES]
    if unknown:
        warn(f"note: unknown outcome {', '.join(unknown)}; known: {', '.join(OUTCOMES)}")
    since, until = (parse_since(str(chosen.pop(name))) if chosen.get(name) else None for name in ("since", "until"))
    chosen.pop("since", None), chosen.pop("until", None)
    texts = {name: None if value is None else str(value) for name, value in chosen.items()}
    return ReplaySelection(**texts, since=since, until=until, outcomes=frozenset(outcomes) or None)


def _dead_letters(site: str | None, user_name: str | None = None, acting: bool = False) -> DeadLetters:
    """The stored events and dead letters of the site `--site` names (or the only site); `acting`: for
    a replay a person answers for."""
    settings = one_site(command_settings(), site)
    connection = connect(settings)
    actor = acting_person(settings, connection, user_name, "replay events") if acting else current_actor()

    @functools.cache
    def version() -> str | None:  # read once per command, not once per replay's audit record
        return load_rules(settings.rules_path).version

    return DeadLetters(connection, settings, rules_version=version, actor=actor)


def _gather(letters: DeadLetters, selection: ReplaySelection) -> list[ReplayCandidate]:
    audit = AuditLog(letters.redis, Keys(letters.settings.key_prefix).audit())
    with _progress("reading the audit trail", None) as advance:
        return gather(audit, letters.events, selection, progress=lambda n: advance(n, absolute=True))


def _named(letters: DeadLetters, event_ids: tuple[str, ...]) -> list[ReplayCandidate]:
    audit = AuditLog(letters.redis, Keys(letters.settings.key_prefix).audit())
    with _progress("reading the audit trail", None) as advance:
        return named(audit, letters.events, event_ids, progress=lambda n: advance(n, absolute=True))


def _dry_run(letters: DeadLetters, found: list[ReplayCandidate]) -> None:
    try:
        ruleset = load_rules(letters.settings.rules_path)
    except RulesError as exc:
        raise click.ClickException(f"dry run needs the rules in force: {exc.problems[0]}") from None
    now = datetime.now(timezone.utc)
    table = Table("event", "type", "invoice", "customer", "last outcome", "now: action", "rule", "reason")
    for candidate in found:
        decision = decide_now(ruleset, candidate, now)
        latest = candidate.latest
        now_cells = (
            ("expired", "", "stored event gone: would be refused")
            if decision is None
            else (decision.action, decision.rule, decision.reason)
        )
        table.add_row(
            *map(
                cell,
                (
                    candidate.event_id,
                    candidate.event_type,
                    candidate.invoice_id,
                    candidate.customer_id,
                    latest.outcome if latest else "",
                    *now_cells,
                ),
            )
        )
    console().print(table)
    say(
        f"dry run: {plural(len(found), 'event')} would be replayed; nothing enqueued, Chargebee not called "
        "(the replayed job fetches the invoice fresh and may decide otherwise)"
    )


def _replay_ids(letters: DeadLetters, event_ids: list[str], progress: bool = False) -> None:
    refused = 0
    with _progress("replaying", len(event_ids) if progress else 0) as advance:
        for event_id in event_ids:
            try:
                job = letters.replay_event(event_id)
            except DeadLetterError as exc:
                refused += 1
                warn(f"not replayed: {exc}")
            else:
                say(f"queued {job.id} (invoice {(job.meta or {}).get('invoice_id') or '-'})")
            advance(1)
    end_of_replay(len(event_ids), "event", "queued", refused, summary=progress)


class _progress:
    """A progress bar on stderr when it is a terminal (none on a pipe, in cron or in tests)."""

    def __init__(self, what: str, total: int | None) -> None:
        self.what, self.total, self.bar = what, total, None

    def __enter__(self) -> Callable[..., None]:
        if self.total == 0 or not sys.stderr.isatty():
            return lambda *_a, **_k: None
        from rich.progress import Progress  # late: start-up time (rich.progress is only for a terminal)

        self.bar = Progress(console=console(stderr=True), transient=True)
        self.bar.start()
        task = self.bar.add_task(self.what, total=self.total)

        def advance(n: int, absolute: bool = False) -> None:
            if absolute:
                self.bar.update(task, completed=n)  # type: ignore[union-attr]
            else:
                self.bar.advance(task, n)  # type: ignore[union-attr]

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


COMMANDS = (events,)
