"""The pure parts of the undo (reactor/console/undo.py, reactor/jobs/write_off.py): when an invoice no
longer carries our write-off, which credit note is the write-off's, and the idempotency keys that
make a repeated undo a replay and the write-off after an undo a new request."""

from __future__ import annotations

import pytest

from reactor.console.undo import UndoResult, undo_key, write_off_gone, write_off_note
from reactor.jobs.send import idempotency_key


def note(cn_id: str = "CN-1", status: str = "adjusted", reason: str = "Write Off") -> dict:
    return {"cn_id": cn_id, "cn_status": status, "cn_create_reason_code": reason, "cn_total": 1250}


def invoice(*notes: dict, write_off_amount: int = 1250) -> dict:
    return {"id": "inv_1", "adjustment_credit_notes": list(notes), "write_off_amount": write_off_amount}


@pytest.mark.parametrize(
    ("shown", "gone"),
    [
        (invoice(note()), False),
        (invoice(), True),  # removed: no longer listed
        (invoice(note(status="voided")), True),
        (invoice(note(), write_off_amount=0), True),
        (invoice(note("CN-2")), True),  # another note; ours is gone
        ({"id": "inv_1", "write_off_amount": 1250}, False),  # no list: not taken for reversed
        ({"id": "inv_1"}, False),
    ],
)
def test_gonereads_our_credit_note_on_the_invoice(shown, gone):
    assert write_off_gone(shown, "CN-1") is gone


def test_the_write_off_note_is_found_only_when_there_is_exactly_one():
    assert write_off_note(invoice(note(), note("CN-9", reason="Other"))) == "CN-1"
    assert write_off_note(invoice(note(), note("CN-2"))) is None
    assert write_off_note(invoice(note(status="voided"))) is None
    assert write_off_note(invoice({"cn_id": "CN-3", "cn_reason_code": "write_off"})) == "CN-3"
    assert write_off_note({"id": "inv_1"}) is None


def test_keys_are_stable_short_and_distinct():
    assert undo_key("acme", "inv_1", "CN-1") == undo_key("acme", "inv_1", "CN-1")
    assert undo_key("acme", "inv_1", "CN-1") != undo_key("acme", "inv_1", "CN-2")
    assert len(undo_key("a" * 200, "i" * 200, "c" * 200)) <= 100
    first = idempotency_key("acme", "inv_1", "rule")
    assert first == idempotency_key("acme", "inv_1", "rule", 0), "unchanged for invoices never undone"
    assert len({first, idempotency_key("acme", "inv_1", "rule", 1), idempotency_key("acme", "inv_1", "rule", 2)}) == 3


def test_the_summary_says_what_chargebee_shows():
    done = UndoResult("inv_1", "CN-1", "not_paid", 1250, "USD", None, "1-0")
    again = UndoResult("inv_1", "CN-1", "posted", 500, "JPY", "already reversed in Chargebee", "1-0")
    assert done.summary() == (
        "inv_1: write-off undone (credit note CN-1 removed in Chargebee); the invoice is not_paid, 12.50 USD due"
    )
    assert "(already reversed in Chargebee)" in again.summary() and "500 JPY due" in again.summary()
