"""What a dry-run sweep would write off (reactor/jobs/sweep.py), for people: one `Candidate` per
invoice, totals per rule and currency, and the CSV report `reactor sweep --report` writes."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from .audit import spreadsheet_cell


@dataclass
class Candidate:
    """An invoice the rules would write off."""

    invoice_id: str
    customer_id: str
    rule: str
    amount_major: Decimal
    currency: str
    days_overdue: int | None


def totals(candidates: list[Candidate]) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """(rule, currency) → (count, amount in major units)."""
    sums: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for c in candidates:
        count, amount = sums.get((c.rule, c.currency), (0, Decimal(0)))
        sums[(c.rule, c.currency)] = (count + 1, amount + c.amount_major)
    return dict(sorted(sums.items()))


def report_rows(candidates: list[Candidate]) -> Iterator[list[str]]:
    """The CSV: one row per invoice, then a totals section per rule per currency."""
    yield ["invoice", "customer", "rule", "amount", "currency", "days_overdue"]
    for c in candidates:
        yield [
            c.invoice_id,
            c.customer_id,
            c.rule,
            str(c.amount_major),
            c.currency,
            "" if c.days_overdue is None else str(c.days_overdue),
        ]
    yield []
    yield ["total", "rule", "count", "amount", "currency"]
    for (rule, currency), (count, amount) in totals(candidates).items():
        yield ["total", rule, str(count), str(amount), currency]


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


def write_report(path: str | os.PathLike[str], candidates: list[Candidate]) -> None:
    """The CSV (report_rows) at `path`; any failure, a full disk (ENOSPC) included, as ReportError."""
    try:
        with open(path, "w", newline="") as handle:
            csv.writer(handle).writerows([spreadsheet_cell(cell) for cell in row] for row in report_rows(candidates))
    except OSError as exc:
        raise ReportError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
