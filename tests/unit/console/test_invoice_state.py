"""The one line the invoice page starts with, from the invoice's audit records and its held entry
(tests/integration/test_undo_dashboard.py and test_admin_trace.py show it on the page)."""

from __future__ import annotations

from reactor.console.invoice_state import standing
from reactor.jobs.audit import AuditRecord, Outcome
from reactor.jobs.held import HeldWriteOff


def record(outcome: Outcome, at: str, n: int, **fields: object) -> AuditRecord:
    return AuditRecord(event_id="ev_1", invoice_id="inv_1", outcome=outcome, at=at, id=f"{n}-0", **fields)  # type: ignore[arg-type]


WRITTEN = record(Outcome.WRITTEN_OFF, "T1", 1, rule="small", amount_due=1250, currency="USD")
UNDONE = record(Outcome.UNDONE, "T2", 2, amount_due=1250, currency="USD", reason="by admin:oncall: goodwill")
HELD = HeldWriteOff("inv_1", reason="undone", held_at="T2s")


def test_a_write_off_undone_and_held():
    assert standing([WRITTEN, UNDONE], HELD) == (
        "written off 12.50 USD at T1 by rule small, undone by admin:oncall at T2 (goodwill), held (undone) since T2s"
    )


def test_a_write_off_in_force():
    assert standing([WRITTEN], None) == "written off 12.50 USD at T1 by rule small"


def test_released_after_the_undo_and_written_off_again():
    released = record(Outcome.RELEASED, "T3", 3, reason="by ops@vm: settled")
    again = record(Outcome.WRITTEN_OFF, "T4", 4, rule="small", amount_due=1250, currency="USD")
    assert standing([WRITTEN, UNDONE, released], None) == (
        "written off 12.50 USD at T1 by rule small, undone by admin:oncall at T2 (goodwill), "
        "released by ops@vm at T3 (settled)"
    )
    assert standing([WRITTEN, UNDONE, released, again], None) == "written off 12.50 USD at T4 by rule small"


def test_an_invoice_the_reactor_did_not_write_off():
    skipped = record(Outcome.SKIPPED, "T1", 1, rule="protect-enterprise")
    budget = HeldWriteOff("inv_1", reason="daily budget for USD spent", held_at="T2")
    assert (
        standing([skipped], None)
        == "not written off by the reactor; last recorded: skipped at T1 by rule protect-enterprise"
    )
    assert standing([], budget) == "not written off by the reactor, held (daily budget for USD spent) since T2"
