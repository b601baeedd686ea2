"""What a dry-run sweep would write off (reactor/jobs/sweep.py), for people: one `Candidate` per
invoice and trigger, totals per trigger, rule and currency, and the CSV report `reactor sweep
--report` writes.

A trigger (`on`) is `sweep` (the invoice as the sweep finds it) or an event type a rule listens to
(if Chargebee's next such event for the invoice arrived now, with the invoice as listed). Beside the
write-offs, the report lists what could not be previewed (a decision resting on a field only the
event carries) and the invoices held (reactor/jobs/held.py), which are not decided."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from ..rules.event_types import SWEEP_EVENT_TYPE
from .audit import spreadsheet_cell

WRITE_OFF, NOT_PREVIEWED, HELD = "write_off", "not_previewed", "held"  # a Candidate's outcome
ANY_TRIGGER = "any"  # the `on` of a held invoice: held whatever comes


@dataclass
class Candidate:
    """An invoice the rules would write off on one trigger; or, by `outcome`, one whose decision could
    not be previewed (`note` says why) or that is held (`note`: the hold's reason)."""

    invoice_id: str
    customer_id: str
    rule: str
    amount_major: Decimal
    currency: str
    days_overdue: int | None
    on: str = SWEEP_EVENT_TYPE
    outcome: str = WRITE_OFF
    note: str = ""


def totals(candidates: Iterable[Candidate]) -> dict[tuple[str, str, str], tuple[int, Decimal]]:
    """(on, rule, currency) → (count, amount in major units) of the write-offs, the sweep's first."""
    sums: dict[tuple[str, str, str], tuple[int, Decimal]] = {}
    for c in candidates:
        if c.outcome != WRITE_OFF:
            continue
        count, amount = sums.get((c.on, c.rule, c.currency), (0, Decimal(0)))
        sums[(c.on, c.rule, c.currency)] = (count + 1, amount + c.amount_major)
    return dict(sorted(sums.items(), key=lambda item: (item[0][0] != SWEEP_EVENT_TYPE, item[0])))


def report_rows(candidates: Iterable[Candidate]) -> Iterator[list[str]]:
    """The CSV: one row per invoice and trigger, then a totals section per rule, currency and trigger
    (write-offs only: an invoice is written off at most once, so the triggers do not add up)."""
    candidates = list(candidates)
    yield ["invoice", "customer", "rule", "amount", "currency", "days_overdue", "on", "outcome", "note"]
    for c in candidates:
        yield [
            c.invoice_id,
            c.customer_id,
            c.rule,
            str(c.amount_major),
            c.currency,
            "" if c.days_overdue is None else str(c.days_overdue),
            c.on,
            c.outcome,
            c.note,
        ]
    yield []
    yield ["total", "rule", "count", "amount", "currency", "on"]
    for (on, rule, currency), (count, amount) in totals(candidates).items():
        yield ["total", rule, str(count), str(amount), currency, on]


class ReportError(Exception):
    """The report cannot be written; the message names the file and the reason, in one line."""


def check_report_path(path: str | os.PathLike[str]) -> None:
    """Refuse, before a sweep, a report that could not be written: a directory, a missing or
    read-only directory, a read-only file. A full disk is only found when writing (write_report)."""
    target = Path(path)
    if target.is_dir():
        raise ReportError(f"cannot write the report to {path}: it is a directory")
    parent = target.parent
    if not parent.is_dir():
        raise ReportError(f"cannot write the report to {path}: no directory {parent}")
    if not os.access(target if target.exists() else parent, os.W_OK):
        raise ReportError(f"cannot write the report to {path}: permission denied")


def write_report(path: str | os.PathLike[str], candidates: Iterable[Candidate]) -> None:
    """The CSV (report_rows) at `path`; any failure, a full disk (ENOSPC) included, as ReportError."""
    try:
        with open(path, "w", newline="") as handle:
            csv.writer(handle).writerows([spreadsheet_cell(cell) for cell in row] for row in report_rows(candidates))
    except OSError as exc:
        raise ReportError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
