"""`reactor rules diff` and /admin/rules/diff apply the budgets as they would be on the day: from
what today's counters in Redis have used (read, never reserved), kept in a snapshot for the offline
diff; a snapshot from before they were kept starts from zero and says so. Real Redis, the sandbox
over HTTP, the command as a process."""

from __future__ import annotations

import gzip
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from reactor.jobs.budget import Budgets, Reservation, budget_keys
from reactor.rules import parse_rules
from tests.integration.helpers import logged_in, token
from tests.integration.ops_helpers import reactor, reactor_process
from tests.integration.rules_diff_helpers import AT, BASE, NEW, seed_site

pytestmark = pytest.mark.integration

AT_TIME = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
STARTED = "USD 45.00 of 100 used today"


@pytest.fixture
def new_rules(tmp_path: Path, rules_file, sandbox) -> Path:
    seed_site(sandbox)
    rules_file(BASE)
    path = tmp_path / "new.yaml"
    path.write_text(NEW)
    return path


def used(redis_conn, settings, amount: int, now: datetime) -> None:
    """Today's budget as the workers take it: `amount` USD cents and one write-off this hour."""
    limits = parse_rules(NEW).limits
    assert isinstance(Budgets(redis_conn, limits, prefix=settings.key_prefix).reserve("USD", amount, now), Reservation)


def counters(redis_conn, settings, now: datetime) -> tuple[dict, bytes | None]:
    day, hour = budget_keys(settings.key_prefix, now)
    return redis_conn.hgetall(day), redis_conn.get(hour)


def cells(html: str, invoice_id: str) -> list[str]:
    row = re.search(rf"<tr><td><code>{invoice_id}</code></td>(.*?)</tr>", html, re.S)
    assert row, f"no row for {invoice_id}"
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def changes(stdout: str) -> dict[str, str]:
    return {c["invoice"]: c["change"] for c in json.loads(stdout)["changes"]}


@pytest.mark.timeout(360)  # eight `reactor rules diff` processes; Python's start alone is seconds on a busy machine
def test_the_diff_starts_from_what_todays_budget_has_used(settings, redis_conn, new_rules, tmp_path) -> None:
    used(redis_conn, settings, 4500, AT_TIME)  # 45 of the 100 USD: 10 (inv_a) fits, 50 more (inv_b) does not
    before = counters(redis_conn, settings, AT_TIME)
    snap = tmp_path / "open.json.gz"

    online = reactor_process(
        settings, "rules", "diff", str(new_rules), "--format", "json", "--at", AT, "--snapshot", str(snap)
    )

    assert online.returncode == 1, online.stderr
    data = json.loads(online.stdout)
    assert changes(online.stdout)["inv_b"] == "held"
    assert STARTED in data["budgets"] and "Redis" in data["budgets"]
    assert counters(redis_conn, settings, AT_TIME) == before, "read, not reserved"

    # offline: the counts the snapshot kept, not what Redis holds now
    redis_conn.delete(*budget_keys(settings.key_prefix, AT_TIME))
    for fmt in ("json", "table", "csv", "markdown"):
        offline = reactor_process(
            settings, "rules", "diff", str(new_rules), "--invoices", str(snap), "--format", fmt, "--at", AT
        )
        assert offline.returncode == 1, offline.stderr
        assert STARTED in offline.stdout and "the snapshot open.json.gz" in offline.stdout, fmt
    again = reactor_process(
        settings, "rules", "diff", str(new_rules), "--invoices", str(snap), "--format", "json", "--at", AT
    )
    assert changes(again.stdout) == changes(online.stdout)
    # decided on another day than the counts were read: that day's budget starts from zero, and says so
    later = reactor_process(
        settings,
        "rules",
        "diff",
        str(new_rules),
        "--invoices",
        str(snap),
        "--format",
        "json",
        "--at",
        "2026-11-27T12:00:00Z",
    )
    assert changes(later.stdout)["inv_b"] == "newly_written_off"
    assert "of another day or hour" in json.loads(later.stdout)["budgets"]

    # a snapshot from before the counts were kept: from zero, and the output says so
    with gzip.open(snap, "rt") as handle:
        old = json.load(handle)
    del old["budgets_used"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(old))
    from_zero = reactor_process(
        settings, "rules", "diff", str(new_rules), "--invoices", str(older), "--format", "json", "--at", AT
    )
    assert changes(from_zero.stdout)["inv_b"] == "newly_written_off"
    assert "from zero" in json.loads(from_zero.stdout)["budgets"]


def test_the_dashboard_starts_from_what_todays_budget_has_used(admin_web, settings, redis_conn, new_rules) -> None:
    now = datetime.now(timezone.utc)
    used(redis_conn, settings, 4500, now)
    before = counters(redis_conn, settings, now)
    browser = logged_in(admin_web)
    url = f"{admin_web.url}/admin/rules/diff"
    answer = browser.post(url, data={"rules": NEW, "csrf": token(browser.get(url, timeout=5).text)}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert STARTED in answer.text
    assert cells(answer.text, "inv_b")[1] == "held"
    assert counters(redis_conn, settings, now) == before


def test_the_budgets_line_shows_control_characters_escaped(settings, new_rules, tmp_path) -> None:
    snap = tmp_path / "open.json"
    taken = reactor_process(settings, "rules", "diff", str(new_rules), "--at", AT, "--snapshot", str(snap))
    assert taken.returncode == 1, taken.stderr
    data = json.loads(snap.read_text())
    data["budgets_used"]["spent"] = {"US\x1b]0;owned\x07D": 100}
    snap.write_text(json.dumps(data))

    table = reactor(settings, "rules", "diff", str(new_rules), "--invoices", str(snap), "--at", AT)

    assert table.exit_code == 1, table.output
    assert "\x1b" not in table.output and "\x07" not in table.output
    assert "budgets: EUR 0.00 of 100 used today, US\\x1b]0;owned\\x07D" in table.output
