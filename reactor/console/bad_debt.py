"""The bad-debt register (`reactor report bad-debt`): one row per write-off the reactor made, with
what a VAT bad-debt relief claim needs (HMRC VAT Notice 700/18: invoice number and date, the VAT on
it, the amount written off and when, payments received later) and when relief may be claimed.

`register_row` is pure: it decides a row from our audit records of one write-off (`WriteOffHistory`)
and the invoice and customer as Chargebee has them now. `gather` reads both: the audit trail (archive and stream), and
Chargebee through the client it is handed (the shared rate limit; each invoice and customer fetched
once per run). Nothing here writes.

Rules stated in every output: amounts are major units of the invoice's currency; the tax within
the amount written off is the invoice's `tax` × written off ÷ `total`, rounded half up to the
currency's minor unit; relief is claimable from the later of the due date and the invoice date plus
the country's months (REACTOR_RELIEF_DELAYS); a country without a rule says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from dateutil.relativedelta import relativedelta

from ..chargebee import ChargebeeError
from ..jobs.audit import AuditFilter, AuditLog, AuditRecord, Outcome
from ..jobs.audit.full_trail import AuditTrail
from ..rules.money import to_major

COLUMNS = (
    "site",
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
    "written_off_at",
    "relief_claimable_from",
    "payments_after",
    "status",
)
ROUNDING = "tax_written_off = tax × written_off ÷ total, rounded half up to the currency's minor unit"
STATUSES = ("claimable", "not yet", "recovered", "undone")


@dataclass(frozen=True)
class WriteOffHistory:
    """One write-off of ours from the audit trail, and what came of it before the next one."""

    invoice_id: str
    amount: int | None  # minor units written off
    currency: str | None
    at: datetime
    recovered: bool = False
    undone: bool = False


@dataclass(frozen=True)
class RegisterRow:
    values: dict[str, str] = field(default_factory=dict)

    @property
    def country(self) -> str:
        return self.values.get("billing_country", "")


def histories(records: Iterable[AuditRecord]) -> list[WriteOffHistory]:
    """Each `written_off` record, with whether a `recovered` or an `undone` record of the same
    invoice followed it before the invoice's next write-off (records in stream order)."""
    found: list[WriteOffHistory] = []
    latest: dict[str, int] = {}
    for record in records:
        invoice_id, moment = record.invoice_id, record.moment
        if not invoice_id or moment is None:
            continue
        if record.outcome == Outcome.WRITTEN_OFF:
            latest[invoice_id] = len(found)
            found.append(WriteOffHistory(invoice_id, record.amount_due, record.currency, moment))
        elif invoice_id in latest and record.outcome in (Outcome.RECOVERED, Outcome.UNDONE):
            i = latest[invoice_id]
            was = found[i]
            found[i] = WriteOffHistory(
                was.invoice_id,
                was.amount,
                was.currency,
                was.at,
                recovered=was.recovered or record.outcome == Outcome.RECOVERED,
                undone=was.undone or record.outcome == Outcome.UNDONE,
            )
    return found


def tax_within(tax: int, total: int, written_off: int) -> int:
    """The tax in `written_off` (minor units), prorated from the invoice and rounded half up."""
    if total <= 0:
        return 0
    return (2 * tax * written_off + total) // (2 * total)


def relief_from(invoice_date: date, due_date: date | None, months: int) -> date:
    """The later of the due date and the invoice date, plus `months` (a month-end stays in range:
    31 August + 6 months is 28 or 29 February)."""
    base = max(invoice_date, due_date) if due_date else invoice_date
    return base + relativedelta(months=months)


def register_row(
    site: str,
    history: WriteOffHistory,
    invoice: Mapping[str, Any] | None,
    customer: Mapping[str, Any] | None,
    delays: Mapping[str, int],
    today: date,
    unapplied: int = 0,
    problem: str | None = None,
) -> RegisterRow:
    """The row of one write-off. `unapplied`: money seen for it and not applied (open recovery
    candidates). Without the invoice (`problem` says why) the row shows what our records hold and
    its status is that problem: never a guessed date or amount."""
    currency = (invoice or {}).get("currency_code") or history.currency or ""
    values = {name: "" for name in COLUMNS}
    values.update(
        site=site,
        invoice_number=history.invoice_id,
        customer_id=_text((invoice or {}).get("customer_id")),
        vat_number=_text((customer or {}).get("vat_number")),
        currency=currency,
        written_off=_money(history.amount, currency),
        written_off_at=history.at.astimezone(timezone.utc).isoformat(timespec="seconds"),
    )
    if invoice is None:
        values["status"] = problem or "invoice not fetched"
        return RegisterRow(values)
    country = _text((invoice.get("billing_address") or {}).get("country")).upper()
    issued, due = _day(invoice.get("date")), _day(invoice.get("due_date"))
    tax, total = invoice.get("tax"), invoice.get("total")
    values.update(
        invoice_date=issued.isoformat() if issued else "",
        due_date=due.isoformat() if due else "",
        billing_country=country,
        total=_money(total, currency),
        tax=_money(tax, currency),
        payments_after=_money(paid_after(invoice, history.at) + unapplied, currency),
    )
    if type(tax) is int and type(total) is int and type(history.amount) is int:
        values["tax_written_off"] = _money(tax_within(tax, total, history.amount), currency)
    months = delays.get(country)
    if months is None:
        values["relief_claimable_from"] = f"no rule for {country}" if country else "no rule: no billing country"
    elif issued is None:
        values["relief_claimable_from"] = "invoice date missing"
    else:
        values["relief_claimable_from"] = relief_from(issued, due, months).isoformat()
    values["status"] = _status(history, values["relief_claimable_from"], today)
    return RegisterRow(values)


def _status(history: WriteOffHistory, claimable_from: str, today: date) -> str:
    if history.recovered:
        return "recovered"
    if history.undone:
        return "undone"
    try:
        start = date.fromisoformat(claimable_from)
    except ValueError:
        return claimable_from  # no rule, or no date: said as it is
    return "claimable" if today >= start else "not yet"


def paid_after(invoice: Mapping[str, Any], moment: datetime) -> int:
    """What the invoice shows paid (successful payments applied) since `moment`. Chargebee stamps
    `applied_at` in whole seconds, so a payment applied in the second of `moment` counts: leaving it
    out would claim relief on money that came back."""
    floor = math.floor(moment.timestamp())
    total = 0
    for entry in invoice.get("linked_payments") or []:
        if not isinstance(entry, Mapping) or entry.get("txn_status") != "success":
            continue
        amount, at = entry.get("applied_amount"), entry.get("applied_at")
        if type(amount) is int and type(at) is int and at >= floor:
            total += amount
    return total


def _money(amount: Any, currency: str) -> str:
    if type(amount) is not int or not currency:
        return ""
    return str(to_major(amount, currency))


def _day(value: Any) -> date | None:
    if type(value) is not int:
        return None
    return datetime.fromtimestamp(value, timezone.utc).date()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# -- reading our records and Chargebee -------------------------------------------------------------


@dataclass
class FactCache:
    """Each invoice and customer fetched once per run (a ChargebeeError from `fetch`, a 404 or a
    timeout, is kept as the problem of every row that needs it)."""

    fetch: Callable[[str, str], dict[str, Any]]
    found: dict[tuple[str, str], dict[str, Any] | str] = field(default_factory=dict)

    def get(self, kind: str, resource_id: str) -> dict[str, Any] | str:
        key = (kind, resource_id)
        if key not in self.found:
            try:
                self.found[key] = self.fetch(kind, resource_id)
            except ChargebeeError as exc:  # the row's problem, shown, never a guess
                self.found[key] = f"{kind} not fetched: {exc}"
        return self.found[key]


def gather(
    audit: AuditLog | AuditTrail,
    facts: FactCache,
    *,
    site: str,
    delays: Mapping[str, int],
    today: date,
    since: datetime | None = None,
    until: datetime | None = None,
    unapplied: Mapping[str, int] | None = None,
) -> list[RegisterRow]:
    """The rows of the write-offs recorded between `since` and `until`, oldest first (`audit`: the
    archive and the stream as one trail, so write-offs trimmed from Redis stay)."""
    wanted = (Outcome.WRITTEN_OFF.value, Outcome.UNDONE.value, Outcome.RECOVERED.value)
    records = audit.query(AuditFilter(since=since, outcomes=wanted))
    rows = []
    for history in histories(records):
        if until is not None and history.at > until:
            continue
        invoice = facts.get("invoice", history.invoice_id)
        if isinstance(invoice, str):
            rows.append(register_row(site, history, None, None, delays, today, problem=invoice))
            continue
        customer_id = invoice.get("customer_id")
        customer = facts.get("customer", customer_id) if isinstance(customer_id, str) else None
        problem_customer = customer if isinstance(customer, str) else None
        row = register_row(
            site,
            history,
            invoice,
            None if isinstance(customer, str) else customer,
            delays,
            today,
            (unapplied or {}).get(history.invoice_id, 0) if not history.recovered else 0,
        )
        if problem_customer and not row.values["vat_number"]:
            row.values["vat_number"] = problem_customer
        rows.append(row)
    return rows
