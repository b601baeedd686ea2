"""`reactor rules diff` and /admin/rules/diff on the demo invoices with the shipped rules, as a new
user tries them: raising the shipped `dunning-exhausted-small-balance` threshold from 25 to 100 USD
is a change (inv_demo_1002, 49.99 USD, would be written off by its next payment_failed or
invoice_updated) in every format and on the page; a rule reading a field only the event carries is
named before the tables and exits 4; a held invoice stays held, kept in a snapshot too. Real
processes, the sandbox over HTTP and a real Redis."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from reactor.jobs.held import HeldWriteOff, hold
from reactor.sandbox import seed_demo
from tests.helpers import REPO
from tests.integration.helpers import logged_in, token
from tests.integration.ops_helpers import reactor_process

pytestmark = pytest.mark.integration

SHIPPED = (REPO / "rules.yaml").read_text()
RAISED = SHIPPED.replace("{lte: {USD: 25, EUR: 20,", "{lte: {USD: 100, EUR: 20,")
DECLINED = """\
  - name: declined-card
    on: [payment_failed]
    when:
      - transaction.error_code: card_declined
      - invoice.amount_due: {lte: 60}
    action: write_off
"""
ON_NEXT = {("inv_demo_1002", "invoice_updated"), ("inv_demo_1002", "payment_failed")}


@pytest.fixture
def demo(sandbox, rules_file, tmp_path: Path) -> Path:
    """The demo invoices, the shipped rules in force, and the copy with the threshold raised."""
    assert RAISED != SHIPPED
    seed_demo(sandbox.state)
    rules_file(SHIPPED)
    path = tmp_path / "rules.new.yaml"
    path.write_text(RAISED)
    return path


def diff(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return reactor_process(settings, "rules", "diff", *args, timeout=120)


def test_raising_the_shipped_threshold_is_a_change_in_every_format(settings, sandbox, demo) -> None:
    table = diff(settings, str(demo))
    assert table.returncode == 1, table.stdout + table.stderr
    assert "5 open invoices, 1 changed" in table.stdout
    lines = [line for line in table.stdout.splitlines() if "inv_demo_1002" in line]
    assert len(lines) == 2
    cells = [[c.strip() for c in line.split("│")] for line in lines]
    assert {(row[3], row[4]) for row in cells} == {
        ("newly_written_off", t) for t in ("invoice_updated", "payment_failed")
    }
    assert "newly written off on any trigger, each invoice once: 1 for 49.99 USD" in table.stdout

    data = json.loads(diff(settings, str(demo), "--format", "json").stdout)
    assert {(c["invoice"], c["on"]) for c in data["changes"]} == ON_NEXT
    assert {c["change"] for c in data["changes"]} == {"newly_written_off"}
    assert data["on"] == ["sweep", "invoice_updated", "payment_failed"] and data["changed"] == 1
    assert data["counts"]["newly_written_off"] == 0  # the sweep's: the rule does not list `sweep`
    assert data["on_next_event"]["payment_failed"]["by_change"]["newly_written_off"] == {
        "USD": {"count": 1, "amount": "49.99"}
    }
    assert data["newly_written_off"] == {"USD": {"count": 1, "amount": "49.99"}}

    rows = list(csv.reader(io.StringIO(diff(settings, str(demo), "--format", "csv").stdout)))
    assert {(r[0], r[3]) for r in rows[1 : rows.index([])]} == ON_NEXT
    assert ["total", "newly_written_off", "any", "1", "49.99", "USD"] in rows

    markdown = diff(settings, str(demo), "--format", "markdown")
    assert markdown.returncode == 1 and "**1 changed**" in markdown.stdout
    assert "| inv_demo_1002 | payment_failed | newly_written_off | 49.99 USD |" in markdown.stdout

    over = diff(settings, str(demo), "--fail-over", "USD=40")  # counted once, not once per event type
    assert over.returncode == 3 and "1 newly written off for 49.99 USD, over --fail-over 40 USD" in over.stderr
    assert diff(settings, str(demo), "--fail-over", "USD=49.99").returncode == 1
    assert sandbox.state.write_off_calls() == []


def test_a_rule_reading_a_field_only_the_event_carries_exits_4_naming_it_first(settings, demo) -> None:
    blind = demo.parent / "blind.yaml"
    blind.write_text(RAISED.replace("rules:\n", f"rules:\n{DECLINED}", 1))

    table = diff(settings, str(blind))
    assert table.returncode == 4, table.stdout + table.stderr
    first, *_ = table.stdout.splitlines()
    assert first == (
        "could not preview: rule declined-card reads transaction.error_code on payment_failed (only the event"
        " carries it); it changed between the files"
    )
    assert table.stdout.index("could not preview") < table.stdout.index("changed invoices")

    result = diff(settings, str(blind), "--format", "json")
    assert result.returncode == 4
    assert result.stderr.startswith("could not preview: rule declined-card reads transaction.error_code")
    data = json.loads(result.stdout)
    assert data["not_previewed"] == [
        {"rule": "declined-card", "fields": ["transaction.error_code"], "on": ["payment_failed"], "changed": True}
    ]
    unknown = {c["invoice"] for c in data["changes"] if c["change"] == "not_previewed"}
    assert "inv_demo_1002" in unknown and "inv_demo_1004" not in unknown  # 2500 JPY: over 60, known
    assert {(c["invoice"], c["on"]) for c in data["changes"] if c["change"] == "newly_written_off"} == {
        ("inv_demo_1002", "invoice_updated")
    }
    # it changes nothing where it cannot be told, but it is new: never "no change"
    quiet = demo.parent / "quiet.yaml"
    quiet.write_text(SHIPPED.replace("rules:\n", f"rules:\n{DECLINED.replace('{lte: 60}', '{lte: 0.01}')}", 1))
    assert diff(settings, str(quiet)).returncode == 4
    assert diff(settings, str(quiet), "--base", str(quiet)).returncode == 0
    assert diff(settings, str(blind), "--fail-over", "USD=10").returncode == 3  # known over the allowance: 3


def test_a_held_invoice_stays_held_online_and_in_the_snapshot(settings, redis_conn, demo, tmp_path) -> None:
    hold(redis_conn, HeldWriteOff("inv_demo_1002", rule="dunning-exhausted-small-balance", reason="undone"))
    before = redis_conn.hgetall("reactor:held")
    snap = tmp_path / "open.json.gz"

    online = diff(settings, str(demo), "--format", "json", "--snapshot", str(snap))

    assert online.returncode == 0, online.stderr  # the only invoice the edit changes is held
    data = json.loads(online.stdout)
    assert data["changes"] == [] and data["newly_written_off"] == {}
    assert data["held"].startswith("held: 1 listed invoice is held and stays held under both files: inv_demo_1002")
    assert data["on_next_event"]["payment_failed"]["outcomes"]["new"]["held"] == 1
    assert redis_conn.hgetall("reactor:held") == before, "read, never changed"
    redis_conn.delete("reactor:held")
    offline = diff(settings, str(demo), "--invoices", str(snap))
    assert offline.returncode == 0 and "inv_demo_1002 (undone) (the snapshot open.json.gz)" in offline.stdout
    assert diff(settings, str(demo)).returncode == 1  # released: the change is back


@pytest.fixture
def admin_settings(admin_settings, rules_file, sandbox):
    """The shipped rules in force and the demo invoices, there before the dashboard starts."""
    rules_file(SHIPPED)
    seed_demo(sandbox.state)
    return admin_settings


def test_the_dashboard_shows_the_raised_threshold_on_the_next_events(admin_web, sandbox) -> None:
    browser = logged_in(admin_web)
    url = f"{admin_web.url}/admin/rules/diff"
    answer = browser.post(url, data={"rules": RAISED, "csrf": token(browser.get(url, timeout=5).text)}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert "1 of 5 open invoices change" in answer.text
    rows = re.findall(r"<tr><td><code>inv_demo_1002</code></td>(.*?)</tr>", answer.text, re.S)
    cells = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows]
    assert [row[1:4] for row in cells] == [
        ["newly_written_off", "invoice_updated", "49.99 USD"],
        ["newly_written_off", "payment_failed", "49.99 USD"],
    ]
    assert re.search(r'id="diff-newly">[^<]*1 for 49.99 USD', answer.text)
    blind = RAISED.replace("rules:\n", f"rules:\n{DECLINED}", 1)
    page = browser.post(url, data={"rules": blind, "csrf": token(answer.text)}, timeout=30).text
    warning = re.search(r'<div class="errors" id="diff-not-previewed" role="alert">(.*?)</div>', page, re.S)
    assert warning and "declined-card reads transaction.error_code" in warning.group(1)
    assert sandbox.state.write_off_calls() == []
