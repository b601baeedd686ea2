"""Money coming back for an invoice we wrote off: what a payment event or a customer's excess
payments tell us (`payments_seen`, pure), and the open recovery candidates (`{p}:recovery:candidates`,
a hash this module owns) that `reactor recover` acts on.

A written-off invoice is `paid`, so a payment that arrives for it later cannot be recorded against
it: it lands as the customer's excess payment (docs/operations.md, "Money after a write-off").
Every invoice we write off joins its customer's watch (`{p}:recovery:customer:<customer>`, with the
customer's excess payments then; written with the `written_off` mark, reactor/jobs/marks.py); a
payment event of that customer, or the customer seen with more excess payments than then, records
one candidate per (invoice, transaction), once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis

from ..keys import Keys
from ..notices import Notices
from .audit import AuditLog, AuditRecord, Outcome, amount_text
from .context import JobContext
from .trail import log_record

log = logging.getLogger(__name__)

PAYMENT_EVENT_TYPES = frozenset(
    ("payment_succeeded", "transaction_created", "transaction_updated", "payment_initiated")
)
"""Events whose `transaction` may be money arriving (Chargebee's event list: payment events carry
`transaction`, `customer` and, for an invoice payment, `invoice`). Which one Chargebee sends for an
offline payment recorded as an excess payment is UNCONFIRMED: each is read alike."""

WATCH_TTL = 400 * 24 * 3600
"""How long an invoice stays in its customer's watch: as long as a `written_off` mark."""

EXCESS = "excess_payments"
"""The transaction field of a candidate seen only as the customer's `excess_payments`."""


@dataclass(frozen=True)
class PaymentSeen:
    """Money a customer has with us that nothing has applied: a payment (its transaction) or, without
    one, the customer's excess payments."""

    customer_id: str
    amount: int
    currency: str | None
    transaction: str  # the transaction id, or EXCESS


@dataclass(frozen=True)
class RecoveryCandidate:
    invoice_id: str
    customer_id: str
    amount: int
    currency: str | None
    transaction: str
    at: str
    event_id: str | None = None

    def field(self) -> str:
        return f"{self.invoice_id}:{self.transaction}"

    def amount_text(self) -> str:
        return amount_text(self.amount, self.currency)


def payments_seen(event_type: str | None, content: Mapping[str, Any]) -> list[PaymentSeen]:
    """What an event's content tells of money a customer has unapplied (pure): a successful payment's
    unused amount, and the customer's `excess_payments` when above zero. Nothing from a failed or
    refunded payment, nor from an amount that is not a whole number."""
    found: list[PaymentSeen] = []
    txn = content.get("transaction")
    if event_type in PAYMENT_EVENT_TYPES and isinstance(txn, Mapping):
        unused = txn.get("amount_unused", txn.get("amount"))
        customer = txn.get("customer_id")
        if (
            txn.get("type") == "payment"
            and txn.get("status") == "success"
            and type(unused) is int
            and unused > 0
            and isinstance(customer, str)
            and isinstance(txn.get("id"), str)
        ):
            currency = txn.get("currency_code")
            found.append(PaymentSeen(customer, unused, currency if isinstance(currency, str) else None, txn["id"]))
    customer = content.get("customer")
    if isinstance(customer, Mapping) and not found:
        excess, customer_id = customer.get("excess_payments"), customer.get("id")
        if type(excess) is int and excess > 0 and isinstance(customer_id, str):
            currency = customer.get("preferred_currency_code")
            found.append(PaymentSeen(customer_id, excess, currency if isinstance(currency, str) else None, EXCESS))
    return found


@dataclass(frozen=True)
class CandidateLog:
    """Where candidates are recorded: a worker's (`from_context`) or the web's, for payment events
    that carry no invoice and so never reach a job (reactor/web.py)."""

    redis: redis.Redis
    keys: Keys
    audit: AuditLog
    notices: Notices
    clock: Callable[[], datetime]

    @classmethod
    def from_context(cls, ctx: JobContext) -> CandidateLog:
        return cls(ctx.redis, ctx.keys, ctx.audit, ctx.notices, ctx.clock)


def watch_customer(pipe: Any, keys: Keys, customer_id: Any, invoice_id: str, content: Mapping[str, Any]) -> None:
    """Queue on `pipe` (the write-off's own transaction): the invoice joins its customer's hash,
    `{p}:recovery:customer:<customer>`, invoice id → `{"excess_before": n}`, the customer's
    `excess_payments` when we wrote it off (null when the event did not carry the customer), so that
    only a rise counts as money back. Kept as long as the `written_off` mark."""
    if not isinstance(customer_id, str) or not customer_id:
        return
    customer = content.get("customer")
    before = customer.get("excess_payments") if isinstance(customer, Mapping) else None
    if not isinstance(customer, Mapping) or customer.get("id") != customer_id or type(before) is not int:
        before = None
    key = keys.recovery_customer(customer_id)
    pipe.hset(key, invoice_id, json.dumps({"excess_before": before}))
    pipe.expire(key, WATCH_TTL)


def written_off_of(ctx: CandidateLog, customer_id: str) -> list[tuple[str, int]]:
    """The customer's invoices we wrote off and have not undone or recovered, each with the
    customer's excess payments when we did (0 when not known)."""
    watched = ctx.redis.hgetall(ctx.keys.recovery_customer(customer_id))
    if not watched:
        return []
    members = sorted((field.decode(), _excess_before(raw)) for field, raw in watched.items())
    with ctx.redis.pipeline(transaction=False) as pipe:
        for invoice_id, _before in members:
            pipe.exists(ctx.keys.written_off(invoice_id))
        alive = pipe.execute()
    return [member for member, live in zip(members, alive, strict=True) if live]


def _excess_before(raw: bytes) -> int:
    try:
        before = json.loads(raw).get("excess_before")
    except (ValueError, AttributeError):
        return 0
    return before if type(before) is int else 0


def note_payments(ctx: CandidateLog, event_id: str | None, event_type: str | None, content: Mapping[str, Any]) -> int:
    """Record a candidate for each (written-off invoice of the customer, payment seen), once: the
    first sighting writes the hash entry, its `recovery_candidate` audit record and a notice. How
    many were new. Never raises a Redis error into the job that saw the event (logged)."""
    new = 0
    try:
        for seen in payments_seen(event_type, content):
            for invoice_id, before in written_off_of(ctx, seen.customer_id):
                amount = seen.amount - before if seen.transaction == EXCESS else seen.amount
                if amount <= 0:
                    continue  # excess payments the customer had already when we wrote it off
                candidate = RecoveryCandidate(
                    invoice_id,
                    seen.customer_id,
                    amount,
                    seen.currency,
                    seen.transaction,
                    ctx.clock().isoformat(timespec="seconds"),
                    event_id,
                )
                new += _record(ctx, candidate)
    except redis.RedisError as exc:
        log.warning("could not record a recovery candidate for event %s: %s", event_id, exc)
    return new


def _record(ctx: CandidateLog, candidate: RecoveryCandidate) -> int:
    """One candidate, once. The same money is seen twice, as its payment and in the customer's
    excess payments: a balance is recorded only while no payment of the invoice is, and a payment
    takes the balance's place."""
    key = ctx.keys.recovery_candidates()
    balance = f"{candidate.invoice_id}:{EXCESS}"
    if candidate.transaction == EXCESS:
        if any(c.transaction != EXCESS for c in candidates_for(ctx.redis, ctx.keys, candidate.invoice_id)):
            return 0
    elif ctx.redis.hexists(key, candidate.field()):
        return 0
    else:
        ctx.redis.hdel(key, balance)
    if not ctx.redis.hsetnx(key, candidate.field(), json.dumps(asdict(candidate))):
        return 0
    txn = "" if candidate.transaction == EXCESS else f" transaction {candidate.transaction}"
    record = AuditRecord(
        event_id=candidate.event_id,
        invoice_id=candidate.invoice_id,
        outcome=Outcome.RECOVERY_CANDIDATE,
        action="recover",
        amount_due=candidate.amount,
        currency=candidate.currency,
        reason=f"customer {candidate.customer_id} paid{txn} after our write-off: "
        f"`reactor recover {candidate.invoice_id}`",
        detail=f"customer={candidate.customer_id} transaction={candidate.transaction} amount={candidate.amount}",
    )
    record.id = ctx.audit.append(record)
    log_record(record)
    ctx.notices.add(
        "recovery",
        f"{candidate.invoice_id}: customer {candidate.customer_id} paid {candidate.amount_text() or '?'}{txn} "
        f"after our write-off; `reactor recover {candidate.invoice_id}`",
    )
    return 1


def open_candidates(connection: redis.Redis, keys: Keys) -> list[RecoveryCandidate]:
    """Every open candidate of the site whose `keys` are given, oldest first."""
    items = []
    for _field, raw in connection.hgetall(keys.recovery_candidates()).items():
        parsed = _parse(raw)
        if parsed is not None:
            items.append(parsed)
    return sorted(items, key=lambda c: (c.at, c.invoice_id, c.transaction))


def candidates_for(connection: redis.Redis, keys: Keys, invoice_id: str) -> list[RecoveryCandidate]:
    return [c for c in open_candidates(connection, keys) if c.invoice_id == invoice_id]


def _parse(raw: bytes) -> RecoveryCandidate | None:
    try:
        data = json.loads(raw)
        return RecoveryCandidate(
            invoice_id=str(data["invoice_id"]),
            customer_id=str(data["customer_id"]),
            amount=int(data["amount"]),
            currency=data.get("currency") if isinstance(data.get("currency"), str) else None,
            transaction=str(data["transaction"]),
            at=str(data.get("at") or ""),
            event_id=data.get("event_id") if isinstance(data.get("event_id"), str) else None,
        )
    except (ValueError, KeyError, TypeError):
        return None
