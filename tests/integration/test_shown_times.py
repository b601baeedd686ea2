"""One way a moment is shown, `2026-11-25 16:40:12Z` (reactor/timestamps.py), in every table of the
`reactor` commands and on every page of the dashboard; the exports keep the full ISO 8601 time."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest

from reactor.console.deadletters import DeadLetters
from reactor.ingest.receipts import receipt
from reactor.jobs.audit import AuditLog
from reactor.jobs.held import HeldWriteOff, hold
from reactor.jobs.trace import TraceLog
from reactor.keys import Keys
from reactor.timestamps import shown_time
from tests.integration.helpers import logged_in
from tests.integration.ops_helpers import make_dead_letter, reactor, written_off

pytestmark = pytest.mark.integration

AT = "2026-11-25T16:40:12.514+00:00"
SHOWN = "2026-11-25 16:40:12Z"
INVOICE = "inv_times_1"


@pytest.fixture
def kept(redis_conn, settings) -> str:
    """A write-off recorded at AT, its receipt in the invoice's trace, a hold and a dead letter."""
    record = written_off(INVOICE, "ev_times_1")
    record.at = AT
    AuditLog(redis_conn).append(record)
    delivered = receipt("ev_times_1", "payment_failed", None, "queued", datetime.fromisoformat(AT))
    TraceLog(redis_conn, Keys()).add(INVOICE, json.loads(delivered))
    hold(redis_conn, HeldWriteOff(INVOICE, "ev_times_1", "small", 1250, "USD", held_at="2026-11-25T16:40:12+00:00"))
    event = {"id": "ev_times_2", "event_type": "payment_failed", "content": {"invoice": {"id": INVOICE}}}
    make_dead_letter(redis_conn, settings, event)
    [letter] = DeadLetters(redis_conn, settings).list()
    return shown_time(letter.failed_at)


def test_every_table_shows_times_one_way(kept, settings):
    audit = reactor(settings, "audit").output
    trace = reactor(settings, "trace", INVOICE).output
    held = reactor(settings, "held", "list").output
    dlq = reactor(settings, "dlq", "list").output

    assert f"{SHOWN}  ev_times_1" in audit
    assert f"{SHOWN}  receipt" in trace and f"{SHOWN}  outcome" in trace
    assert SHOWN in held
    assert kept in dlq
    for output in (audit, trace, held, dlq):
        assert "T16:40" not in output and "+00:00" not in output and ".514" not in output, output


def test_the_exports_keep_the_full_iso_time(kept, settings):
    [line] = reactor(settings, "audit", "--format", "jsonl", "--outcome", "written_off").output.splitlines()
    [row] = csv.DictReader(
        io.StringIO(reactor(settings, "audit", "--format", "csv", "--outcome", "written_off").output)
    )
    line = json.loads(line)
    assert line["at"] == row["at"] == AT
    steps = json.loads(reactor(settings, "trace", INVOICE, "--format", "json").output)["steps"]
    assert steps[0]["at"] == "2026-11-25T16:40:12.514+00:00"


def test_the_dashboard_shows_times_as_the_commands_do(kept, admin_web):
    browser = logged_in(admin_web)
    page = browser.get(f"{admin_web.url}/admin/", timeout=10).text
    invoice = browser.get(f"{admin_web.url}/admin/invoices/{INVOICE}", timeout=10).text

    assert page.count(SHOWN) >= 2, "the decision and the held write-off"  # recent decisions, held
    assert kept in page
    assert f'<td class="mono">{SHOWN}</td>' in invoice
    for html in (page, invoice):
        assert "T16:40" not in html and ".514" not in html
