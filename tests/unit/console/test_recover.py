"""What `reactor recover` reads on an invoice to know a payment is applied (`applied_by`), and its
idempotency key (`recover_key`)."""

from __future__ import annotations

from datetime import datetime, timezone

from reactor.console.recover import applied_by, recover_key

SINCE = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
AT = int(SINCE.timestamp())


def payment(txn: str, amount: int, at: int = AT + 5, status: str = "success") -> dict:
    return {"txn_id": txn, "applied_amount": amount, "applied_at": at, "txn_status": status}


def test_only_successful_payments_of_the_transaction_since_the_reversal_count():
    invoice = {
        "linked_payments": [
            payment("txn_1", 500),
            payment("txn_1", 200),
            payment("txn_2", 300),
            payment("txn_1", 900, at=AT - 3600),  # before our reversal: paid before the write-off
            payment("txn_1", 400, status="failure"),
            "not a payment",
        ]
    }

    assert applied_by(invoice, "txn_1", SINCE.isoformat()) == 700
    assert applied_by(invoice, None, SINCE.isoformat()) == 1000  # excess payments: any payment
    assert applied_by(invoice, "txn_3", SINCE.isoformat()) == 0
    assert applied_by({}, "txn_1", SINCE.isoformat()) == 0


def test_an_unreadable_time_counts_nothing_so_no_payment_is_taken_for_ours():
    invoice = {"linked_payments": [payment("txn_1", 900), {"txn_id": "txn_1", "applied_amount": 5}]}

    assert applied_by(invoice, "txn_1", "not a time") == 0
    assert applied_by(invoice, "txn_1", None) == 0
    assert applied_by(invoice, "txn_1", SINCE.isoformat()) == 900  # one without a time or status: not counted


def test_the_key_is_stable_per_site_invoice_and_transaction():
    key = recover_key("acme", "inv_1", "txn_1")

    assert key == recover_key("acme", "inv_1", "txn_1") and key.startswith("reactor-recover-") and len(key) <= 100
    assert len({key, recover_key("acme-test", "inv_1", "txn_1"), recover_key("acme", "inv_2", "txn_1")}) == 3
    assert recover_key("acme", "inv_1", None) != key
