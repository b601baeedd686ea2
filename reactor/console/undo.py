"""Undo a write-off the reactor made: remove its credit note in Chargebee, record who and why, and
hold the invoice so that nothing writes it off again on its own until a person releases it
(`reactor held release`). Only our own write-offs are undone: the `written_off` mark
(reactor/jobs/marks.py) names them, with their credit note.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import redis

from ..chargebee import AuthError, ChargebeeError, RetryableError
from ..jobs.audit import AuditRecord, Outcome, amount_text
from ..jobs.context import JobContext
from ..jobs.held import MAX_REASON, HeldWriteOff, hold
from ..jobs.marks import WRITTEN_OFF_TTL, acquire_invoice_lock
from ..jobs.sweep import sweep_event
from ..jobs.trail import log_record
from ..jobs.undone import UNDONE_HOLD_REASON, load_mark
from ..timestamps import shown_time
from .tally import WRITTEN_OFF_AT

UNPAID_STATUSES = ("posted", "payment_due", "not_paid")


class UndoRefused(Exception):
    """The undo did not happen, or is not recorded; `str()` is the one sentence to show."""


@dataclass(frozen=True)
class UndoResult:
    invoice_id: str
    credit_note: str
    status: str | None
    amount_due: int | None
    currency: str | None
    note: str | None
    record_id: str | None

    def summary(self) -> str:
        """One line for people: what Chargebee shows now."""
        due = amount_text(self.amount_due, self.currency) or "?"
        done = self.note or f"credit note {self.credit_note} removed in Chargebee"
        return f"{self.invoice_id}: write-off undone ({done}); the invoice is {self.status}, {due} due"


def undo_key(site: str, invoice_id: str, credit_note: str) -> str:
    """Stable per (site, invoice, credit note), so a repeated undo is answered as a replay."""
    digest = hashlib.sha256(f"{site}\x00{invoice_id}\x00{credit_note}".encode()).hexdigest()
    return f"reactor-undo-{digest[:48]}"


def undo_write_off(ctx: JobContext, invoice_id: str, actor: str, reason: str) -> UndoResult:
    """Reverse our write-off of `invoice_id` under the invoice lock; UndoRefused says why not."""
    reason = " ".join(reason.split())
    if not reason:
        raise UndoRefused("give a reason (--reason): it goes into the audit trail with your name")
    if len(reason) > MAX_REASON:
        raise UndoRefused(f"give a reason of at most {MAX_REASON} characters (this one has {len(reason)})")
    with _answers("the invoice lock"):
        lock = acquire_invoice_lock(ctx, invoice_id)
    try:
        return reverse_write_off(ctx, invoice_id, actor, reason)
    finally:
        with suppress(redis.exceptions.LockError):  # expired: the undo's writes are one transaction anyway
            lock.release()


def reverse_write_off(ctx: JobContext, invoice_id: str, actor: str, reason: str) -> UndoResult:
    """The undo itself, for a caller that holds the invoice lock (`reactor recover` reverses our
    write-off this way before it applies the payment); UndoRefused says why not."""
    return _Undo(ctx, invoice_id, actor, " ".join(reason.split())).run()


@contextmanager
def _answers(what: str) -> Iterator[None]:
    """Chargebee's errors as the sentence to show; the caller has changed nothing in Redis yet."""
    try:
        yield
    except AuthError as exc:
        raise UndoRefused(f"Chargebee refused the API key for {what}: {exc}; nothing changed") from None
    except RetryableError as exc:
        raise UndoRefused(
            f"Chargebee could not be reached or asked now: {what} failed ({exc}); nothing changed here and our "
            "write-off stays marked, so no job writes the invoice off meanwhile: run the same command again"
        ) from None


def write_off_gone(invoice: dict[str, Any], credit_note: str) -> bool:
    """Whether the invoice no longer carries our write-off: nothing written off on it, or its credit
    note gone from `adjustment_credit_notes` or voided. An invoice that shows neither is not taken
    for reversed (fail closed: the mark stays)."""
    amount = invoice.get("write_off_amount")
    if type(amount) is int and amount == 0:
        return True
    notes = invoice.get("adjustment_credit_notes")
    if not isinstance(notes, list):
        return False
    entry = next((n for n in notes if isinstance(n, dict) and n.get("cn_id") == credit_note), None)
    return entry is None or entry.get("cn_status") == "voided"


def write_off_note(invoice: dict[str, Any]) -> str | None:
    """The one live write-off credit note on the invoice (a mark recovered after a lost answer has none)."""
    notes = invoice.get("adjustment_credit_notes") if isinstance(invoice.get("adjustment_credit_notes"), list) else []
    found = [
        n.get("cn_id")
        for n in notes
        if isinstance(n, dict)
        and (n.get("cn_create_reason_code") == "Write Off" or n.get("cn_reason_code") == "write_off")
        and n.get("cn_status") != "voided"
    ]
    return found[0] if len(found) == 1 and isinstance(found[0], str) else None


class _Undo:
    """One undo under the invoice lock: `ours` → `fresh` → `remove` → `commit`."""

    def __init__(self, ctx: JobContext, invoice_id: str, actor: str, reason: str) -> None:
        self.ctx, self.invoice_id, self.actor, self.reason = ctx, invoice_id, actor, reason

    def run(self) -> UndoResult:
        mark = self.ours()
        invoice = self.fresh()
        credit_note = mark.get("credit_note") or write_off_note(invoice)
        if not isinstance(credit_note, str):
            raise UndoRefused(
                f"invoice {self.invoice_id}: our write-off's credit note is not recorded and Chargebee shows no single "
                "write-off credit note on the invoice; nothing changed: reverse it in Chargebee by hand"
            )
        if write_off_gone(invoice, credit_note):
            return self.commit(mark, invoice, credit_note, f"already reversed in Chargebee: {credit_note} not applied")
        return self.remove(mark, credit_note)

    def ours(self) -> dict[str, Any]:
        """Our `written_off` mark; refused for a write-off we did not make, or one undone already."""
        mark = load_mark(self.ctx, self.ctx.keys.written_off(self.invoice_id))
        if mark is not None:
            return mark
        undone = load_mark(self.ctx, self.ctx.keys.undone(self.invoice_id))
        if undone is not None:
            raise UndoRefused(
                f"invoice {self.invoice_id}: our write-off was already undone at {shown_time(undone.get('at'))} by "
                f"{undone.get('actor')} ({undone.get('reason')}); nothing to undo"
            )
        raise UndoRefused(
            f"invoice {self.invoice_id} was not written off by the reactor (no written_off mark): it undoes only "
            "its own write-offs; reverse another one in Chargebee"
        )

    def fresh(self) -> dict[str, Any]:
        with _answers(f"GET /invoices/{self.invoice_id}"):
            try:
                invoice = self.ctx.chargebee.retrieve_invoice(self.invoice_id)
            except ChargebeeError as exc:
                raise UndoRefused(f"Chargebee cannot show invoice {self.invoice_id}: {exc}; nothing changed") from None
        if invoice.get("deleted") is True:
            raise UndoRefused(f"invoice {self.invoice_id} is deleted in Chargebee; nothing changed")
        return invoice

    def remove(self, mark: dict[str, Any], credit_note: str) -> UndoResult:
        """The call, then what Chargebee shows: a refusal is looked into on the fresh invoice, since a
        credit note removed or voided meanwhile is refused too (and is an undo all the same).

        Chargebee reverses a write-off "by removing the linked credit note"
        (https://apidocs.chargebee.com/docs/api/invoices/write-off-an-invoice):
        `POST /invoices/{id}/remove_credit_note` with `credit_note[id]`
        (https://apidocs.chargebee.com/docs/api/invoices/remove-credit-note-from-an-invoice). It
        raises `amount_due` and lowers `write_off_amount` by the note's allocation; a `paid` invoice
        becomes `posted` (due date ahead) or `not_paid`. It refuses a voided or pending invoice and a
        voided credit note."""
        site = self.ctx.settings.chargebee_site or self.ctx.settings.api_base or ""
        key = undo_key(site, self.invoice_id, credit_note)
        with _answers(f"remove_credit_note for invoice {self.invoice_id}"):
            try:
                invoice = self.ctx.chargebee.remove_credit_note(self.invoice_id, credit_note, key)
            except (AuthError, RetryableError):
                raise
            except ChargebeeError as exc:
                invoice = self.fresh()
                if not write_off_gone(invoice, credit_note):
                    raise UndoRefused(
                        f"Chargebee refused to remove credit note {credit_note} from invoice {self.invoice_id}: "
                        f"{exc}; nothing changed"
                    ) from None
                return self.commit(mark, invoice, credit_note, f"already reversed in Chargebee ({exc})")
        if not write_off_gone(invoice, credit_note):
            raise UndoRefused(
                f"Chargebee answered remove_credit_note, but invoice {self.invoice_id} still shows credit note "
                f"{credit_note}; nothing recorded: check the invoice in Chargebee"
            )
        return self.commit(mark, invoice, credit_note, None)

    def commit(self, mark: dict[str, Any], invoice: dict[str, Any], credit_note: str, note: str | None) -> UndoResult:
        """Mark gone, `undone` mark, the hold and the audit record: one transaction, then a notice
        for the digest. Fail closed: this runs only once Chargebee shows the write-off gone (our call,
        or someone removed or voided the note already); until then nothing changes in Redis, so the
        mark keeps every job away from the invoice.

        The `undone` mark (who, why, how many times) is what reactor/jobs/write_off.py asks first
        (`undone_hold`), and `write_off_generation` gives the next write-off a new idempotency key,
        so Chargebee does not answer it with the replay of the old one."""
        ctx, now = self.ctx, self.ctx.clock()
        before = load_mark(ctx, ctx.keys.undone(self.invoice_id)) or {}
        count = before.get("count") if type(before.get("count")) is int else 0
        status, due = invoice.get("status"), invoice.get("amount_due")
        undone = {"at": now.isoformat(), "actor": self.actor, "reason": self.reason, "credit_note": credit_note}
        undone.update(count=count + 1, rule=mark.get("rule"), event_id=mark.get("event_id"), status=status)
        written = self.written_off_record(mark, invoice)
        detail = f"actor={self.actor} credit_note={credit_note} status={status} amount_due={due}"
        detail += f" {WRITTEN_OFF_AT}={written.at}" if written.at else ""
        record = AuditRecord(
            event_id=mark.get("event_id"),
            invoice_id=self.invoice_id,
            outcome=Outcome.UNDONE,
            action="undo",
            rule=mark.get("rule"),
            amount_due=written.amount_due,
            currency=written.currency,
            reason=f"by {self.actor}: {self.reason}",
            credit_note=credit_note,
            detail=detail + (f" note={note}" if note else ""),
        )
        item = HeldWriteOff(
            invoice_id=self.invoice_id,
            event_id=mark.get("event_id"),
            rule=mark.get("rule"),
            amount_due=record.amount_due,
            currency=record.currency,
            held_at=now.isoformat(timespec="seconds"),
            reason=UNDONE_HOLD_REASON,
            event=self.release_event(mark, invoice),
        )
        with ctx.redis.pipeline(transaction=True) as pipe:
            pipe.delete(ctx.keys.written_off(self.invoice_id))
            pipe.set(ctx.keys.undone(self.invoice_id), json.dumps(undone), ex=WRITTEN_OFF_TTL)
            hold(pipe, item, ctx.keys.prefix)  # type: ignore[arg-type]  # a pipeline queues the same HSET
            ctx.audit.queue(pipe, record)
            entry_id = pipe.execute()[-1]
        record.id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        log_record(record)
        amount = record.amount_text() or "amount not recorded"
        ctx.notices.add("undone", f"{self.invoice_id}: {amount} (rule {record.rule}) undone {record.reason}")
        currency = invoice.get("currency_code")
        return UndoResult(
            self.invoice_id,
            credit_note,
            status,
            due if type(due) is int else None,
            currency if isinstance(currency, str) else None,
            note,
            record.id,
        )

    def written_off_record(self, mark: dict[str, Any], invoice: dict[str, Any]) -> AuditRecord:
        """The amount undone and when it was written off: our `written_off` record of this invoice
        (the newest), so the chart, /metrics and the digest take back exactly what the write-off
        counted (reactor/console/tally.py reads `written_off_at=` in the detail). Without one
        (trimmed from the stream) the amount the invoice shows due again, and the mark's time."""
        records, _scanned = self.ctx.audit.for_invoice(self.invoice_id)
        ours = [r for r in records if r.outcome == Outcome.WRITTEN_OFF and r.amount_due is not None]
        if ours:
            return ours[-1]
        due, currency, at = invoice.get("amount_due"), invoice.get("currency_code"), mark.get("at")
        return AuditRecord(
            event_id=mark.get("event_id"),
            invoice_id=self.invoice_id,
            outcome=Outcome.WRITTEN_OFF,
            amount_due=due if type(due) is int else None,
            currency=currency if isinstance(currency, str) else None,
            at=at if isinstance(at, str) else "",
        )

    def release_event(self, mark: dict[str, Any], invoice: dict[str, Any]) -> dict[str, Any]:
        """What `reactor held release` decides on: the event we wrote the invoice off for (stored for
        REACTOR_EVENT_TTL), with the invoice as it is now; or, once gone, the envelope a sweep uses."""
        event_id = mark.get("event_id")
        stored = self.ctx.events.load(event_id) if isinstance(event_id, str) else None
        if stored is not None:
            return stored.with_invoice(invoice).data
        return sweep_event(invoice, f"undo-{self.ctx.clock():%Y%m%dT%H%M%S}", self.ctx.clock())
