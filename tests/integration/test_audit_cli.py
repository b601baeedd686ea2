"""`reactor audit` against a real Redis stream: filters, formats, and what the table shows."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from reactor.jobs.audit import AuditLog, AuditRecord
from tests.integration.ops_helpers import reactor, reactor_on_terminal, written_off

pytestmark = pytest.mark.integration


def append_at(redis_conn, record: AuditRecord, hours_ago: float) -> None:
    """A record as if written `hours_ago`: stream ids carry the time, and --since reads them."""
    millis = int((time.time() - hours_ago * 3600) * 1000)
    redis_conn.xadd("reactor:audit", record.to_fields(), id=f"{millis}-0")


@pytest.fixture
def trail(redis_conn) -> AuditLog:
    log = AuditLog(redis_conn)
    append_at(redis_conn, written_off("inv_old", "ev_old"), hours_ago=5)
    log.append(written_off("inv_1", "ev_1"))
    log.append(AuditRecord(event_id="ev_2", invoice_id="inv_2", outcome="no_match", rules_version="3f9c0a1b2c4d"))
    log.append(written_off("inv_3", "ev_3", amount=3000, currency="JPY"))
    return log


def test_table_shows_amounts_in_major_units_with_the_rules_version(trail, settings):
    result = reactor(settings, "audit")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "inv_1" in line)
    assert "12.50 USD" in row and "3f9c0a1b2c4d" in row and "dunning-exhausted-small-balance" in row
    assert "3000 JPY" in next(line for line in result.output.splitlines() if "inv_3" in line)
    assert "4 records" in result.output


def test_csv_export_keeps_minor_units_and_every_field(trail, settings):
    result = reactor(settings, "audit", "--format", "csv")

    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["invoice_id"] for r in rows] == ["inv_old", "inv_1", "inv_2", "inv_3"]
    first = rows[1]
    assert (first["outcome"], first["amount_due"], first["currency"], first["rules_version"]) == (
        "written_off",
        "1250",
        "USD",
        "3f9c0a1b2c4d",
    )


def test_jsonl_export_is_one_record_per_line(trail, settings):
    result = reactor(settings, "audit", "--format", "jsonl", "--outcome", "written_off")

    records = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["invoice_id"], r["amount_due"]) for r in records] == [
        ("inv_old", 1250),
        ("inv_1", 1250),
        ("inv_3", 3000),
    ]


def test_since_takes_a_duration(trail, settings):
    result = reactor(settings, "audit", "--since", "2h", "--format", "jsonl")

    assert [json.loads(line)["invoice_id"] for line in result.output.splitlines()] == ["inv_1", "inv_2", "inv_3"]


def test_invoice_and_event_filters(trail, settings):
    by_invoice = reactor(settings, "audit", "--invoice", "inv_2", "--format", "jsonl").output.splitlines()
    by_event = reactor(settings, "audit", "--event", "ev_3", "--format", "jsonl").output.splitlines()

    assert [json.loads(line)["outcome"] for line in by_invoice] == ["no_match"]
    assert [json.loads(line)["invoice_id"] for line in by_event] == ["inv_3"]


def test_limit_keeps_the_latest_records_in_time_order(trail, settings):
    result = reactor(settings, "audit", "--limit", "2", "--format", "jsonl")

    assert [json.loads(line)["invoice_id"] for line in result.output.splitlines()] == ["inv_2", "inv_3"]


def test_table_with_nothing_matching_says_so(trail, settings):
    result = reactor(settings, "audit", "--invoice", "inv_nope")

    assert result.exit_code == 0
    assert "no audit records match" in result.output


LONG_EVENT = "ev_" + "e" * 37  # the longest event id Chargebee sends (40)
LONG_INVOICE = "inv_" + "i" * 46  # the longest invoice id (50)
LONG_RULE = "small-balance-write-off-for-customers-outside-the-enterprise-plan"
LONG_REASON = (
    f"rule {LONG_RULE} matched but Chargebee is still collecting (dunning_status 'in_progress'), so nothing is"
    " written off while it may still be paid"
)


@pytest.fixture
def long_ids(redis_conn) -> AuditLog:
    log = AuditLog(redis_conn)
    log.append(written_off("inv_demo_1001", "ev_demo_payment_failed_1001"))
    record = written_off(LONG_INVOICE, LONG_EVENT)
    record.rule, record.outcome, record.action, record.reason = LONG_RULE, "collecting", "skip", LONG_REASON
    log.append(record)
    return log


@pytest.mark.parametrize("columns", [80, 120, 240])
def test_the_table_never_cuts_an_id_an_invoice_or_a_rule_name(long_ids, settings, columns):
    shown = reactor_on_terminal(settings, "audit", columns=columns)

    lines = shown.splitlines()
    assert all(len(line) <= columns for line in lines), shown
    for whole in (LONG_EVENT, LONG_INVOICE, LONG_RULE, "ev_demo_payment_failed_1001", "inv_demo_1001"):
        assert any(whole in line for line in lines), f"{whole} is cut or folded at {columns} columns:\n{shown}"
    assert " ".join(LONG_REASON.split()) in " ".join(shown.split()), shown
    assert "2 records" in shown


def test_records_with_short_ids_are_rows_with_the_reason_below(trail, settings):
    shown = reactor_on_terminal(settings, "audit", "--invoice", "inv_1", columns=160)

    header, row, reason, *_ = shown.splitlines()
    assert header.split() == ["at", "(UTC)", "event", "invoice", "rule", "action", "outcome", "amount", "mode", "rules"]
    cells = [cell.strip() for cell in row.split("  ")]
    for cell in (
        "ev_1",
        "inv_1",
        "dunning-exhausted-small-balance",
        "written_off",
        "12.50 USD",
        "live",
        "3f9c0a1b2c4d",
    ):
        assert cell in cells, shown
    assert reason.strip() == "rule dunning-exhausted-small-balance matched"
    assert reason.index("rule") == row.index("ev_1"), "the reason is below the row, from the event column on"
