"""Every dry run, preview, report and declined confirmation of the CLI and the dashboard, run on a
site with a history (decisions by a real worker, a held write-off, dead letters) and the rules
since raised: each one queues no job, writes no record or key in Redis and calls Chargebee for no
write (the `nothing_written` fixture), however much a real run of it would do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from reactor.jobs.held import list_held
from reactor.jobs.sweep import Checkpoint, checkpoint_key
from tests.helpers import wait_for, wait_settled
from tests.integration.helpers import logged_in, make_event, outcomes, post_event, token
from tests.integration.ops_helpers import make_dead_letter, reactor

pytestmark = pytest.mark.integration

# Under these the worker decides the history: 12.50 written off, 15.00 held by the 20 USD day
# budget, 49.99 over the 25 USD threshold (no_match).
DECIDING_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500}
  max_per_day: {USD: 20}
rules:
  - name: exhausted-small
    when:
      - invoice.dunning_status: exhausted
      - invoice.amount_due: {lte: 25}
    action: write_off
"""
# Then ops raise the threshold: 49.99 would now be written off, by a replay or a sweep.
RAISED_RULES = DECIDING_RULES.replace("{lte: 25}", "{lte: 50}").replace("{USD: 20}", "{USD: 1000}")
# A proposed edit that reads the customer (so that a preview of it fetches customers too) and spares
# every invoice of the site's one customer: each open invoice changes.
PROPOSED_RULES = RAISED_RULES.replace(
    "rules:\n", "rules:\n  - name: spare-smb\n    when:\n      - customer.cf_segment: smb\n    action: skip\n"
)


def rate_limit_budget(key: bytes) -> bool:
    """The shared Chargebee call budget (reactor/chargebee/ratelimit.py): a preview that reads
    Chargebee counts its calls there like any process, or the workers would pass Chargebee's limit."""
    return key.startswith(b"reactor:rl:")


@dataclass
class Site:
    ids: dict[str, str]  # the placeholders of the commands below: invoice, event and job ids
    tmp: Path


@pytest.fixture
def site(sandbox, web, redis_conn, start_worker, rules_file, settings, tmp_path) -> Site:
    """Invoices decided by a real worker (then stopped), two dead letters (one 40 days old), an
    interrupted sweep, an invoice no webhook has named yet, and the rules raised since."""
    rules_file(DECIDING_RULES)
    sandbox.state.add_customer(id="cus_small", cf_segment="smb")
    invoices = {
        name: sandbox.state.add_invoice(
            status="not_paid",
            dunning_status="exhausted",
            currency_code="USD",
            total=amount,
            amount_due=amount,
            customer_id="cus_small",
        )
        for name, amount in (("small", 1250), ("held", 1500), ("over", 4999), ("open", 2000), ("dead", 3000))
    }
    events = {name: make_event(invoices[name]) for name in ("small", "held", "over", "dead")}
    worker = start_worker()
    for name, outcome in (("small", "written_off"), ("held", "held"), ("over", "no_match")):
        assert post_event(web.webhook_url, events[name]).status_code == 200
        invoice_id = invoices[name]["id"]
        wait_for(lambda: outcome in outcomes(redis_conn, invoice_id), timeout=30, what=f"{name}: {outcome}")  # noqa: B023
    wait_settled(redis_conn)
    worker.stop()
    old = make_dead_letter(redis_conn, settings, events["dead"], failed_ago=timedelta(days=40))
    recent_event = make_event(invoices["dead"])
    recent = make_dead_letter(redis_conn, settings, recent_event)
    # A live sweep cut short: a dry run neither resumes it nor ends it.
    Checkpoint(sweep_id="interrupted", started_at="2026-01-01T00:00:00+00:00").save(
        redis_conn, checkpoint_key(settings.key_prefix)
    )
    rules_file(RAISED_RULES)
    (tmp_path / "proposed.yaml").write_text(PROPOSED_RULES)
    (tmp_path / "event.json").write_text(json.dumps(events["over"]))
    ids = {f"{name}_invoice": invoice["id"] for name, invoice in invoices.items()}
    ids |= {f"{name}_event": event["id"] for name, event in events.items()}
    ids |= {"old_job": old.id, "recent_job": recent.id, "recent_event": recent_event["id"], "tmp": str(tmp_path)}
    assert [item.invoice_id for item in list_held(redis_conn, settings.key_prefix)] == [ids["held_invoice"]]
    return Site(ids, tmp_path)


CLI_PREVIEWS = {
    # dry runs
    "events replay ID --dry-run": ("events", "replay", "{over_event}", "--dry-run"),
    "events replay IDS --dry-run": (
        "events",
        "replay",
        "{over_event}",
        "{small_event}",
        "{held_event}",
        "ev_never_received",
        "--dry-run",
    ),
    "events replay --outcome --dry-run": ("events", "replay", "--outcome", "no_match,held", "--dry-run"),
    "events replay --customer --dry-run": ("events", "replay", "--customer", "cus_small", "--since", "1h", "--dry-run"),
    "dlq replay JOB --dry-run": ("dlq", "replay", "{recent_job}", "{old_job}", "--dry-run"),
    "dlq replay --all --dry-run": ("dlq", "replay", "--all", "--dry-run"),
    "dlq purge --dry-run": ("dlq", "purge", "--older-than", "30d", "--dry-run"),
    "sweep --dry-run": ("sweep", "--dry-run"),
    "sweep --dry-run --restart": ("sweep", "--dry-run", "--restart", "--min-days-overdue", "0"),
    "sweep --report": ("sweep", "--report", "{tmp}/report.csv"),
    # previews
    "rules diff": ("rules", "diff", "{tmp}/proposed.yaml"),
    "rules diff --snapshot": ("rules", "diff", "{tmp}/proposed.yaml", "--snapshot", "{tmp}/snapshot.json.gz"),
    "rules diff --format json": ("rules", "diff", "{tmp}/proposed.yaml", "--format", "json"),
    "rules explain --invoice-id": ("rules", "explain", "--invoice-id", "{over_invoice}"),
    "rules explain --event": ("rules", "explain", "--event", "{tmp}/event.json"),
    "rules check": ("rules", "check"),
    # reports
    "audit": ("audit",),
    "audit --format csv": ("audit", "--format", "csv"),
    "audit --format jsonl": ("audit", "--format", "jsonl", "--event", "{over_event}"),
    "trace": ("trace", "{small_invoice}"),
    "trace EVENT --format json": ("trace", "{held_event}", "--format", "json"),
    "dlq list": ("dlq", "list"),
    "dlq list --format json": ("dlq", "list", "--format", "json"),
    "dlq show": ("dlq", "show", "{old_job}"),
    "held list": ("held", "list"),
    "report bad-debt": ("report", "bad-debt"),
    "report bad-debt --format csv": ("report", "bad-debt", "--format", "csv", "--country", ""),
    # asked first, and not confirmed (no terminal, no --yes)
    "events replay --customer, not confirmed": ("events", "replay", "--customer", "cus_small"),
    "dlq replay --all, not confirmed": ("dlq", "replay", "--all"),
    "dlq purge, not confirmed": ("dlq", "purge", "--older-than", "30d"),
    "held release --all, not confirmed": ("held", "release", "--all"),
}
EXPECTED = {  # a line each shows the command did its work (and was not refused early)
    "events replay ID --dry-run": "dry run: 1 event would be replayed; nothing enqueued",
    "events replay IDS --dry-run": "dry run: 4 events would be replayed; nothing enqueued",
    "events replay --outcome --dry-run": "dry run: 2 events would be replayed",
    "events replay --customer --dry-run": "dry run: 3 events would be replayed",
    "dlq replay JOB --dry-run": "dry run: 2 dead letters would be replayed; nothing requeued",
    "dlq replay --all --dry-run": "dry run: 2 dead letters would be replayed; nothing requeued",
    "dlq purge --dry-run": "dry run: 1 dead letter would be deleted",
    "sweep --dry-run": "would be written off",
    "sweep --dry-run --restart": "would be written off",
    "sweep --report": "would be written off",
    "rules diff": "4 open invoices, 3 changed",
    "rules diff --snapshot": "4 open invoices, 3 changed",
    "rules diff --format json": '"changes"',
    "rules explain --invoice-id": "exhausted-small",
    "rules explain --event": "exhausted-small",
    "rules check": "OK",
    "audit": "no_match",
    "audit --format csv": "no_match",
    "audit --format jsonl": "no_match",
    "trace": "written_off",
    "trace EVENT --format json": "held",
    "dlq list": "2 dead letters",
    "dlq list --format json": "{recent_job}",
    "dlq show": "{old_job}",
    "held list": "1 held",
    "report bad-debt": "no rule: no billing country",
    "report bad-debt --format csv": "{small_invoice}",
    "events replay --customer, not confirmed": "needs a confirmation",
    "dlq replay --all, not confirmed": "needs a confirmation",
    "dlq purge, not confirmed": "needs a confirmation",
    "held release --all, not confirmed": "Aborted",
}


@pytest.mark.parametrize("name", list(CLI_PREVIEWS))
def test_a_command_that_only_shows_writes_nothing(name, site, settings, nothing_written) -> None:
    args = [arg.format(**site.ids) for arg in CLI_PREVIEWS[name]]

    with nothing_written(ignore=rate_limit_budget):
        result = reactor(settings, *args, input="n\n")

    assert EXPECTED[name].format(**site.ids) in result.output, result.output


def test_events_replay_of_a_named_id_dry_run_shows_the_decision_and_no_worker_writes_it_off(
    site, settings, sandbox, redis_conn, start_worker, nothing_written
) -> None:
    """The threshold raised past an event that matched nothing: its dry run by id shows the write-off
    the rules would now make, and queues nothing a worker could carry out."""
    written_off = len(sandbox.state.write_off_calls())  # the history's one, of 12.50

    with nothing_written():
        result = reactor(settings, "events", "replay", site.ids["over_event"], "--dry-run")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if site.ids["over_event"] in line)
    assert site.ids["over_invoice"] in row and "no_match" in row and "write_off" in row and "exhausted-small" in row
    start_worker()
    wait_settled(redis_conn)
    assert sandbox.state.write_off_calls()[written_off:] == []
    assert sandbox.state.get_invoice(site.ids["over_invoice"])["status"] == "not_paid"


def test_the_events_replay_dry_run_by_id_shows_the_same_table_as_by_selection(site, settings, nothing_written) -> None:
    with nothing_written():
        by_id = reactor(settings, "events", "replay", site.ids["over_event"], "--dry-run")
        by_outcome = reactor(settings, "events", "replay", "--outcome", "no_match", "--dry-run")

    assert by_id.output == by_outcome.output


def test_the_sweep_report_is_written_and_nothing_else(site, settings, nothing_written) -> None:
    with nothing_written(ignore=rate_limit_budget):
        result = reactor(settings, "sweep", "--dry-run", "--report", str(site.tmp / "report.csv"))

    assert result.exit_code == 0, result.output
    report = (site.tmp / "report.csv").read_text()
    assert site.ids["over_invoice"] in report and site.ids["open_invoice"] in report
    assert site.ids["small_invoice"] not in report  # paid: not listed


def test_rules_diff_from_a_snapshot_writes_nothing(site, settings, nothing_written) -> None:
    snapshot = str(site.tmp / "snapshot.json")
    assert reactor(settings, "rules", "diff", str(site.tmp / "proposed.yaml"), "--snapshot", snapshot).exit_code == 1

    with nothing_written():
        result = reactor(settings, "rules", "diff", str(site.tmp / "proposed.yaml"), "--invoices", snapshot)

    assert result.exit_code == 1 and "4 open invoices, 3 changed" in result.output, result.output


def test_the_check_sees_a_replay_that_is_not_a_dry_run(site, settings, nothing_written) -> None:
    """The check itself: the same command without --dry-run queues a job and records the replay."""
    with pytest.raises(AssertionError, match="a job was queued"), nothing_written():
        reactor(settings, "events", "replay", site.ids["over_event"])


def test_the_check_sees_a_key_written(redis_conn, nothing_written) -> None:
    redis_conn.set("reactor:unrelated", "1")
    with pytest.raises(AssertionError, match="changed string reactor:unrelated"), nothing_written():
        redis_conn.set("reactor:unrelated", "2")
    with pytest.raises(AssertionError, match="removed string reactor:unrelated"), nothing_written():
        redis_conn.delete("reactor:unrelated")


# -- the dashboard ---------------------------------------------------------------------------------


@pytest.fixture
def dashboard(site, admin_web) -> requests.Session:
    """Logged in (a session is written), the dashboard started on the raised rules."""
    return logged_in(admin_web)


def test_the_rules_diff_page_and_its_preview_write_nothing(site, admin_web, dashboard, nothing_written) -> None:
    url = f"{admin_web.url}/admin/rules/diff"

    with nothing_written(ignore=rate_limit_budget):
        form = dashboard.get(url, timeout=10)
        answer = dashboard.post(url, data={"rules": PROPOSED_RULES, "csrf": token(form.text)}, timeout=30)

    assert form.status_code == 200 and answer.status_code == 200, answer.text
    assert "3 of 4 open invoices change" in answer.text and site.ids["over_invoice"] in answer.text


def test_the_undo_confirmation_page_and_an_undo_without_a_reason_write_nothing(
    site, admin_web, dashboard, nothing_written
) -> None:
    url = f"{admin_web.url}/admin/invoices/{site.ids['small_invoice']}/undo"

    with nothing_written():
        page = dashboard.get(url, timeout=10)
        refused = dashboard.post(url, data={"reason": "  ", "csrf": token(page.text)}, timeout=10)

    assert page.status_code == 200 and site.ids["small_invoice"] in page.text
    assert refused.status_code == 200 and "Give a reason" in refused.text


@pytest.mark.parametrize("page", ["/admin/", "/admin/invoices/{small_invoice}", "/admin/invoices/{held_event}"])
def test_a_dashboard_page_writes_nothing(page, site, admin_web, dashboard, nothing_written) -> None:
    # an invoice page asks Chargebee for the invoice's status now, under the shared rate limit
    with nothing_written(ignore=rate_limit_budget):
        answer = dashboard.get(admin_web.url + page.format(**site.ids), timeout=10)

    assert answer.status_code == 200, answer.text


def test_a_sweep_dry_run_on_a_refused_rules_file_records_nothing(settings, rules_file, nothing_written) -> None:
    rules_file("version: 1\nrules: [unclosed\n")

    with nothing_written(ignore=rate_limit_budget):
        result = reactor(settings, "sweep", "--dry-run")

    assert result.exit_code == 1 and "refused; fix it first" in result.output, result.output
