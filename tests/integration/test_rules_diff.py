"""`reactor rules diff` as a real subprocess against the sandbox over HTTP and a real Redis: every
kind of change on a small site, a snapshot diffed again offline with the same answer and no call to
Chargebee, the csv/json/markdown outputs parsed, and the exit codes a CI job reads."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from reactor.console.diff_formats import CHANGE_COLUMNS
from tests.integration.ops_helpers import reactor_process
from tests.integration.rules_diff_helpers import AT, BASE, INVOICES, NEW, PROTECT, seed_site

pytestmark = pytest.mark.integration


@pytest.fixture
def site(sandbox) -> None:
    seed_site(sandbox)


@pytest.fixture
def new_rules(tmp_path: Path, rules_file) -> Path:
    rules_file(BASE)  # the rules in force ($REACTOR_RULES)
    path = tmp_path / "new.yaml"
    path.write_text(NEW)
    return path


def diff(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return reactor_process(settings, "rules", "diff", *args, timeout=120)


def sandbox_calls(sandbox) -> int:
    return len(sandbox.state.calls())


def test_every_kind_of_change_against_the_rules_in_force(settings, sandbox, site, new_rules) -> None:
    result = diff(settings, str(new_rules), "--format", "json", "--at", AT)
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    expected = {inv: kind for inv, (_, kind) in INVOICES.items() if kind}
    assert {c["invoice"]: c["change"] for c in data["changes"]} == expected
    assert data["invoices"] == len(INVOICES)
    assert data["base"] == str(settings.rules_path) and data["at"] == "2026-11-26T12:00:00+00:00"
    by_id = {c["invoice"]: c for c in data["changes"]}
    assert by_id["inv_c"]["new"]["reason"] == "limits.max_per_day for USD (100 USD) would be passed today"
    assert "still collecting" in by_id["inv_d"]["new"]["reason"]
    assert by_id["inv_f"]["new"] == {
        "outcome": "skip",
        "rule": "no-euro",
        "comment": None,
        "reason": "rule no-euro matched",
    }
    assert data["by_change"]["newly_written_off"] == {"USD": {"count": 1, "amount": "50.00"}}
    assert data["written_off"]["old"] == {
        "EUR": {"count": 1, "amount": "20.00"},
        "USD": {"count": 1, "amount": "10.00"},
    }
    assert data["written_off"]["new"] == {"USD": {"count": 2, "amount": "60.00"}}
    assert data["by_rule"]["exhausted-medium"]["new"] == {"USD": {"count": 2, "amount": "60.00"}}
    assert data["outcomes"]["new"]["skip"] == 2 and data["outcomes"]["old"]["skip"] == 1
    customers = [c["path"] for c in sandbox.state.calls(path_contains="/customers/")]
    assert sorted(set(customers)) == sorted(customers) and len(customers) == 2  # each customer fetched once
    assert data["chargebee_calls"] == 3  # one page of invoices, two customers


def test_snapshot_then_offline_gives_the_same_answer_without_chargebee(settings, sandbox, site, new_rules, tmp_path):
    snap = tmp_path / "open.json.gz"
    online = diff(settings, str(new_rules), "--format", "json", "--at", AT, "--snapshot", str(snap))
    assert online.returncode == 1, online.stderr
    before = sandbox_calls(sandbox)
    offline = diff(settings, str(new_rules), "--format", "json", "--at", AT, "--invoices", str(snap))
    assert offline.returncode == 1, offline.stderr
    assert sandbox_calls(sandbox) == before
    first, second = json.loads(online.stdout), json.loads(offline.stdout)
    assert second["chargebee_calls"] == 0 and second["source"] == str(snap)
    for data in (first, second):
        del data["chargebee_calls"], data["source"]
        assert data.pop("budgets").startswith("budgets: EUR 0.00 of 100 used today, USD 0.00 of 100 used today (")
        assert data.pop("held").startswith("held: no listed invoice is held (")
    assert first == second
    # a snapshot taken under rules that read no customer, diffed against rules that do: the write-offs
    # that would rest on a customer not in it are blocked, with the reason, never written off
    plain = tmp_path / "plain.yaml"
    plain.write_text(BASE.replace(PROTECT, ""))
    bare = tmp_path / "bare.json"
    assert diff(settings, str(plain), "--base", str(plain), "--snapshot", str(bare)).returncode == 0
    other = diff(settings, str(new_rules), "--base", str(plain), "--format", "json", "--invoices", str(bare))
    assert other.returncode == 1, other.stderr
    verdicts = {c["invoice"]: c["new"] for c in json.loads(other.stdout)["changes"]}
    assert json.loads(other.stdout)["outcomes"]["new"]["write_off"] == 0
    assert verdicts["inv_a"]["outcome"] == "blocked"
    assert "customer cus_smb is not in the snapshot" in verdicts["inv_a"]["reason"]


def test_csv_and_markdown_parse(settings, sandbox, site, new_rules) -> None:
    result = diff(settings, str(new_rules), "--format", "csv", "--at", AT)
    assert result.returncode == 1, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == list(CHANGE_COLUMNS)
    changes = rows[1 : rows.index([])]
    assert {r[0]: r[2] for r in changes} == {inv: kind for inv, (_, kind) in INVOICES.items() if kind}
    assert ["total", "newly_written_off", "sweep", "1", "50.00", "USD"] in rows
    assert ["total", "newly_written_off", "any", "1", "50.00", "USD"] in rows
    markdown = diff(settings, str(new_rules), "--format", "markdown", "--at", AT).stdout
    tables = [line for line in markdown.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in tables) and "**5 changed**" in markdown
    assert any(line.startswith("| inv_b | sweep | newly_written_off | 50.00 USD |") for line in tables)
    table = diff(settings, str(new_rules), "--at", AT)
    assert table.returncode == 1 and "7 open invoices, 5 changed; 3 Chargebee calls" in table.stdout


def test_exit_codes_for_ci(settings, sandbox, site, new_rules, tmp_path) -> None:
    snap = tmp_path / "open.json"
    assert diff(settings, str(settings.rules_path), "--snapshot", str(snap)).returncode == 0  # no change
    offline = ("--invoices", str(snap), "--at", AT)
    assert diff(settings, str(new_rules), *offline, "--fail-over", "USD=100").returncode == 1
    over = diff(settings, str(new_rules), *offline, "--fail-over", "USD=49.99")
    assert over.returncode == 3 and "over --fail-over 49.99 USD" in over.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nmode: live\nrules:\n  - name: x\n    when: [invoice.amount_due: {lte: nope}]\n")
    refused = diff(settings, str(broken), *offline)
    assert refused.returncode == 2 and f"{broken}:5:" in refused.stderr and "Traceback" not in refused.stderr
    assert diff(settings, str(new_rules), "--invoices", str(tmp_path / "none.json")).returncode == 2
    assert diff(settings, str(new_rules), *offline, "--fail-over", "lots").returncode == 2
    no_redis = diff(replace(settings, redis_url="redis://127.0.0.1:1/0"), str(new_rules))
    assert no_redis.returncode == 2 and no_redis.stderr.startswith("Error: cannot reach Redis")
    assert no_redis.stderr.count("\n") == 1


def test_the_snapshot_never_replaces_a_rules_file_and_is_readable_by_its_owner_only(
    settings, sandbox, site, new_rules, tmp_path
) -> None:
    """A rules file read by the run, by any name (a symlink, a hard link), is refused before any
    Chargebee call and left as it was; the snapshot replaces a file that was there, as 0600."""
    rules_in_force = settings.rules_path
    before = {path: path.read_bytes() for path in (new_rules, rules_in_force)}
    symlink, hard_link = tmp_path / "link.yaml", tmp_path / "hard.yaml"
    symlink.symlink_to(rules_in_force)
    os.link(new_rules, hard_link)
    calls = sandbox_calls(sandbox)
    for target, read in ((new_rules, new_rules), (symlink, rules_in_force), (hard_link, new_rules)):
        result = diff(settings, str(new_rules), "--snapshot", str(target))
        assert result.returncode == 2, result.stderr
        assert (
            result.stderr == f"Error: cannot write the snapshot to {target}: it is {read}, read by this run;"
            " name another file\n"
        )
    assert {path: path.read_bytes() for path in (new_rules, rules_in_force)} == before
    assert sandbox_calls(sandbox) == calls and symlink.is_symlink()

    snap = tmp_path / "open.json.gz"
    snap.write_text("an older file")
    snap.chmod(0o644)
    taken = diff(settings, str(new_rules), "--snapshot", str(snap), "--at", AT)
    assert taken.returncode == 1, taken.stderr
    assert stat.S_IMODE(snap.stat().st_mode) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == []  # no temporary left
    assert diff(settings, str(new_rules), "--invoices", str(snap), "--at", AT).returncode == 1


def test_a_rule_limited_to_webhooks_is_previewed_on_its_events(settings, site, rules_file, tmp_path):
    """A rule with `on: [payment_failed]` never sees a swept invoice: its edit shows on the invoice's
    next payment_failed, in every format, and counts in the exit code."""
    hooks = "  - name: hooks-only\n    on: [payment_failed]\n    when:\n      - invoice.dunning_status: exhausted\n"
    rules_file(
        f"version: 1\nmode: live\nrules:\n{hooks}      - invoice.amount_due: {{lte: 25}}\n    action: write_off\n"
    )
    new = tmp_path / "new.yaml"
    new.write_text(
        f"version: 1\nmode: live\nrules:\n{hooks}      - invoice.amount_due: {{lte: 80}}\n    action: write_off\n"
    )

    table = diff(settings, str(new), "--at", AT)
    assert table.returncode == 1, table.stderr
    assert "7 open invoices, 2 changed" in table.stdout and "on: sweep (" in table.stdout
    data = json.loads(diff(settings, str(new), "--format", "json", "--at", AT).stdout)
    assert data["on"] == ["sweep", "payment_failed"] and data["counts"]["newly_written_off"] == 0
    assert [(c["invoice"], c["on"], c["change"]) for c in data["changes"]] == [
        ("inv_b", "payment_failed", "newly_written_off"),  # 50 USD
        ("inv_c", "payment_failed", "newly_written_off"),  # 70 USD
    ]
    assert data["newly_written_off"] == {"USD": {"count": 2, "amount": "120.00"}}
    assert diff(settings, str(new), "--at", AT, "--fail-over", "USD=119.99").returncode == 3
