"""The bad-debt register's pure parts: the tax within an amount written off, the relief date, a
write-off's history from the audit trail, and a row from what Chargebee shows."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from reactor.console.bad_debt import WriteOffHistory, histories, register_row, relief_from, tax_within
from reactor.jobs.audit import AuditRecord, Outcome

DELAYS = {"GB": 6, "DE": 0}
AT = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("tax", "total", "written_off", "within"),
    [
        (200, 1200, 1200, 200),  # all of it
        (165, 1000, 500, 83),  # 82.5: half up
        (164, 1000, 500, 82),  # 82.0
        (167, 1000, 600, 100),  # 100.2: down
        (1, 3, 2, 1),  # 0.67
        (0, 1000, 1000, 0),
        (100, 0, 0, 0),  # no total: nothing to prorate
    ],
)
def test_the_tax_within_is_prorated_and_rounded_half_up_to_the_minor_unit(tax, total, written_off, within):
    assert tax_within(tax, total, written_off) == within


@pytest.mark.parametrize(
    ("issued", "due", "months", "claimable"),
    [
        (date(2024, 1, 10), date(2024, 2, 9), 6, date(2024, 8, 9)),  # the later: the due date
        (date(2024, 3, 10), date(2024, 2, 9), 6, date(2024, 9, 10)),  # due before the invoice date
        (date(2024, 2, 29), date(2024, 8, 31), 6, date(2025, 2, 28)),  # a month end stays in range
        (date(2024, 5, 31), date(2024, 6, 30), 0, date(2024, 6, 30)),
        (date(2024, 5, 31), None, 6, date(2024, 11, 30)),  # no due date: the invoice date
    ],
)
def test_relief_runs_from_the_later_of_due_date_and_invoice_date(issued, due, months, claimable):
    assert relief_from(issued, due, months) == claimable


def record(outcome: Outcome, invoice_id: str, at: str, amount: int | None = 1000) -> AuditRecord:
    return AuditRecord(event_id=None, invoice_id=invoice_id, outcome=outcome, amount_due=amount, currency="GBP", at=at)


def test_a_history_is_each_write_off_with_what_followed_it_before_the_next():
    records = [
        record(Outcome.WRITTEN_OFF, "a", "2026-01-01T00:00:00+00:00"),
        record(Outcome.WRITTEN_OFF, "b", "2026-01-02T00:00:00+00:00", 500),
        record(Outcome.UNDONE, "a", "2026-01-03T00:00:00+00:00"),
        record(Outcome.WRITTEN_OFF, "a", "2026-01-04T00:00:00+00:00"),
        record(Outcome.UNDONE, "b", "2026-01-05T00:00:00+00:00"),
        record(Outcome.RECOVERED, "b", "2026-01-05T00:00:01+00:00", 500),
        record(Outcome.RECOVERED, "c", "2026-01-06T00:00:00+00:00"),  # no write-off of ours read: ignored
    ]

    found = [(h.invoice_id, h.amount, h.undone, h.recovered) for h in histories(records)]

    assert found == [("a", 1000, True, False), ("b", 500, True, True), ("a", 1000, False, False)]


def invoice(**fields) -> dict:
    values = {
        "id": "inv_1",
        "customer_id": "cus_1",
        "currency_code": "GBP",
        "date": int(datetime(2024, 1, 10, 12, tzinfo=timezone.utc).timestamp()),
        "due_date": int(datetime(2024, 2, 9, 12, tzinfo=timezone.utc).timestamp()),
        "total": 1200,
        "tax": 200,
        "billing_address": {"country": "GB"},
        "linked_payments": [],
    }
    values.update(fields)
    return values


def row(history: WriteOffHistory, inv: dict | None, today: date = date(2026, 12, 7), **kw) -> dict:
    return register_row("acme", history, inv, {"vat_number": "GB1"}, DELAYS, today, **kw).values


def test_a_row_of_a_claimable_write_off():
    values = row(WriteOffHistory("inv_1", 1200, "GBP", AT), invoice())

    assert values["relief_claimable_from"] == "2024-08-09" and values["status"] == "claimable"
    assert (values["total"], values["tax"], values["written_off"], values["tax_written_off"]) == (
        "12.00",
        "2.00",
        "12.00",
        "2.00",
    )
    assert values["site"] == "acme" and values["vat_number"] == "GB1" and values["invoice_date"] == "2024-01-10"


def test_not_yet_on_the_day_before_and_claimable_on_the_day():
    history = WriteOffHistory("inv_1", 1200, "GBP", AT)

    assert row(history, invoice(), date(2024, 8, 8))["status"] == "not yet"
    assert row(history, invoice(), date(2024, 8, 9))["status"] == "claimable"


def test_a_country_without_a_rule_is_said_never_guessed():
    values = row(WriteOffHistory("inv_1", 1200, "GBP", AT), invoice(billing_address={"country": "fr"}))
    nowhere = row(WriteOffHistory("inv_1", 1200, "GBP", AT), invoice(billing_address={}))

    assert values["relief_claimable_from"] == values["status"] == "no rule for FR"
    assert nowhere["status"] == "no rule: no billing country"


def test_recovered_before_undone_and_payments_after_the_write_off_counted():
    paid = [
        {"txn_status": "success", "applied_amount": 300, "applied_at": int(AT.timestamp()) + 60},
        {"txn_status": "success", "applied_amount": 999, "applied_at": int(AT.timestamp()) - 60},  # before
        {"txn_status": "failure", "applied_amount": 999, "applied_at": int(AT.timestamp()) + 60},
    ]
    history = WriteOffHistory("inv_1", 1200, "GBP", AT, recovered=True, undone=True)

    values = row(history, invoice(linked_payments=paid), unapplied=100)

    assert values["status"] == "recovered" and values["payments_after"] == "4.00"


def test_a_payment_applied_in_the_second_of_the_write_off_counts_as_after_it():
    written_at = datetime(2026, 12, 7, 21, 25, 6, 700_000, tzinfo=timezone.utc)  # our record: sub-second
    paid = [{"txn_status": "success", "applied_amount": 1200, "applied_at": int(written_at.timestamp())}]

    values = row(WriteOffHistory("inv_1", 1200, "GBP", written_at, recovered=True), invoice(linked_payments=paid))

    assert values["payments_after"] == "12.00"


def test_without_the_invoice_the_row_says_why_and_guesses_nothing():
    values = row(WriteOffHistory("inv_1", 1200, "GBP", AT), None, problem="invoice not fetched: 503")

    assert values["status"] == "invoice not fetched: 503"
    assert values["written_off"] == "12.00" and values["relief_claimable_from"] == values["tax_written_off"] == ""
