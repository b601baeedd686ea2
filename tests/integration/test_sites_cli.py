"""`--site` on the commands that touch invoices, against a real Redis and two sandbox processes: the
same invoice id on two sites is two invoices, a command on one invoice's data needs its site when
several are configured, and the listing commands show every site's rows, each naming its site."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rq import Queue
from rq.job import JobStatus
from rq.registry import FailedJobRegistry

from reactor.ingest.events import evaluation_job_id
from reactor.jobs.audit import AuditFilter, AuditLog, AuditRecord
from reactor.jobs.held import HeldWriteOff, hold, list_held
from reactor.keys import Keys
from tests.integration.helpers import EXHAUSTED_RULES, exhausted_invoice, make_event, outcomes
from tests.integration.ops_helpers import make_dead_letter, reactor, written_off
from tests.integration.sites_helpers import HOME, OTHER, TwoSites, load_two_sites, other_sandbox  # noqa: F401

pytestmark = pytest.mark.integration

AMBIGUOUS = f"several Chargebee sites are configured ({HOME}, {OTHER}): name one with --site"


@pytest.fixture
def sites(settings, other_sandbox, redis_conn) -> TwoSites:  # noqa: F811
    return load_two_sites(settings, other_sandbox)


def held_on(sites: TwoSites, redis_conn, site: str, invoice_id: str, amount: int) -> None:
    item = HeldWriteOff(invoice_id, rule="r", amount_due=amount, currency="EUR", reason=f"budget of {site}", event={})
    hold(redis_conn, item, sites.site(site).key_prefix)


def test_the_same_invoice_held_on_two_sites_is_two_holds(sites, redis_conn):
    held_on(sites, redis_conn, HOME, "inv_same", 500)
    held_on(sites, redis_conn, OTHER, "inv_same", 700)

    listed = sites.reactor("held", "list")
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.output.splitlines() if "inv_same" in line]
    assert len(rows) == 2
    assert HOME in rows[0] and "5.00 EUR" in rows[0] and OTHER not in rows[0]
    assert OTHER in rows[1] and "7.00 EUR" in rows[1]
    only_eu = sites.reactor("held", "list", "--site", OTHER)
    assert [line for line in only_eu.output.splitlines() if "inv_same" in line] == [rows[1]]

    refused = sites.reactor("held", "release", "inv_same", "--reason", "raised")
    assert refused.exit_code == 2 and AMBIGUOUS in refused.output
    assert len(list_held(redis_conn, sites.site(HOME).key_prefix)) == 1
    assert len(list_held(redis_conn, sites.site(OTHER).key_prefix)) == 1

    released = sites.reactor("held", "release", "--site", OTHER, "inv_same", "--reason", "raised")
    assert released.exit_code == 0, released.output
    assert f"released 1 on {OTHER}: inv_same" in released.output
    assert list_held(redis_conn, sites.site(OTHER).key_prefix) == []
    assert [h.amount_due for h in list_held(redis_conn, sites.site(HOME).key_prefix)] == [500]
    # the release job goes to acme-eu's queue, its record into acme-eu's trail
    assert Queue(f"reactor:{OTHER}", connection=redis_conn).count == 1
    assert Queue("reactor", connection=redis_conn).count == 0
    other_trail = AuditLog(redis_conn, Keys(sites.site(OTHER).key_prefix).audit())
    assert [r.outcome for r in other_trail.query(AuditFilter(invoice_id="inv_same"))] == ["released"]
    assert outcomes(redis_conn, "inv_same") == []  # the home site's trail: untouched


def test_an_unknown_site_is_refused_naming_the_configured_ones(sites):
    for args in (("held", "list"), ("audit",), ("trace", "inv_1"), ("dlq", "list")):
        result = sites.reactor(*args, "--site", "acme-us")
        assert result.exit_code == 2, (args, result.output)
        assert f"no Chargebee site named 'acme-us' is configured (sites: {HOME}, {OTHER})" in result.output


def test_one_site_needs_no_site_option(settings, redis_conn):
    hold(redis_conn, HeldWriteOff("inv_single", rule="r", amount_due=100, currency="USD", reason="b", event={}))
    listed = reactor(settings, "held", "list")
    assert listed.exit_code == 0 and "inv_single" in listed.output and "site" not in listed.output.split("\n")[1]
    named = reactor(settings, "held", "list", "--site", "default")
    assert "inv_single" in named.output
    released = reactor(settings, "held", "release", "inv_single", "--reason", "ok")
    assert released.exit_code == 0, released.output


def test_audit_shows_every_site_and_exports_name_the_site(sites, redis_conn):
    AuditLog(redis_conn, Keys(sites.site(HOME).key_prefix).audit()).append(written_off("inv_a", "ev_a", amount=1000))
    AuditLog(redis_conn, Keys(sites.site(OTHER).key_prefix).audit()).append(written_off("inv_a", "ev_b", amount=2000))

    table = sites.reactor("audit")
    assert table.exit_code == 0, table.output
    home_part, other_part = table.output.split(f"site {OTHER}:")
    assert f"site {HOME}:" in home_part and "10.00 USD" in home_part and "20.00 USD" not in home_part
    assert "20.00 USD" in other_part and "10.00 USD" not in other_part

    lines = [json.loads(line) for line in sites.reactor("audit", "--format", "jsonl").output.splitlines()]
    assert [(line["site"], line["event_id"], line["amount_due"]) for line in lines] == [
        (HOME, "ev_a", 1000),
        (OTHER, "ev_b", 2000),
    ]
    rows = list(csv.DictReader(io.StringIO(sites.reactor("audit", "--format", "csv").output)))
    assert [(row["site"], row["event_id"]) for row in rows] == [(HOME, "ev_a"), (OTHER, "ev_b")]
    only = sites.reactor("audit", "--site", OTHER, "--format", "jsonl").output.splitlines()
    assert [json.loads(line)["event_id"] for line in only] == ["ev_b"]


def test_trace_reads_the_named_sites_invoice(sites, redis_conn):
    AuditLog(redis_conn, Keys(sites.site(OTHER).key_prefix).audit()).append(written_off("inv_t", "ev_eu"))

    refused = sites.reactor("trace", "inv_t")
    assert refused.exit_code == 2 and AMBIGUOUS in refused.output
    found = sites.reactor("trace", "inv_t", "--site", OTHER, "--format", "json")
    assert found.exit_code == 0, found.output
    assert "ev_eu" in found.output
    missing = sites.reactor("trace", "inv_t", "--site", HOME)
    assert missing.exit_code == 1 and "nothing kept about 'inv_t'" in missing.output


def test_dead_letters_list_names_their_site_and_replay_needs_one(sites, redis_conn):
    for site, event_id in ((HOME, "ev_dead_home"), (OTHER, "ev_dead_eu")):
        event = {"id": event_id, "event_type": "payment_failed", "content": {"invoice": {"id": "inv_d"}}}
        make_dead_letter(redis_conn, sites.site(site), event, store=False)

    listed = sites.reactor("dlq", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert sorted((d["site"], d["event_id"]) for d in json.loads(listed.output)) == [
        (HOME, "ev_dead_home"),
        (OTHER, "ev_dead_eu"),
    ]
    table = sites.reactor("dlq", "list").output
    assert any(OTHER in line and "ev_dead_eu" in line for line in table.splitlines())
    refused = sites.reactor("dlq", "replay", "evaluate-ev_dead_eu")
    assert refused.exit_code == 2 and AMBIGUOUS in refused.output
    wrong_site = sites.reactor("dlq", "replay", "--site", HOME, "evaluate-ev_dead_eu")
    assert wrong_site.exit_code == 1 and "not replayed" in wrong_site.output
    events = sites.reactor("events", "replay", "ev_dead_eu")
    assert events.exit_code == 2 and AMBIGUOUS in events.output


def test_undo_acts_on_the_named_site_only(sites, our_write_off, redis_conn, sandbox):
    """`our_write_off` is the home site's (acme); acme-eu holds an invoice of the same id, unpaid."""
    invoice_id = our_write_off["id"]
    exhausted_invoice(sites.other_sandbox, id=invoice_id)

    refused = sites.reactor("undo", invoice_id, "--reason", "dispute")
    assert refused.exit_code == 2 and AMBIGUOUS in refused.output
    not_ours = sites.reactor("undo", "--site", OTHER, invoice_id, "--reason", "dispute")
    assert not_ours.exit_code == 1, not_ours.output
    assert sites.other_sandbox.state.write_off_calls() == []
    assert sandbox.state.get_invoice(invoice_id)["status"] == "paid"

    undone = sites.reactor("undo", "--site", HOME, invoice_id, "--reason", "dispute")
    assert undone.exit_code == 0, undone.output
    assert f"reactor held release --site {HOME} {invoice_id}" in undone.output
    assert sandbox.state.get_invoice(invoice_id)["status"] != "paid"
    assert sites.other_sandbox.state.get_invoice(invoice_id)["status"] == "not_paid"
    assert "undone" in outcomes(redis_conn, invoice_id)


def test_sweep_dry_run_runs_per_site(sites, redis_conn):
    exhausted_invoice(sites.other_sandbox, id="inv_sweep_eu")

    result = sites.reactor("sweep", "--dry-run")
    assert result.exit_code == 0, result.output
    home_part, other_part = result.output.split(f"site {OTHER}:")
    assert f"site {HOME}:" in home_part
    assert "dry run: 1 invoices seen" in other_part
    report = sites.reactor("sweep", "--report", "out.csv")
    assert report.exit_code == 2 and "name one with --site" in report.output
    # a dry run writes nothing, on any site: only the rate limiter's counters of its calls
    assert [key for key in redis_conn.keys("*") if b":rl:" not in key] == []


def test_records_on_two_sites_with_the_same_invoice_id_stay_apart(sites, redis_conn):
    record = AuditRecord(event_id="ev_x", invoice_id="inv_x", outcome="no_match")
    AuditLog(redis_conn, Keys(sites.site(OTHER).key_prefix).audit()).append(record)
    assert sites.reactor("audit", "--site", HOME, "--format", "jsonl").output == ""


def test_rules_diff_runs_per_site_and_exits_with_the_worst_code(sites, sandbox, tmp_path, rules_file):
    from tests.integration.rules_diff_helpers import AT, BASE, INVOICES, NEW, seed_site

    seed_site(sandbox)  # acme's invoices change; acme-eu has none open
    rules_file(BASE)
    new = tmp_path / "new.yaml"
    new.write_text(NEW)

    result = sites.reactor("rules", "diff", str(new), "--format", "json", "--at", AT)
    assert result.exit_code == 1, result.output
    documents = json.loads(result.stdout)
    assert [(d["site"], d["invoices"]) for d in documents] == [(HOME, len(INVOICES)), (OTHER, 0)]
    assert documents[1]["changes"] == [] and documents[0]["changes"]
    only_eu = sites.reactor("rules", "diff", str(new), "--site", OTHER, "--format", "json", "--at", AT)
    assert only_eu.exit_code == 0, only_eu.output
    assert json.loads(only_eu.stdout)["site"] == OTHER
    table = sites.reactor("rules", "diff", str(new), "--at", AT)
    assert table.exit_code == 1
    home_part, other_part = table.output.split(f"site {OTHER}:")
    assert f"site {HOME}:" in home_part and "inv_a" in home_part and "inv_a" not in other_part
    snapshot = sites.reactor("rules", "diff", str(new), "--snapshot", str(tmp_path / "s.json"))
    assert snapshot.exit_code == 2 and "name one with --site" in snapshot.output


SITE_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500}
rules:
%s"""
WHEN = "    when:\n      - invoice.dunning_status: exhausted\n"
EU_WRITE_OFF = f"  - name: eu-exhausted\n    sites: [acme-eu]\n{WHEN}    action: write_off\n"
ACME_SKIP = f"  - name: spare-acme\n    sites: [acme]\n{WHEN}    action: skip\n"
ANY_WRITE_OFF = f"  - name: exhausted\n{WHEN}    action: write_off\n"
NOTHING = "  - name: never\n    when:\n      - invoice.status: voided\n    action: write_off\n"


def test_previews_decide_with_each_sites_view_of_the_rules(sites, sandbox, tmp_path, rules_file):
    invoice = exhausted_invoice(sandbox, id="inv_view")
    exhausted_invoice(sites.other_sandbox, id="inv_view")
    rules_file(SITE_RULES % NOTHING)
    eu_only, spare_acme = tmp_path / "eu.yaml", tmp_path / "spare.yaml"
    eu_only.write_text(SITE_RULES % EU_WRITE_OFF)
    spare_acme.write_text(SITE_RULES % (ACME_SKIP + ANY_WRITE_OFF))

    # a write-off limited to acme-eu changes acme-eu's invoice only
    assert sites.reactor("rules", "diff", str(eu_only), "--site", OTHER).exit_code == 1
    assert sites.reactor("rules", "diff", str(eu_only), "--site", HOME).exit_code == 0
    # a skip limited to acme protects acme's invoice only
    rules_file(SITE_RULES % ANY_WRITE_OFF)
    assert sites.reactor("rules", "diff", str(spare_acme), "--site", HOME).exit_code == 1
    assert sites.reactor("rules", "diff", str(spare_acme), "--site", OTHER).exit_code == 0

    event = tmp_path / "event.json"
    event.write_text(json.dumps(make_event(invoice)))
    rules_file(SITE_RULES % EU_WRITE_OFF)
    refused = sites.reactor("rules", "explain", "--event", str(event))
    assert refused.exit_code == 2 and AMBIGUOUS in refused.output
    on_eu = sites.reactor("rules", "explain", "--event", str(event), "--site", OTHER)
    on_home = sites.reactor("rules", "explain", "--event", str(event), "--site", HOME)
    assert on_eu.exit_code == 0 and on_home.exit_code == 0, on_eu.output + on_home.output
    assert "WRITE_OFF — rule eu-exhausted matched" in on_eu.output and "WRITE_OFF" not in on_home.output

    dry = sites.reactor("sweep", "--dry-run")  # the sweep's preview: acme-eu's invoice only
    assert dry.exit_code == 0, dry.output
    home_part, eu_part = dry.output.split(f"site {OTHER}:")
    assert "eu-exhausted" in eu_part and "eu-exhausted" not in home_part


def test_replays_go_to_the_named_sites_queue(sites, redis_conn):
    other = sites.site(OTHER)
    event = {
        "id": "ev_replay_eu",
        "event_type": "payment_failed",
        "occurred_at": 1764000000,
        "content": {"invoice": {"id": "inv_r"}},
    }
    redis_conn.set(Keys(other.key_prefix).event(event["id"]), json.dumps(event))
    make_dead_letter(redis_conn, other, event, store=False)

    replayed = sites.reactor("dlq", "replay", "--site", OTHER, "evaluate-ev_replay_eu")
    assert replayed.exit_code == 0, replayed.output
    again = sites.reactor("events", "replay", "--site", OTHER, "ev_replay_eu")
    assert again.exit_code == 0, again.output
    assert Queue(f"reactor:{OTHER}", connection=redis_conn).count == 2
    assert Queue("reactor", connection=redis_conn).count == 0
    trail = AuditLog(redis_conn, Keys(other.key_prefix).audit())
    assert [r.outcome for r in trail.query(AuditFilter(event_id="ev_replay_eu"))] == ["replayed", "replayed"]
    assert outcomes(redis_conn, "inv_r") == []
    home = sites.reactor("events", "replay", "--site", HOME, "ev_replay_eu")
    assert home.exit_code == 1 and "no stored event 'ev_replay_eu'" in home.output


def test_a_non_home_sites_jobs_are_found_and_replayed_under_their_site_ids(sites, redis_conn):
    other = sites.site(OTHER)
    jobs = {}
    for event_id in ("ev_retrying_eu", "ev_dead_eu"):
        event = {"id": event_id, "event_type": "payment_failed", "content": {"invoice": {"id": "inv_s"}}}
        redis_conn.set(Keys(other.key_prefix).event(event_id), json.dumps(event))
        jobs[event_id] = make_dead_letter(
            redis_conn, other, event, store=False, job_id=evaluation_job_id(event_id, OTHER)
        )
    retrying, dead = jobs["ev_retrying_eu"], jobs["ev_dead_eu"]
    FailedJobRegistry(queue=Queue(other.queue_name, connection=redis_conn)).remove(retrying)
    retrying.set_status(JobStatus.SCHEDULED)  # failed once, waiting for its retry: not a dead letter

    shown = sites.reactor("dlq", "show", "--site", OTHER, "ev_retrying_eu")
    assert shown.exit_code == 0, shown.output
    assert f"evaluate-ev_retrying_eu--{OTHER}  (not a dead letter" in shown.output
    assert sites.reactor("dlq", "show", "--site", OTHER, "ev_dead_eu").exit_code == 0

    assert sites.reactor("dlq", "replay", "--site", OTHER, dead.id).exit_code == 0
    again = sites.reactor("events", "replay", "--site", OTHER, "ev_retrying_eu")
    assert again.exit_code == 0, again.output
    queued = Queue(other.queue_name, connection=redis_conn).job_ids
    assert dead.id in queued and len(queued) == 2
    assert all(job_id.endswith(f"--{OTHER}") for job_id in queued), queued
    assert Queue("reactor", connection=redis_conn).count == 0


def test_a_sweep_queues_each_sites_invoices_on_its_own_queue(sites, sandbox, redis_conn, rules_file):
    rules_file(EXHAUSTED_RULES)
    exhausted_invoice(sandbox, id="inv_sw")
    exhausted_invoice(sites.other_sandbox, id="inv_sw")  # the same id: two invoices

    result = sites.reactor("sweep")
    assert result.exit_code == 0, result.output
    home_part, other_part = result.output.split(f"site {OTHER}:")
    assert "1 queued" in home_part and "1 queued" in other_part
    assert Queue("reactor", connection=redis_conn).count == 1
    assert Queue(f"reactor:{OTHER}", connection=redis_conn).count == 1
    only = sites.reactor("sweep", "--site", OTHER, "--restart")
    assert only.exit_code == 0 and f"site {HOME}:" not in only.output
