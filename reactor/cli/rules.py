"""`reactor rules check|explain|test`: what ops run before and after editing rules.yaml.

check validates a file and names every problem by file:line:col. explain shows, for one event or
one invoice fetched from Chargebee, every rule in order with every condition's expected and actual
value, pass or fail, and the rule that decided. test runs the cases written next to rules.yaml (see
reactor.rules.cases) and exits 1 when one fails, so CI refuses a rules edit that changes a
decision nobody meant to change.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.table import Table
from rich.text import Text

from ..chargebee import ChargebeeClient, ChargebeeError
from ..config import Settings
from ..ingest.envelope import Event
from ..jobs.facts import complete_facts
from ..redaction import redact
from ..rules import RulesError, explain, format_explanation, load_rules
from ..rules.cases import CasesError, default_cases_path, load_cases, run_cases
from ..rules.facts import unresolved
from ..rules.operators import MAX_MATCH_TEXT
from ..rules.relief import relief_warnings
from .helpers import INVOICE_ID, chargebee_settings, command_settings, one_site, site_option
from .helpers import console as wide_console


def parse_time(value: str) -> datetime:
    """An ISO time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO time: {value!r}", param_hint="--at") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _load_ruleset(path: Path) -> Any:
    try:
        return load_rules(path)
    except RulesError as exc:
        for problem in exc.problems:
            click.echo(redact(str(problem)), err=True)
        raise click.ClickException(f"{path}: refused; fix it first (`reactor rules check`)") from None


def read_event_file(path: Path, limit: int) -> dict[str, Any]:
    """The event in `path`, read as the webhook reads a body: at most `limit` bytes (the webhook's
    REACTOR_MAX_BODY_BYTES, 1 MiB by default; a bigger file, or /dev/zero, is refused after reading
    that much), UTF-8 JSON, one object. Every refusal is one line."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise click.ClickException(
            f"{path} is larger than {limit} bytes, the webhook's body limit (REACTOR_MAX_BODY_BYTES); "
            "Chargebee would not get such an event accepted either"
        )
    try:
        event = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise click.ClickException(f"{path} is not UTF-8 text") from None
    except ValueError as exc:
        raise click.ClickException(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise click.ClickException(f"{path} is nested too deeply to be a Chargebee event") from None
    if not isinstance(event, dict):
        raise click.ClickException(f"{path} must hold one JSON object, a Chargebee event")
    return event


def _invoice_facts(invoice_id: str, event_type: str, settings: Settings, ruleset: Any, now: datetime) -> Any:
    """The invoice fresh from Chargebee as an event, completed as the worker completes it: the
    customer or subscription fetched when a rule that could lead to a write-off reads it."""
    if not settings.api_base:
        raise click.ClickException(
            "no Chargebee configured: set CHARGEBEE_SITE (or CHARGEBEE_API_BASE) and the API key"
        )
    client = ChargebeeClient(settings.api_base, settings.chargebee_api_key, timeout=settings.http_timeout)
    try:
        invoice = client.retrieve_invoice(invoice_id)
    except ChargebeeError as exc:
        raise click.ClickException(f"cannot fetch invoice {invoice_id}: {exc}") from None
    event = {
        "id": f"explain-{invoice_id}",
        "event_type": event_type,
        "api_version": "v2",
        "source": "reactor_explain",
        "content": {"invoice": invoice},
    }
    try:
        return complete_facts(client, ruleset, Event.from_data(event), now)
    except ChargebeeError as exc:
        raise click.ClickException(f"cannot fetch what the rules read about invoice {invoice_id}: {exc}") from None


@click.group()
def rules() -> None:
    """Check, explain and test rules.yaml."""


@rules.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
def rules_check(path: Path | None) -> None:
    """Validate a rules file; exit 1 with file:line:col for every problem."""
    # `sites:` may name only the sites this deployment serves (the home site's name without
    # REACTOR_SITES). A file named outright is checked whatever else the environment holds: when the
    # settings do not load, relief delays are checked against the defaults, and a file that names
    # sites is refused (they cannot be checked).
    try:
        settings = command_settings()
        sites: tuple[str, ...] | None = settings.site_names
        unknown = ""
    except click.ClickException as exc:
        if path is None:
            raise
        unknown = exc.format_message()
        click.echo(redact(f"warning: {unknown}; relief delays checked against the defaults"), err=True)
        settings, sites = Settings(), None
    path = path or settings.rules_path
    try:
        ruleset = load_rules(path, sites=sites)
        if sites is None and ruleset.site_limited:
            click.echo(f"{path}: its `sites:` cannot be checked, the settings do not load: {unknown}", err=True)
            sys.exit(1)
    except RulesError as exc:
        # Plain lines, never wrapped: editors and grep read file:line:col. Whole sentences, on ops' own
        # terminal, but redacted: the file may be a `.env` saved over rules.yaml.
        for problem in exc.problems:
            click.echo(redact(str(problem)), err=True)
        count = len(exc.problems)
        click.echo(f"{path}: {count} problem{'s' if count != 1 else ''}; rules refused", err=True)
        sys.exit(1)
    for warning in ruleset.warnings:  # the file is in force; these only point at likely mistakes
        click.echo(redact(f"{warning.file}:{warning.line}:{warning.col}: warning: {warning.message}"), err=True)
    every = ruleset.every_rule
    early = relief_warnings(every, dict(settings.relief_delays))
    for found in early:  # allowed: only the VAT relief on such a write-off waits
        click.echo(redact(f"{ruleset.filename}:{found.line}:{found.col}: warning: {found.message()}"), err=True)
    names = ", ".join(rule.name for rule in every)
    click.echo(f"{path}: OK, version {ruleset.version}, mode {ruleset.mode}, {len(every)} rules ({names})")
    for rule in every:
        if rule.sites is not None:
            click.echo(f"rule {rule.name} applies to sites {', '.join(sorted(rule.sites))} only (sites:)")
        if rule.while_collecting == "write_off":
            click.echo(
                f"rule {rule.name} writes off even while Chargebee is still collecting (while_collecting: write_off)"
            )
        if rule.apply_credits_first:
            click.echo(f"rule {rule.name} applies credits before writing off (apply_credits_first: true)")
        leaves = rule.condition.leaves()
        matched = sorted({leaf.field.path for leaf in leaves if leaf.operator == "matches" and leaf.field})
        if matched:
            click.echo(
                f"rule {rule.name}: `matches` reads texts up to {MAX_MATCH_TEXT:,} characters ({', '.join(matched)});"
                " a longer text cannot be evaluated, and no write-off rests on it (facts_missing)"
            )
    if ruleset.warnings or early:
        count = len(ruleset.warnings) + len(early)
        click.echo(f"{path}: {count} warning{'s' if count != 1 else ''}; the rules load, but check them")


@rules.command("explain")
@click.option(
    "--event",
    "event_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Chargebee event as JSON.",
)
@click.option(
    "--invoice-id", type=INVOICE_ID, default=None, help="Fetch this invoice from Chargebee and explain it as an event."
)
@click.option(
    "--event-type",
    default="invoice_updated",
    show_default=True,
    help="With --invoice-id: the event type to pretend (rules with `on:` look at it).",
)
@click.option("--at", "at", default=None, help="Decide at this ISO time instead of now (days_overdue depends on it).")
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Default: $REACTOR_RULES or ./rules.yaml.",
)
@site_option
def explain_command(
    event_file: Path | None,
    invoice_id: str | None,
    event_type: str,
    at: str | None,
    rules_path: Path | None,
    site: str | None,
) -> None:
    """Show, rule by rule and condition by condition, how an event or invoice would be decided: with
    the rules that apply to the site's events (--site, needed when several sites are configured)."""
    if (event_file is None) == (invoice_id is None):
        raise click.UsageError("give exactly one of --event FILE.json or --invoice-id ID")
    now = parse_time(at) if at else datetime.now(timezone.utc)
    settings = one_site(command_settings(), site)
    ruleset = _load_ruleset(rules_path or settings.rules_path).for_site(settings.site_name)
    console = wide_console()
    if event_file is not None:
        event = read_event_file(event_file, settings.max_body_bytes)
    else:
        assert invoice_id is not None
        settings = chargebee_settings(settings)  # or the sandbox a `reactor run` here started
        facts = _invoice_facts(invoice_id, event_type, settings, ruleset, now)
        event = facts.event.data
        console.print(
            f"invoice {invoice_id} fetched from {settings.api_base}, explained as a {event_type} event"
            + (f"; {facts.note()}" if facts.note() else ""),
            style="dim",
            markup=False,
        )
    console.print(f"rules: {ruleset.filename}", style="dim", markup=False)
    explanation = explain(ruleset, event, now)
    console.print(format_explanation(explanation))
    if invoice_id is not None and explanation.decision.action == "write_off":
        why = unresolved(ruleset, event, now, explanation.decision.rule or "", facts.unknown)
        if why is not None:
            console.print(f"the worker would not write it off (facts_missing): {why}", style="bold red", markup=False)


@rules.command("test")
@click.argument("cases_path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Default: the cases file's `rules:`, else $REACTOR_RULES or ./rules.yaml.",
)
@click.option("--explain-failures", is_flag=True, help="Print the full explanation of every failing case.")
def test_command(cases_path: Path | None, rules_path: Path | None, explain_failures: bool) -> None:
    """Run the rule test cases (default: rules.cases.yaml next to the rules); exit 1 on a failure."""
    settings = command_settings()
    if cases_path is None:
        cases_path = default_cases_path(rules_path or settings.rules_path)
        if not cases_path.exists():
            raise click.ClickException(f"no cases file at {cases_path}; name one: `reactor rules test CASES.yaml`")
    try:
        declared = load_cases(cases_path).rules_path  # where the cases say their rules are
    except CasesError as exc:
        _refuse_cases(exc)
    ruleset = _load_ruleset(rules_path or declared or settings.rules_path)
    try:
        cases = load_cases(cases_path, ruleset, sites=settings.site_names).cases
    except CasesError as exc:
        _refuse_cases(exc)
    results = run_cases(ruleset, cases, datetime.now(timezone.utc))
    console = wide_console()
    table = Table(title=f"{cases_path} against {ruleset.filename} (version {ruleset.version})", title_justify="left")
    for column in ("result", "case", "line", "expected", "got", "why"):
        table.add_column(column, overflow="fold")
    for result in results:
        d = result.decision
        table.add_row(
            Text("PASS", style="green") if result.passed else Text("FAIL", style="bold red"),
            result.case.name,
            str(result.case.line),
            f"{result.case.expect_rule or '(no rule)'} → {result.case.expect_action}",
            Text(f"{d.rule or '(no rule)'} → {result.outcome}", style="" if result.passed else "red"),
            d.reason,
        )
    console.print(table)
    failed = [r for r in results if not r.passed]
    if explain_failures:
        for result in failed:
            console.print(Text(f"\n{result.case.name} (line {result.case.line})", style="bold"))
            view = ruleset.for_site(result.case.site)
            console.print(format_explanation(explain(view, result.case.event, result.at)))
    summary = f"{len(results)} cases, {len(results) - len(failed)} passed, {len(failed)} failed"
    console.print(summary, style="bold red" if failed else "bold green", markup=False)
    if failed:
        if not explain_failures:
            console.print("rerun with --explain-failures to see every condition of the failing cases", style="dim")
        sys.exit(1)


def _refuse_cases(exc: Exception) -> NoReturn:
    for problem in getattr(exc, "problems", []):
        click.echo(redact(str(problem)), err=True)
    raise click.ClickException("the cases file is refused")


COMMANDS = (rules,)
