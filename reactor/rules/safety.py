"""Built-in safety: invoices no rule may write off, whatever rules.yaml says (`gone_reason`,
`collecting_reason`).

Pure functions of an invoice and a moment. `decide` applies them after a write_off rule matched
(so `rules explain`, `rules test`, the sweep and the worker all see the same answer), and the
worker applies them again to the invoice it fetched fresh from Chargebee right before the call.
A payment in flight (`linked_payments[].txn_status: in_progress`) is checked by the engine's
guardrail instead, and is never overridable: Chargebee refuses a write-off then.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..timestamps import SHOWN_FORMAT

GONE = "gone"
COLLECTING = "collecting"

DUNNING_DONE = frozenset({"exhausted", "stopped", "success"})
"""Dunning statuses under which Chargebee makes no further attempt (the Invoice object's `dunning_status`,
https://apidocs.chargebee.com/docs/api/invoices). Any
other value that is present, `in_progress` or one this code does not know, counts as collecting."""


def gone_reason(invoice: Mapping[str, Any]) -> str | None:
    """Why the invoice is not there to write off (deleted or voided), or None: Chargebee's own
    end-of-dunning settings can do either."""
    if invoice.get("deleted") not in (None, False):  # Chargebee sends true; any other value: do not act
        return "the invoice is deleted in Chargebee"
    if invoice.get("status") == "voided":
        return "the invoice is voided in Chargebee"
    return None


WAITS = "nothing is written off while it may still be paid"


def collecting_reason(invoice: Mapping[str, Any], now_ts: float) -> str | None:
    """Why Chargebee is still collecting this invoice, that the reactor waits for it, and when it
    decides again (at Chargebee's next retry, `next_retry_at`, or after the promised date); None when
    Chargebee has stopped trying.

    Dunning in progress (a retry scheduled, or due) or paused until a promised payment date
    (`expected_payment_date`): Chargebee may still be paid, so a write-off now would forgive money
    that was about to come in. A rule that really means to write off while Chargebee collects says
    so with `while_collecting: write_off` in rules.yaml (documented there and in
    docs/operations.md, not in the reason)."""
    retry = _timestamp(invoice.get("next_retry_at"))
    ahead = retry is not None and retry > now_ts
    again = "decided again on the event Chargebee sends then, or by the sweep"
    dunning = invoice.get("dunning_status")
    if dunning is not None and (dunning.__class__ is not str or dunning not in DUNNING_DONE):
        if not ahead:
            again = "decided again on Chargebee's next event about it, or by the sweep"
        when = f", next retry {_iso(retry)}" if ahead else ""
        return f"Chargebee is still collecting (dunning_status {dunning!r}{when}): {WAITS}; {again}"
    if ahead:
        return f"Chargebee is still collecting (a payment retry is scheduled for {_iso(retry)}): {WAITS}; {again}"
    promised = _timestamp(invoice.get("expected_payment_date"))
    if promised is not None and promised > now_ts:
        return (
            f"dunning is paused until {_iso(promised)} (expected_payment_date: a promise to pay): nothing is"
            " written off before then; decided again on Chargebee's next event after it, or by the sweep"
        )
    return None


def _timestamp(value: Any) -> float | None:
    """A unix time as sent (int, or a float that is not NaN); None for anything else. Kept as is:
    Python compares a huge int with a float exactly, where float(value) would overflow."""
    if value.__class__ is int or (value.__class__ is float and value == value):
        return value
    return None


def _iso(ts: float) -> str:
    """A unix time as every time is shown to people (reactor/timestamps.py)."""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime(SHOWN_FORMAT)
    except (OverflowError, OSError, ValueError):
        text = str(ts)
        return f"{text[:20]}{'...' if len(text) > 20 else ''} (not a real time)"
