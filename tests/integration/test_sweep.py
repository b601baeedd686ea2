"""`reactor sweep` over 1,050 sandbox invoices (11 pages): a real subprocess, SIGKILLed after page 4
and restarted, and a real worker writing off what it queued."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.jobs.held import HeldWriteOff, hold
from reactor.jobs.sweep import checkpoint_key
from reactor.sandbox import seed_demo
from tests.helpers import REPO, wait_for, worker_env

pytestmark = pytest.mark.integration

SWEEP_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500}
rules:
  - name: exhausted-small
    on: [payment_failed, sweep]
    when:
      - invoice.dunning_status: exhausted
      - invoice.amount_due: {lte: {USD: 25}}
    action: write_off
  - name: webhook-only
    on: [payment_failed]
    when:
      - invoice.dunning_status: in_progress
    action: write_off
"""


def add_invoices(sandbox) -> set[str]:
    """1,050 unpaid invoices; every third is exhausted and small (matches), the others do not match
    on a sweep (in progress: only a webhook rule would take them)."""
    specs = [
        {
            "status": "not_paid" if i % 2 else "payment_due",
            "dunning_status": "exhausted" if i % 3 == 0 else "in_progress",
            "currency_code": "USD",
            "total": 1250,
            "amount_due": 1250,
        }
        for i in range(1050)
    ]
    added = sandbox.state.add_invoices(specs)
    return {inv["id"] for inv, spec in zip(added, specs, strict=True) if spec["dunning_status"] == "exhausted"}


def list_offsets(sandbox) -> list[str | None]:
    return [
        c.get("query", {}).get("offset")
        for c in sandbox.state.calls(path_contains="/invoices", method="GET")
        if c["path"].rstrip("/").endswith("/invoices")
    ]


def run_sweep(settings, *args: str, wait: bool = True) -> tuple[subprocess.Popen, Path]:
    """`reactor sweep` as a process, its output in a file: a pipe nobody reads would block it."""
    log_path = settings.var_dir.parent / f"sweep-{os.urandom(4).hex()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reactor", "sweep", *args],
            env=worker_env(settings),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if wait:
        proc.wait(120)
    return proc, log_path


def checkpoint(redis_conn, settings) -> dict:
    raw = redis_conn.get(checkpoint_key(settings.key_prefix))
    return json.loads(raw) if raw else {}


def test_a_sweep_killed_after_page_4_resumes_without_repeating_pages_and_writes_off_each_match_once(
    sandbox, redis_conn, start_worker, rules_file, settings
):
    rules_file(SWEEP_RULES)
    fast = replace(settings, chargebee_rate_limit=100000)
    matching = add_invoices(sandbox)
    slow = replace(settings, chargebee_rate_limit=2, rate_limit_window=1)  # ~0.5 s a page: a window to kill it in

    first, _ = run_sweep(slow, wait=False)
    wait_for(lambda: checkpoint(redis_conn, settings).get("pages", 0) >= 4, timeout=60, what="page 4 done")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    done_before_kill = checkpoint(redis_conn, settings)
    assert 4 <= done_before_kill["pages"] < 11
    offsets_before = list_offsets(sandbox)

    second, log_path = run_sweep(fast)
    assert second.returncode == 0, log_path.read_text()
    offsets_after = list_offsets(sandbox)[len(offsets_before) :]
    assert offsets_after[0] == done_before_kill["next_offset"], "the restart did not resume at the checkpoint"
    assert set(offsets_after).isdisjoint(offsets_before[: done_before_kill["pages"]]), (
        "a finished page was listed again"
    )
    # distinct: the killed sweep's last request may reach the sandbox after offsets_before was read
    assert len(set(offsets_after)) == 11 - done_before_kill["pages"]
    assert checkpoint(redis_conn, settings)["finished"] is True

    start_worker(fast)
    written = lambda: {r.invoice_id for r in AuditLog(redis_conn).query(AuditFilter(outcomes=["written_off"]))}  # noqa: E731
    wait_for(lambda: written() == matching, timeout=180, interval=0.5, what="every matching invoice written off")
    calls = sandbox.state.write_off_calls()
    assert len(calls) == len(matching) == 350
    assert len({c["path"] for c in calls}) == 350, "an invoice was written off twice"


def test_a_dry_run_report_lists_what_would_be_written_off_by_rule_with_totals(
    sandbox, redis_conn, rules_file, settings, tmp_path
):
    rules_file(SWEEP_RULES)
    matching = add_invoices(sandbox)
    report = tmp_path / "report.csv"
    proc, log_path = run_sweep(replace(settings, chargebee_rate_limit=100000), "--dry-run", "--report", str(report))
    assert proc.returncode == 0, log_path.read_text()
    rows = list(csv.reader(report.open()))
    invoices = [r for r in rows[1:] if r and r[0] != "total"]
    assert {r[0] for r in invoices} == matching
    assert {r[2] for r in invoices} == {"exhausted-small"}
    assert ["total", "exhausted-small", "350", "4375.00", "USD", "sweep"] in rows
    # the next payment_failed of each would be written off too (webhook-only's in-progress ones are
    # still being collected): a row per invoice and trigger, each trigger totalled on its own
    assert ["total", "exhausted-small", "350", "4375.00", "USD", "payment_failed"] in rows
    assert {r[6] for r in invoices} == {"sweep", "payment_failed"} and {r[7] for r in invoices} == {"write_off"}
    output = log_path.read_text()
    assert "350 would be written off by the sweep" in output and "on next payment_failed: 350 would be" in output
    assert sandbox.state.write_off_calls() == []
    assert list(AuditLog(redis_conn).query()) == []


def test_a_dry_run_shows_what_each_next_event_would_do_and_keeps_held_invoices_held(
    sandbox, redis_conn, rules_file, settings, tmp_path
):
    """The shipped rules on the demo invoices: the sweep writes none of them off (none is 90 days
    overdue), but the next payment_failed or invoice_updated of inv_demo_1001 would; inv_demo_1004
    (2500 JPY, which would go too) is held by an undo and stays held. A rule reading the event's
    transaction is named, and the decisions resting on it are listed as not previewed."""
    seed_demo(sandbox.state)
    hold(redis_conn, HeldWriteOff("inv_demo_1004", rule="dunning-exhausted-small-balance", reason="undone"))
    shipped = (REPO / "rules.yaml").read_text()
    rules_file(shipped)
    report = tmp_path / "report.csv"
    proc, log_path = run_sweep(settings, "--dry-run", "--report", str(report))
    output = log_path.read_text()
    assert proc.returncode == 0, output
    assert "dry run: 5 invoices seen, 0 would be written off by the sweep" in output
    assert "on next payment_failed: 1 would be written off" in output
    assert "held: 1 invoice stays held (reactor held list), not decided: inv_demo_1004 (undone)" in output
    rows = list(csv.reader(report.open()))
    decided = [(r[0], r[6], r[7]) for r in rows[1 : rows.index([])]]
    assert sorted(decided) == [
        ("inv_demo_1001", "invoice_updated", "write_off"),
        ("inv_demo_1001", "payment_failed", "write_off"),
        ("inv_demo_1004", "any", "held"),
    ]
    assert ["total", "dunning-exhausted-small-balance", "1", "12.50", "USD", "payment_failed"] in rows

    declined = "  - name: declined-card\n    on: [payment_failed]\n    when: [transaction.error_code: card_declined]\n"
    rules_file(shipped.replace("rules:\n", f"rules:\n{declined}    action: write_off\n", 1))
    proc, log_path = run_sweep(settings, "--dry-run", "--report", str(report))
    output = log_path.read_text()
    assert proc.returncode == 0, output
    assert "could not preview: rule declined-card reads transaction.error_code on payment_failed" in output
    assert "on next payment_failed: 0 would be written off, 4 not previewed" in output
    rows = list(csv.reader(report.open()))
    unknown = {r[0] for r in rows[1 : rows.index([])] if r[7] == "not_previewed"}
    assert unknown == {"inv_demo_1001", "inv_demo_1002", "inv_demo_1003", "inv_demo_1006"}
    assert sandbox.state.write_off_calls() == [] and list(AuditLog(redis_conn).query()) == []
    assert redis_conn.hlen("reactor:held") == 1


def test_with_the_shipped_rules_a_swept_enterprise_invoice_is_protected_by_its_customer_record(
    sandbox, redis_conn, start_worker, rules_file, settings
):
    """A listed invoice carries no customer: protect-enterprise reads customer.cf_segment, so the
    customer is fetched before long-overdue-tiny may write off, and only the non-enterprise one goes."""
    rules_file((REPO / "rules.yaml").read_text())
    sandbox.state.add_customers(
        [{"id": "cus_big", "cf_segment": "enterprise"}, {"id": "cus_small", "cf_segment": "smb"}]
    )
    long_ago = int(time.time()) - 200 * 86400
    for invoice_id, customer_id in (("inv_big", "cus_big"), ("inv_small", "cus_small")):
        sandbox.state.add_invoice(
            id=invoice_id,
            customer_id=customer_id,
            status="not_paid",
            dunning_status="exhausted",
            currency_code="USD",
            total=300,
            amount_due=300,
            due_date=long_ago,
        )
    proc, log_path = run_sweep(settings)
    assert proc.returncode == 0, log_path.read_text()
    start_worker()

    def decided(invoice_id: str) -> list:
        final = {"skipped", "written_off", "facts_missing", "collecting", "failed"}
        return [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id)) if r.outcome in final]

    [big] = wait_for(lambda: decided("inv_big"), timeout=30, what="the enterprise invoice's decision")
    [small] = wait_for(lambda: decided("inv_small"), timeout=30, what="the other invoice's decision")
    assert (big.outcome, big.rule) == ("skipped", "protect-enterprise")
    assert "fetched customer=cus_big" in (big.detail or "")
    assert (small.outcome, small.rule) == ("written_off", "long-overdue-tiny")
    assert [c["path"] for c in sandbox.state.write_off_calls()] == ["/api/v2/invoices/inv_small/write_off"]
    assert len(sandbox.state.calls(path_contains="/customers/cus_big", method="GET")) == 1


def add_customer_invoices(sandbox, invoices_per_customer: dict[str, int]) -> dict[str, list[str]]:
    """Invoices the shipped long-overdue-tiny rule would take (exhausted, 3 USD, 200 days overdue),
    several per customer; customer id → its invoice ids."""
    long_ago = int(time.time()) - 200 * 86400
    ids: dict[str, list[str]] = {}
    for customer_id, count in invoices_per_customer.items():
        for n in range(count):
            invoice_id = f"inv_{customer_id}_{n}"
            sandbox.state.add_invoice(
                id=invoice_id,
                customer_id=customer_id,
                status="not_paid",
                dunning_status="exhausted",
                currency_code="USD",
                total=300,
                amount_due=300,
                due_date=long_ago,
            )
            ids.setdefault(customer_id, []).append(invoice_id)
    return ids


def test_a_dry_run_fetches_each_customer_once_however_many_of_its_invoices_it_decides(
    sandbox, redis_conn, rules_file, settings, tmp_path
):
    """cus_small's invoices would be written off, cus_big's are protected by its customer record,
    cus_gone is not at Chargebee (404), so its invoices are not written off either; each customer
    is asked for once in the run, however many invoices name it."""
    rules_file((REPO / "rules.yaml").read_text())
    sandbox.state.add_customers(
        [{"id": "cus_big", "cf_segment": "enterprise"}, {"id": "cus_small", "cf_segment": "smb"}]
    )
    ids = add_customer_invoices(sandbox, {"cus_big": 4, "cus_small": 5, "cus_gone": 3})
    report = tmp_path / "report.csv"
    proc, log_path = run_sweep(settings, "--dry-run", "--report", str(report))
    assert proc.returncode == 0, log_path.read_text()
    rows = list(csv.reader(report.open()))
    would = {r[0] for r in rows[1:] if r and r[0] != "total"}
    assert would == set(ids["cus_small"])
    fetched = [c["path"] for c in sandbox.state.calls(path_contains="/customers/", method="GET")]
    assert sorted(fetched) == [f"/api/v2/customers/{c}" for c in ("cus_big", "cus_gone", "cus_small")]
    assert sandbox.state.write_off_calls() == []
    assert list(AuditLog(redis_conn).query()) == []


def test_a_dry_run_whose_customer_fetch_fails_stops_with_the_reason_and_takes_no_invoice(
    sandbox, redis_conn, rules_file, settings, tmp_path
):
    """A customer Chargebee fails to answer for (500) is not a fact: no invoice of that customer is
    decided without it, the sweep stops saying why, and no report of what would go is written."""
    rules_file((REPO / "rules.yaml").read_text())
    sandbox.state.add_customers([{"id": "cus_small", "cf_segment": "smb"}])
    add_customer_invoices(sandbox, {"cus_small": 3})
    sandbox.state.add_fault("customer", status=500)
    report = tmp_path / "report.csv"
    proc, log_path = run_sweep(settings, "--dry-run", "--report", str(report))
    output = log_path.read_text()
    assert proc.returncode != 0, output
    assert "sweep stopped:" in output and "HTTP 500" in output, output
    assert not report.exists()
    assert "would be written off" not in output
    assert sandbox.state.calls(path_contains="/customers/cus_small", method="GET")
    assert sandbox.state.write_off_calls() == []
    assert list(AuditLog(redis_conn).query()) == []


def test_a_live_sweep_under_dry_run_rules_fetches_each_customer_once_and_queues_nothing(
    sandbox, redis_conn, rules_file, settings
):
    """`mode: dry_run` rules: the live sweep decides each candidate itself (nothing is queued for a
    worker), so it completes the facts as a dry run does, each customer once a run."""
    shipped = (REPO / "rules.yaml").read_text()
    assert "\nmode: live\n" in shipped
    rules_file(shipped.replace("\nmode: live\n", "\nmode: dry_run\n"))
    sandbox.state.add_customers([{"id": "cus_small", "cf_segment": "smb"}])
    add_customer_invoices(sandbox, {"cus_small": 4, "cus_gone": 2})
    proc, log_path = run_sweep(settings)
    output = log_path.read_text()
    assert proc.returncode == 0, output
    assert "4 matching, 0 queued" in output, output
    fetched = [c["path"] for c in sandbox.state.calls(path_contains="/customers/", method="GET")]
    assert sorted(fetched) == ["/api/v2/customers/cus_gone", "/api/v2/customers/cus_small"]
    assert sandbox.state.write_off_calls() == []
