"""Recover a payment for an invoice we wrote off: reverse our write-off as `reactor undo` does
(reactor/console/undo.py), then apply the customer's payment to the invoice with Chargebee's
`apply_payments`, so the invoice ends `paid` by payment instead of by our credit note.

Each step fails closed, under the invoice lock:
- the reversal refused: nothing applied; `recovery_failed` recorded, the write-off stands;
- reversed, the payment refused or not answered: the invoice stays unpaid and held (as after an
  undo); the attempt mark (`{p}:recovery_attempt:<invoice>`) lets the same command apply it later;
- applied: `recovered` recorded with the amounts, the `{p}:recovered:<invoice>` mark set, the
  invoice's candidates dropped; a part payment leaves the rest due and the invoice held.
A second `recover` of a recovered invoice is refused, and a retry after a lost answer first looks at
the fresh invoice for the payment, so a payment is never applied twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from ..chargebee import AuthError, ChargebeeError, RetryableError
from ..jobs.audit import AuditRecord, Outcome, amount_text
from ..jobs.context import JobContext
from ..jobs.marks import ATTEMPT_TTL, WRITTEN_OFF_TTL, acquire_invoice_lock
from ..jobs.recovery import EXCESS, candidates_for, open_candidates
from ..jobs.trail import log_record
from ..jobs.undone import load_mark
from ..timestamps import shown_time
from .undo import UndoRefused, reverse_write_off

REVERSED = "our write-off is reversed and the invoice held"
UNCHANGED = "nothing changed"


class RecoveryRefused(Exception):
    """The recovery did not happen, or not whole; `str()` is the one sentence to show."""


@dataclass(frozen=True)
class RecoveryResult:
    invoice_id: str
    transaction: str | None
    applied: int
    amount_due: int
    status: str | None
    currency: str | None
    record_id: str | None

    def summary(self, release: str = "reactor held release") -> str:
        """One line of what happened; `release`: the command that releases a part payment's rest."""
        paid = amount_text(self.applied, self.currency)
        due = amount_text(self.amount_due, self.currency)
        by = f"payment {self.transaction}" if self.transaction else "the customer's excess payments"
        rest = "" if self.amount_due == 0 else f"; {due} still due, held until `{release}`"
        return f"{self.invoice_id}: write-off reversed, {paid} applied from {by}; the invoice is {self.status}{rest}"


def payment_source(given: str | None, earlier: Any, seen: set[str]) -> str | None:
    """The transaction to apply (None: the customer's excess payments), pure. A person's choice stands:
    a transaction id, or EXCESS for the excess payments. With none given: the earlier attempt's, else
    the one payment seen for the invoice (`seen`: its candidates' transactions), else the excess."""
    if given == EXCESS:
        return None
    if given is not None:
        return given
    if isinstance(earlier, str) and earlier:
        return earlier
    payments = set(seen) - {EXCESS}
    return payments.pop() if len(payments) == 1 else None


def recover_key(site: str, invoice_id: str, transaction: str | None) -> str:
    """Stable per (site, invoice, transaction): Chargebee answers a retried call with its replay."""
    digest = hashlib.sha256(f"{site}\x00{invoice_id}\x00{transaction or EXCESS}".encode()).hexdigest()
    return f"reactor-recover-{digest[:48]}"


def recover_payment(ctx: JobContext, invoice_id: str, actor: str, transaction: str | None = None) -> RecoveryResult:
    """Reverse our write-off of `invoice_id` and apply the payment (`transaction`, EXCESS for the
    customer's excess payments, None to let `payment_source` choose), under the invoice lock;
    RecoveryRefused says what did not happen (and what did)."""
    try:
        lock = acquire_invoice_lock(ctx, invoice_id)
    except RetryableError as exc:
        raise RecoveryRefused(f"invoice {invoice_id} is busy ({exc}); nothing changed: run it again") from None
    try:
        return _Recovery(ctx, invoice_id, actor, transaction).run()
    finally:
        with suppress(redis.exceptions.LockError):
            lock.release()


class _Recovery:
    """One recovery under the invoice lock: `reverse` → `apply` → `commit`."""

    def __init__(self, ctx: JobContext, invoice_id: str, actor: str, transaction: str | None) -> None:
        self.ctx, self.invoice_id, self.actor = ctx, invoice_id, actor
        self.transaction = transaction

    def run(self) -> RecoveryResult:
        keys = self.ctx.keys
        done = load_mark(self.ctx, keys.recovered(self.invoice_id))
        if done is not None:
            raise RecoveryRefused(
                f"invoice {self.invoice_id}: recovered already at {shown_time(done.get('at'))} by {done.get('actor')} "
                f"({amount_text(done.get('applied'), done.get('currency'))} applied); nothing applied again"
            )
        attempt = load_mark(self.ctx, keys.recovery_attempt(self.invoice_id))
        if attempt is not None and load_mark(self.ctx, keys.written_off(self.invoice_id)) is not None:
            attempt = None  # released and written off again since that reversal: reverse this one
        seen = {c.transaction for c in candidates_for(self.ctx.redis, self.ctx.keys, self.invoice_id)}
        self.transaction = payment_source(self.transaction, (attempt or {}).get("transaction"), seen)
        if attempt is None:
            attempt = self.reverse()
        return self.apply(attempt)

    def reverse(self) -> dict[str, Any]:
        """Our write-off reversed as `reactor undo` does (held with reason "undone"), then the attempt
        mark: from here a retry applies the payment without a written_off mark to show."""
        if load_mark(self.ctx, self.ctx.keys.written_off(self.invoice_id)) is None:
            raise RecoveryRefused(
                f"invoice {self.invoice_id} has no write-off of the reactor's to reverse (no written_off mark); "
                "nothing changed: apply the payment in Chargebee"
            )
        self.check_money()
        paid_by = f"payment {self.transaction}" if self.transaction else "excess payments"
        try:
            undone = reverse_write_off(self.ctx, self.invoice_id, self.actor, f"recovery: {paid_by} received")
        except UndoRefused as exc:
            self.failed(f"the reversal was refused, nothing applied: {exc}", None)
            raise RecoveryRefused(f"{exc}; no payment applied") from None
        attempt = {
            "at": self.ctx.clock().isoformat(),
            "actor": self.actor,
            "transaction": self.transaction,
            "credit_note": undone.credit_note,
            "currency": undone.currency,
        }
        self.ctx.redis.set(self.ctx.keys.recovery_attempt(self.invoice_id), json.dumps(attempt), ex=ATTEMPT_TTL)
        return attempt

    def fresh(self, standing: str = REVERSED) -> dict[str, Any]:
        try:
            with self.answers("GET /invoices/" + self.invoice_id, standing):
                return self.ctx.chargebee.retrieve_invoice(self.invoice_id)
        except _Refused as exc:
            raise RecoveryRefused(f"Chargebee cannot show invoice {self.invoice_id}: {exc.error}; {standing}") from None

    def check_money(self) -> None:
        """Before anything is reversed: the customer has money to apply (`excess_payments` above 0,
        fetched fresh). A payment refunded or applied elsewhere meanwhile stops here, the write-off
        standing, instead of leaving the invoice reversed with nothing to pay it."""
        customer_id = self.fresh(UNCHANGED).get("customer_id")
        if not isinstance(customer_id, str):
            customer: dict[str, Any] = {}
        else:
            try:
                with self.answers(f"GET /customers/{customer_id}", UNCHANGED):
                    customer = self.ctx.chargebee.retrieve_customer(customer_id)
            except _Refused as exc:
                self.failed(f"the customer could not be read, nothing reversed: {exc.error}", None)
                raise RecoveryRefused(
                    f"Chargebee cannot show customer {customer_id}: {exc.error}; {UNCHANGED}"
                ) from None
        excess = customer.get("excess_payments")
        if self.transaction is not None:
            self.check_unused(self.transaction)
        if type(excess) is not int or excess <= 0:
            self.failed(f"customer {customer_id} shows no excess payments ({excess!r}), nothing reversed", None)
            raise RecoveryRefused(
                f"invoice {self.invoice_id}: customer {customer_id} has no payment to apply (excess_payments "
                f"{excess!r}); {UNCHANGED}: the write-off stands"
            )

    def check_unused(self, transaction: str) -> None:
        """The payment to apply still has money nothing applied (`amount_unused` above 0, fetched
        fresh): one applied to another invoice meanwhile stops here, nothing reversed."""
        try:
            with self.answers(f"GET /transactions/{transaction}", UNCHANGED):
                unused = self.ctx.chargebee.retrieve_transaction(transaction).get("amount_unused")
        except _Refused as exc:
            unused = f"unreadable ({exc.error})"
        if type(unused) is not int or unused <= 0:
            self.failed(f"payment {transaction} has no unused amount ({unused!r}), nothing reversed", None)
            raise RecoveryRefused(
                f"invoice {self.invoice_id}: payment {transaction} has nothing left to apply (amount_unused "
                f"{unused!r}); {UNCHANGED}: the write-off stands"
            )

    def apply(self, attempt: dict[str, Any]) -> RecoveryResult:
        """The payment applied, unless the fresh invoice shows it applied already (a retry after a
        lost answer); then what Chargebee shows is checked before anything is recorded."""
        before = self.fresh()
        already = applied_by(before, self.transaction, attempt.get("at"))
        if already:
            return self.commit(attempt, before, already)
        due = before.get("amount_due")
        if type(due) is not int:
            self.failed("the invoice shows no amount_due; no payment applied", attempt)
            raise RecoveryRefused(f"invoice {self.invoice_id} shows no amount due; no payment applied, it is held")
        site = self.ctx.settings.chargebee_site or self.ctx.settings.api_base or ""
        wanted = ((self.transaction, None),) if self.transaction else ()
        comment = f"Recovered after write-off by {self.actor}"
        try:
            with self.answers(f"apply_payments for invoice {self.invoice_id}", f"the payment not applied, {REVERSED}"):
                after = self.ctx.chargebee.apply_payments(
                    self.invoice_id, wanted, comment, recover_key(site, self.invoice_id, self.transaction)
                )
        except RecoveryRefused as exc:  # not answered: it may have gone through; a retry looks first
            self.failed(f"apply_payments not answered: {exc}", attempt)
            raise
        except _Refused as exc:
            after = self.fresh()  # a refusal may be of a payment applied meanwhile
            if not applied_by(after, self.transaction, attempt.get("at")):
                self.failed(f"Chargebee refused apply_payments: {exc.error}", attempt)
                raise RecoveryRefused(
                    f"Chargebee refused to apply the payment to invoice {self.invoice_id}: {exc.error}; our write-off "
                    "is reversed and the invoice held: apply the payment in Chargebee, or run `reactor recover` "
                    "again once it can be applied"
                ) from None
        applied = applied_by(after, self.transaction, attempt.get("at"))
        after_due = after.get("amount_due")
        if not applied or type(after_due) is not int or after_due != due - applied:
            self.failed(f"apply_payments answered but the invoice shows {applied or 'no'} payment applied", attempt)
            raise RecoveryRefused(
                f"Chargebee answered apply_payments, but invoice {self.invoice_id} does not show the payment "
                "applied; nothing recorded as recovered, the invoice is held: check it in Chargebee"
            )
        return self.commit(attempt, after, applied)

    @contextmanager
    def answers(self, what: str, standing: str) -> Iterator[None]:
        """Chargebee's errors: not reached or not answered as the sentence to show, with what stands
        (`standing`); a refusal as `_Refused`, for the caller to look into."""
        try:
            yield
        except (AuthError, RetryableError) as exc:
            raise RecoveryRefused(
                f"Chargebee could not be reached or asked now: {what} failed ({exc}); {standing}: "
                "run the same command again"
            ) from None
        except ChargebeeError as exc:
            raise _Refused(exc) from None

    def commit(self, attempt: dict[str, Any], invoice: dict[str, Any], applied: int) -> RecoveryResult:
        """The `recovered` mark and record, the attempt and the candidates gone, and (paid whole) the
        hold the reversal left: one transaction, then a notice."""
        ctx, now = self.ctx, self.ctx.clock()
        status, due = invoice.get("status"), invoice.get("amount_due")
        due = due if type(due) is int else 0
        currency = invoice.get("currency_code") if isinstance(invoice.get("currency_code"), str) else None
        mark = {
            "at": now.isoformat(),
            "actor": self.actor,
            "transaction": self.transaction,
            "applied": applied,
            "amount_due": due,
            "currency": currency,
            "credit_note": attempt.get("credit_note"),
        }
        record = AuditRecord(
            event_id=None,
            invoice_id=self.invoice_id,
            outcome=Outcome.RECOVERED,
            action="recover",
            amount_due=applied,
            currency=currency,
            reason=f"by {self.actor}: write-off reversed, payment applied",
            credit_note=attempt.get("credit_note"),
            detail=f"actor={self.actor} transaction={self.transaction or EXCESS} applied={applied} "
            f"amount_due={due} status={status}",
        )
        # this invoice's candidates, and the payment's on every invoice: its money is spent
        stale = [
            c.field()
            for c in open_candidates(ctx.redis, ctx.keys)
            if c.invoice_id == self.invoice_id or (self.transaction is not None and c.transaction == self.transaction)
        ]
        with ctx.redis.pipeline(transaction=True) as pipe:
            pipe.set(ctx.keys.recovered(self.invoice_id), json.dumps(mark), ex=WRITTEN_OFF_TTL)
            pipe.delete(ctx.keys.recovery_attempt(self.invoice_id))
            if stale:
                pipe.hdel(ctx.keys.recovery_candidates(), *stale)
            if due == 0:
                pipe.hdel(ctx.keys.held(), self.invoice_id)  # paid: nothing left to decide
            ctx.audit.queue(pipe, record)
            entry_id = pipe.execute()[-1]
        record.id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        log_record(record)
        ctx.notices.add("recovery", f"{self.invoice_id}: {record.amount_text()} recovered by {self.actor}")
        return RecoveryResult(self.invoice_id, self.transaction, applied, due, status, currency, record.id)

    def failed(self, why: str, attempt: dict[str, Any] | None) -> None:
        """A `recovery_failed` record: what stopped, and what stands (reversed or not)."""
        record = AuditRecord(
            event_id=None,
            invoice_id=self.invoice_id,
            outcome=Outcome.RECOVERY_FAILED,
            action="recover",
            reason=f"by {self.actor}: {why}",
            credit_note=(attempt or {}).get("credit_note"),
            detail=f"actor={self.actor} transaction={self.transaction or EXCESS} "
            f"reversed={str(attempt is not None).lower()}",
        )
        record.id = self.ctx.audit.append(record)
        log_record(record)


class _Refused(Exception):
    """Chargebee refused a call (4xx other than auth); `error` is its ChargebeeError."""

    def __init__(self, error: ChargebeeError) -> None:
        super().__init__(str(error))
        self.error = error


def applied_by(invoice: dict[str, Any], transaction: str | None, since: Any) -> int:
    """What the invoice shows applied from `transaction` (from any payment without one) at or after
    `since` (ISO time of the reversal), from `linked_payments`: successful payments with a time
    only. An unreadable `since` counts nothing (fail closed: never a payment taken for ours)."""
    try:
        floor = datetime.fromisoformat(since).timestamp() - 1
    except (TypeError, ValueError):
        return 0
    total = 0
    for entry in invoice.get("linked_payments") or []:
        if not isinstance(entry, dict) or entry.get("txn_status") != "success":
            continue
        if transaction is not None and entry.get("txn_id") != transaction:
            continue
        amount, at = entry.get("applied_amount"), entry.get("applied_at")
        if type(amount) is int and type(at) is int and at >= floor:
            total += amount
    return total
