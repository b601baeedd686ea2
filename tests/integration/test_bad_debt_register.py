"""`reactor report bad-debt` on write-offs a real worker made in the sandbox (GB claimable and not
yet, DE part-paid, a country without a rule, one recovered, one undone), compared with the register
worked out by hand below; and the report writes nothing."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests

from reactor.jobs.audit.archive import AuditArchive
from reactor.keys import Keys
from tests.helpers import wait_for
from tests.integration.helpers import make_event, outcomes, post_event
from tests.integration.ops_helpers import reactor, reactor_process

pytestmark = pytest.mark.integration

RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500, GBP: 500, EUR: 500}
rules:
  - name: dunning-exhausted
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""


def noon(day: str) -> int:
    return int(datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp())


INVOICES = [
    # id, customer, currency, country, date, due date, total, paid, tax
    ("GB-1", "cus_gb", "GBP", "GB", "2024-02-29", "2024-08-31", 1200, 0, 200),
    ("GB-2", "cus_gb", "GBP", "GB", "2099-03-01", "2099-03-31", 600, 0, 100),
    ("DE-1", "cus_de", "EUR", "DE", "2024-05-31", "2024-06-30", 1000, 500, 165),
    ("US-1", "cus_us", "USD", "US", "2024-01-15", "2024-02-14", 1000, 0, 0),
    ("GB-3", "cus_gb", "GBP", "GB", "2024-01-31", "2024-03-31", 1200, 0, 200),
    ("GB-4", "cus_gb", "GBP", "GB", "2024-01-10", "2024-02-09", 1200, 0, 200),
]
# By hand. Relief: the later of due date and invoice date, plus GB 6 months (31 August + 6 months is
# 28 February), DE 0; US has no rule. Tax within the amount written off: DE-1 wrote off 5.00 of a
# 10.00 invoice carrying 1.65 tax, 0.825 rounded half up to 0.83. GB-3 was paid back whole after
# its write-off (recovered), GB-4 undone.
EXPECTED = [
    # invoice, date, due, customer, vat, country, cur, total, tax, written off, tax in it, relief, paid after, status
    (
        "GB-1",
        "2024-02-29",
        "2024-08-31",
        "cus_gb",
        "GB123456789",
        "GB",
        "GBP",
        "12.00",
        "2.00",
        "12.00",
        "2.00",
        "2025-02-28",
        "0.00",
        "claimable",
    ),
    (
        "GB-2",
        "2099-03-01",
        "2099-03-31",
        "cus_gb",
        "GB123456789",
        "GB",
        "GBP",
        "6.00",
        "1.00",
        "6.00",
        "1.00",
        "2099-09-30",
        "0.00",
        "not yet",
    ),
    (
        "DE-1",
        "2024-05-31",
        "2024-06-30",
        "cus_de",
        "DE811111111",
        "DE",
        "EUR",
        "10.00",
        "1.65",
        "5.00",
        "0.83",
        "2024-06-30",
        "0.00",
        "claimable",
    ),
    (
        "US-1",
        "2024-01-15",
        "2024-02-14",
        "cus_us",
        "",
        "US",
        "USD",
        "10.00",
        "0.00",
        "10.00",
        "0.00",
        "no rule for US",
        "0.00",
        "no rule for US",
    ),
    (
        "GB-3",
        "2024-01-31",
        "2024-03-31",
        "cus_gb",
        "GB123456789",
        "GB",
        "GBP",
        "12.00",
        "2.00",
        "12.00",
        "2.00",
        "2024-09-30",
        "12.00",
        "recovered",
    ),
    (
        "GB-4",
        "2024-01-10",
        "2024-02-09",
        "cus_gb",
        "GB123456789",
        "GB",
        "GBP",
        "12.00",
        "2.00",
        "12.00",
        "2.00",
        "2024-08-09",
        "0.00",
        "undone",
    ),
]
COLUMNS = (
    "invoice_number",
    "invoice_date",
    "due_date",
    "customer_id",
    "vat_number",
    "billing_country",
    "currency",
    "total",
    "tax",
    "written_off",
    "tax_written_off",
    "relief_claimable_from",
    "payments_after",
    "status",
)


@pytest.fixture
def register_site(sandbox, web, redis_conn, start_worker, rules_file, settings):
    rules_file(RULES)
    sandbox.state.add_customer(id="cus_gb", vat_number="GB123456789", preferred_currency_code="GBP")
    sandbox.state.add_customer(id="cus_de", vat_number="DE811111111", preferred_currency_code="EUR")
    sandbox.state.add_customer(id="cus_us", preferred_currency_code="USD")
    worker = start_worker()
    for invoice_id, customer, currency, country, day, due, total, paid, tax in INVOICES:
        invoice = sandbox.state.add_invoice(
            id=invoice_id,
            customer_id=customer,
            currency_code=currency,
            status="not_paid",
            dunning_status="exhausted",
            date=noon(day),
            due_date=noon(due),
            total=total,
            amount_paid=paid,
            amount_due=total - paid,
            sub_total=total - tax,
            tax=tax,
            billing_address={"first_name": "A", "country": country, "object": "billing_address"},
        )
        assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
        wait_for(lambda: "written_off" in outcomes(redis_conn, invoice_id), timeout=30, what=invoice_id)  # noqa: B023
    resp = requests.post(
        f"{sandbox.url}/_sandbox/payments",
        json={"customer_id": "cus_gb", "amount": 1200, "currency_code": "GBP", "webhook": False},
        timeout=5,
    )
    assert resp.status_code == 201, resp.text
    recovered = reactor_process(settings, "recover", "GB-3", "--transaction", resp.json()["transaction"]["id"])
    assert recovered.returncode == 0, recovered.stderr
    undone = reactor_process(settings, "undo", "GB-4", "--reason", "sent in error")
    assert undone.returncode == 0, undone.stderr
    worker.stop()  # its heartbeats are writes: the report's check wants none but the report's
    return sandbox


def test_the_register_equals_the_one_worked_out_by_hand(register_site, settings, nothing_written):
    before = len(register_site.state.calls(method="GET"))
    with nothing_written(ignore=lambda key: key.startswith(b"reactor:rl:")):
        result = reactor(settings, "report", "bad-debt", "--format", "csv")
    fetched = sorted(call["path"].rsplit("/", 2)[-2] for call in register_site.state.calls(method="GET")[before:])
    assert fetched == ["customers"] * 3 + ["invoices"] * 6, "each invoice and customer once, however many rows"

    assert result.exit_code == 0, result.stdout
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and "invoice_number" in rows[0], result.stdout
    assert [tuple(row[c] for c in COLUMNS) for row in rows] == EXPECTED
    assert {row["site"] for row in rows} == {"default"}, "the home site's name: `default`, none configured"
    now = datetime.now(timezone.utc)
    assert all(now - timedelta(hours=1) < datetime.fromisoformat(row["written_off_at"]) <= now for row in rows)


def test_a_country_and_the_other_formats(register_site, settings):
    as_json = reactor(settings, "report", "bad-debt", "--country", "gb", "--format", "json")
    as_markdown = reactor(settings, "report", "bad-debt", "--country", "DE", "--format", "markdown")
    as_table = reactor(settings, "report", "bad-debt")

    assert as_json.exit_code == 0, as_json.stdout
    data = json.loads(as_json.stdout)
    assert [row["invoice_number"] for row in data["rows"]] == ["GB-1", "GB-2", "GB-3", "GB-4"]
    assert any("rounded half up" in note for note in data["notes"])
    assert any("GB 6 months" in note and "DE 0 months" in note for note in data["notes"])
    assert as_markdown.exit_code == 0 and "| DE-1 | 2024-05-31 |" in as_markdown.stdout, as_markdown.stdout
    assert "GB-1" not in as_markdown.stdout
    assert as_table.exit_code == 0 and "no rule for US" in as_table.stdout and "rounded half up" in as_table.stdout


def test_a_window_selects_by_the_time_written_off(register_site, settings):
    later = reactor(settings, "report", "bad-debt", "--from", "2099-01-01", "--format", "csv")
    upto = reactor(settings, "report", "bad-debt", "--to", "2020-01-01", "--format", "csv")

    assert later.exit_code == 0 and upto.exit_code == 0, later.stdout + upto.stdout
    assert len(later.stdout.splitlines()) == 1 and len(upto.stdout.splitlines()) == 1, "the header only"


def test_an_invoice_chargebee_cannot_show_is_said_so_never_guessed(register_site, settings):
    register_site.state.add_fault("retrieve", status=503, times=None)

    result = reactor(settings, "report", "bad-debt", "--format", "csv")

    assert result.exit_code == 0, result.stdout
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 6
    for row in rows:
        assert row["status"].startswith("invoice not fetched"), row
        assert row["relief_claimable_from"] == "" and row["tax_written_off"] == "" and row["written_off"] != ""


def test_write_offs_archived_and_trimmed_from_redis_stay_in_the_register(
    register_site, settings, redis_conn, nothing_written
):
    stream = Keys(settings.key_prefix).audit()
    archive = AuditArchive(redis_conn, stream, settings.audit_archive_url, keep=0)
    done = archive.run(flush=True)
    assert done is not None and done.records and redis_conn.xlen(stream) == 0  # every record left Redis
    with nothing_written(ignore=lambda key: key.startswith(b"reactor:rl:")):
        result = reactor(settings, "report", "bad-debt", "--format", "csv")
    assert result.exit_code == 0, result.stdout
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [tuple(row[c] for c in COLUMNS) for row in rows] == EXPECTED
