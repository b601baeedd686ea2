"""The pure pieces of the on-call commands: redaction, error lines, durations, amounts, exports."""

from __future__ import annotations

from datetime import timedelta

import click
import pytest

from reactor.cli.helpers import parse_duration
from reactor.console.deadletters import REDACTED, redact
from reactor.console.deadletters.letters import exception_line
from reactor.jobs.audit import AuditRecord, export


def test_redact_masks_payment_and_credential_fields_at_any_depth():
    event = {
        "content": {
            "invoice": {"id": "inv_1", "amount_due": 1250},
            "card": {"masked_number": "****4242", "gateway_account_id": "gw_1", "card_type": "visa"},
            "transactions": [{"id_at_gateway": "ch_9", "amount": 1250}],
        },
        "api_key": "live_abc",
    }

    masked = redact(event)

    assert masked["content"]["invoice"] == {"id": "inv_1", "amount_due": 1250}
    assert masked["content"]["card"] == {"masked_number": REDACTED, "gateway_account_id": REDACTED, "card_type": "visa"}
    assert masked["content"]["transactions"] == [{"id_at_gateway": REDACTED, "amount": 1250}]
    assert masked["api_key"] == REDACTED
    assert event["content"]["card"]["masked_number"] == "****4242", "the original is left alone"


def test_exception_line_is_the_exception_without_its_module_path():
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nreactor.chargebee.AuthError: HTTP 401\n'

    assert exception_line(traceback) == "AuthError: HTTP 401"
    assert exception_line("") == ""


@pytest.mark.parametrize(
    ("text", "expected"), [("30d", timedelta(days=30)), ("2h", timedelta(hours=2)), ("45s", timedelta(seconds=45))]
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30", "d", "-3d", "3y", "2.5h"])
def test_a_malformed_duration_is_refused(text):
    with pytest.raises(click.BadParameter):
        parse_duration(text)


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [(1250, "USD", "12.50 USD"), (3000, "JPY", "3000 JPY"), (5, None, "5"), (None, "EUR", "")],
)
def test_amounts_read_in_major_units(amount, currency, shown):
    record = AuditRecord(event_id="ev", invoice_id="inv", outcome="written_off", amount_due=amount, currency=currency)

    assert record.amount_text() == shown


def test_an_empty_csv_export_still_has_its_header():
    assert export([], "csv").splitlines()[0].startswith("id,at,event_id,event_type,invoice_id,rule")
