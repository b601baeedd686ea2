"""reactor/console/rules_diff.py offline (a snapshot, no Chargebee) and reactor/console/diff_formats.py:
decisions under two files with facts from the snapshot, a fact the snapshot lacks blocking the
write-off, snapshots refused in one line, and the csv/json/markdown outputs parsed back."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import stat
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from reactor.console.diff_formats import CHANGE_COLUMNS, to_csv, to_json, to_markdown
from reactor.console.rules_diff import (
    FactSource,
    Listing,
    SnapshotError,
    check_snapshot_path,
    diff_listing,
    load_snapshot,
    save_snapshot,
)
from reactor.rules import parse_rules
from tests.helpers import REPO

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
HEAD = "version: 1\nmode: live\nlimits:\n  max_write_off: {USD: 500}\nrules:\n"
PROTECT = "  - name: protect\n    when: [customer.cf_segment: enterprise]\n    action: skip\n"
SMALL = "  - name: small\n    when: [invoice.amount_due: {lte: 25}]\n    action: write_off\n"
MEDIUM = "  - name: medium\n    when: [invoice.amount_due: {lte: 80}]\n    action: write_off\n"


def invoice(invoice_id: str, amount: int, customer: str = "cus_1") -> dict:
    return {
        "id": invoice_id,
        "customer_id": customer,
        "status": "not_paid",
        "dunning_status": "exhausted",
        "amount_due": amount,
        "currency_code": "USD",
    }


def listing() -> Listing:
    invoices = [invoice("i1", 1000), invoice("i2", 5000), invoice("i3", 1000, "cus_ent"), invoice("i4", 9000)]
    customers = {
        "cus_1": {"id": "cus_1", "cf_segment": "smb"},
        "cus_ent": {"id": "cus_ent", "cf_segment": "enterprise"},
    }
    return Listing(invoices, customers, {}, NOW.isoformat(), "test")


def test_decided_under_both_with_facts_from_the_snapshot() -> None:
    snap = listing()
    diff = diff_listing(parse_rules(HEAD + PROTECT + SMALL), parse_rules(HEAD + PROTECT + MEDIUM), snap, NOW,
                        FactSource(snap, None))  # fmt: skip
    assert {c.row.invoice_id: c.kind for c in diff.changes} == {"i1": "other_rule", "i2": "newly_written_off"}
    assert diff.outcomes["new"]["skip"] == 1 and snap.calls == 0  # i3 protected: its customer was read


def test_a_customer_the_snapshot_lacks_blocks_the_write_off() -> None:
    snap = listing()
    snap.customers.pop("cus_ent")
    diff = diff_listing(parse_rules(HEAD + SMALL), parse_rules(HEAD + PROTECT + SMALL), snap, NOW,
                        FactSource(snap, None))  # fmt: skip
    (change,) = diff.changes
    assert (change.row.invoice_id, change.kind, change.row.new.outcome) == ("i3", "blocked", "blocked")
    assert "customer cus_ent is not in the snapshot" in change.row.new.reason


def test_a_customer_chargebee_did_not_have_is_a_missing_fact() -> None:
    snap = listing()
    snap.customers["cus_ent"] = None  # fetched: 404
    diff = diff_listing(parse_rules(HEAD + SMALL), parse_rules(HEAD + PROTECT + SMALL), snap, NOW,
                        FactSource(snap, None))  # fmt: skip
    (change,) = diff.changes
    assert change.row.new.outcome == "blocked" and "404" in change.row.new.reason


@pytest.mark.parametrize("name", ["snap.json", "snap.json.gz"])
def test_snapshot_round_trip(tmp_path, name) -> None:
    kept = listing()
    kept.held = {"i2": "undone"}
    save_snapshot(tmp_path / name, kept)
    again = load_snapshot(tmp_path / name)
    assert (again.invoices, again.customers, again.taken_at, again.held) == (
        listing().invoices,
        listing().customers,
        NOW.isoformat(),
        {"i2": "undone"},
    )


def test_a_snapshot_from_before_holds_were_kept_loads_and_says_holds_are_unknown(tmp_path) -> None:
    save_snapshot(tmp_path / "snap.json", listing())
    data = json.loads((tmp_path / "snap.json").read_text())
    del data["held"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = load_snapshot(tmp_path / "old.json")
    assert old.held is None
    diff = diff_listing(parse_rules(HEAD + SMALL), parse_rules(HEAD + MEDIUM), old, NOW, FactSource(old, None))
    assert diff.held.startswith("held: unknown (the snapshot predates kept holds)")


def test_a_held_invoice_is_held_under_both_files_on_every_trigger() -> None:
    """i2 (50 USD) would be newly written off by `medium`, on the sweep and on a next payment_failed;
    it is in the held list, so it stays held everywhere and nothing counts as newly written off."""
    hooks = "    on: [payment_failed, sweep]\n"
    small, medium = SMALL.replace("    when", hooks + "    when"), MEDIUM.replace("    when", hooks + "    when")
    snap = listing()
    free = diff_listing(parse_rules(HEAD + small), parse_rules(HEAD + medium), snap, NOW, FactSource(snap, None))
    newly = {(c.row.invoice_id, c.row.on) for c in free.changes if c.kind == "newly_written_off"}
    assert newly == {("i2", "sweep"), ("i2", "payment_failed")}  # invoice_updated (no rule sees it): no change
    assert free.newly_written_off == {"USD": (1, Decimal("50.00"))}  # written off once, whichever comes first
    snap.held = {"i2": "undone"}
    diff = diff_listing(parse_rules(HEAD + small), parse_rules(HEAD + medium), snap, NOW, FactSource(snap, None))
    assert diff.plan.triggers == ("sweep", "payment_failed", "invoice_updated")
    held = [row for row in diff.rows if row.invoice_id == "i2"]
    assert len(held) == 3 and all(row.old.outcome == row.new.outcome == "held" for row in held)
    assert "undone" in held[0].new.reason
    assert "i2" not in {c.row.invoice_id for c in diff.changes} and diff.newly_written_off == {}
    assert diff.held.startswith("held: 1 listed invoice is held and stays held under both files: i2 (undone)")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "not JSON"),
        (b'{"format": "other"}', "not a snapshot written by"),
        (
            b'{"format": "reactor-rules-diff-snapshot/1", "invoices": {}, "customers": {}, "subscriptions": {}}',
            "a list",
        ),
        (b"\xff\xfe", "not a snapshot"),
    ],
)
def test_a_bad_snapshot_is_refused_in_one_line(tmp_path, content, says) -> None:
    (tmp_path / "s.json").write_bytes(content)
    with pytest.raises(SnapshotError, match=says) as refused:
        load_snapshot(tmp_path / "s.json")
    assert "\n" not in str(refused.value)
    with pytest.raises(SnapshotError, match="cannot read"):
        load_snapshot(tmp_path / "missing.json")
    with pytest.raises(SnapshotError, match="it is a directory"):
        check_snapshot_path(tmp_path)
    with pytest.raises(SnapshotError, match="no directory"):
        check_snapshot_path(tmp_path / "nowhere" / "s.json")


@pytest.mark.parametrize("name", ["snap.json", "snap.json.gz"])
def test_a_snapshot_is_written_whole_and_readable_by_its_owner_only(tmp_path, name) -> None:
    """It holds customer data: 0600 whatever the umask, also over a file that was 0644; written
    beside and renamed, so a write that fails halfway leaves the file that was there, and no other."""
    path = tmp_path / name
    umask = os.umask(0o022)
    try:
        save_snapshot(path, listing())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        kept = path.read_bytes()
        path.chmod(0o644)
        broken = listing()
        broken.invoices.append({"id": "i5", "amount_due": object()})  # json.dump fails after the first invoices
        with pytest.raises(TypeError):
            save_snapshot(path, broken)
        assert path.read_bytes() == kept and [p.name for p in tmp_path.iterdir()] == [name]
        save_snapshot(path, listing())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert load_snapshot(path).invoices == listing().invoices
    finally:
        os.umask(umask)


def test_formats_parse_and_keep_cells_harmless() -> None:
    snap = listing()
    snap.invoices[0]["id"] = "=cmd|x"  # an id from outside: no formula in a spreadsheet, no broken table
    diff = diff_listing(parse_rules(HEAD + SMALL), parse_rules(HEAD + MEDIUM), snap, NOW, FactSource(snap, None))
    header = {"base": "old.yaml", "new": "new.yaml", "at": NOW.isoformat()}
    data = json.loads(to_json(diff, header))
    assert data["counts"]["other_rule"] == 2 and data["changes"][0]["invoice"] == "=cmd|x"
    rows = list(csv.reader(io.StringIO(to_csv(diff))))
    assert rows[0] == list(CHANGE_COLUMNS) and rows[1][0] == "'=cmd|x"
    markdown = to_markdown(diff, header)
    table = [line for line in markdown.splitlines() if line.startswith("| =cmd")]
    assert table and "=cmd\\|x" in table[0] and table[0].count(" | ") == 6  # the pipe does not split the row


@pytest.mark.parametrize("name", ["snap.json", "snap.json.gz"])
def test_a_snapshot_past_the_limit_is_refused_in_one_line(tmp_path, name) -> None:
    save_snapshot(tmp_path / name, listing())
    size = len(json.dumps(load_snapshot(tmp_path / name).invoices))  # less than the whole file
    assert load_snapshot(tmp_path / name, limit=10 * size).invoices == listing().invoices
    with pytest.raises(SnapshotError, match=r"holds more than .* the most a snapshot may") as refused:
        load_snapshot(tmp_path / name, limit=size)
    assert "\n" not in str(refused.value)


def test_a_gzip_bomb_is_refused_by_the_command_without_holding_it(tmp_path) -> None:
    """300 MiB of spaces in 300 kB of gzip: refused, exit 2, in far less memory than the file holds
    (the whole file was read and parsed before: 670 MB resident)."""
    bomb, rules = tmp_path / "open.json.gz", tmp_path / "rules.yaml"
    rules.write_text(HEAD + SMALL)
    with gzip.open(bomb, "wb", compresslevel=1) as handle:
        for _ in range(300):
            handle.write(b" " * (1 << 20))
    measure = (
        "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, repr(done.stderr))"
    )
    command = [sys.executable, "-m", "reactor", "rules", "diff", str(rules), "--invoices", str(bomb)]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "REACTOR_RULES": str(rules)}
    out = subprocess.run([sys.executable, "-c", measure, *command], env=env, cwd=REPO, capture_output=True, text=True)
    code, peak_kib, stderr = out.stdout.split(" ", 2)
    assert int(code) == 2, stderr
    assert "holds more than 256 MiB of JSON" in stderr and stderr.count("\\n") == 1
    assert int(peak_kib) < 150 * 1024, f"peak {int(peak_kib) // 1024} MiB"
