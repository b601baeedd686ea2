"""Write-offs held back for a person: where a budget (budget.py) or an undo (reactor/console/undo.py)
parks a write-off it will not carry out on its own, until `reactor held release` hands it back to a
worker; the dashboard and /metrics read them here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import redis

from ..keys import RELEASE_HELD_JOB, Keys
from .approval_marks import GivenApprovals, approval_entries, counted_approvers
from .audit import AuditLog, AuditRecord, Outcome, amount_text
from .trail import record_outcome

if TYPE_CHECKING:
    from rq import Queue

    from ..rules import Decision
    from .attempt import WriteOffAttempt

log = logging.getLogger(__name__)

MAX_REASON = 500
"""The longest reason a person gives for an undo or a release (audit record, `undone` record, the dashboard's forms)."""

UNDONE_HOLD_REASON = "undone"
"""The reason of the hold `reactor undo` puts on an invoice (reactor/console/undo.py; undone.py reads it)."""


def held_key(prefix: str = "reactor") -> str:
    """`{prefix}:held`, a hash: invoice id (one entry per invoice: holding it again replaces it) → a
    JSON object, `HeldWriteOff` with the event to decide on again:
        {"invoice_id": "inv_1", "event_id": "ev_1", "rule": "dunning-exhausted-small-balance",
         "amount_due": 1250, "currency": "USD",       # minor units, as Chargebee sends them
         "held_at": "2026-01-15T10:00:00+00:00",      # ISO 8601, UTC
         "reason": "daily budget for USD spent", "event": {...},
         # a write-off waiting for approvers (rules.yaml `approvals:`, reactor/jobs/approvals.py):
         "tier": 2, "approvers_needed": 2,
         "approvals": [{"user": "alice", "at": "2026-01-15T10:05:00+00:00"}],
         "not_counted": ["bob"],                      # released or undid it: their approval does not count
         "declined": {"user": "carol", "at": "...", "reason": "..."}}   # a decline ends the wait
    Readers tolerate missing fields and skip values that are not JSON objects. Releasing or dropping
    one is `HDEL reactor:held <invoice id>` (`release` does it with the re-enqueue)."""
    return Keys(prefix).held()


@dataclass(frozen=True)
class HeldWriteOff:
    invoice_id: str
    event_id: str | None = None
    rule: str | None = None
    amount_due: int | None = None
    currency: str | None = None
    held_at: str | None = None
    reason: str | None = None
    event: dict[str, Any] | None = dataclasses.field(default=None, repr=False, compare=False)
    tier: int | None = None
    approvers_needed: int | None = None
    approvals: tuple[dict[str, str], ...] = ()
    not_counted: tuple[str, ...] = ()
    declined: dict[str, str] | None = None

    def amount_text(self) -> str:
        """`12.50 USD` as people read it."""
        return amount_text(self.amount_due, self.currency)

    @property
    def awaits_approval(self) -> bool:
        """In the approvals queue: waiting for approvers, not declined."""
        return self.approvers_needed is not None and self.declined is None

    def waited(self, now: datetime) -> float | None:
        """Seconds since it was held (None when its time is unreadable)."""
        try:
            since = datetime.fromisoformat(self.held_at or "")
        except ValueError:
            return None
        return max(0.0, (now - since).total_seconds()) if since.tzinfo else None

    @property
    def approvers(self) -> list[str]:
        """The distinct people whose approval counts, in the order they approved."""
        return counted_approvers(self.approvals, self.not_counted)

    def given(self) -> GivenApprovals:
        """What the last approval hands to the worker."""
        return GivenApprovals(self.tier or 0, self.approvals, self.not_counted)


def _parse(invoice_id: str, raw: bytes) -> HeldWriteOff | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None

    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) else None

    def number(name: str) -> int | None:
        value = data.get(name)
        return value if type(value) is int else None

    def entries(name: str) -> list[Any]:
        value = data.get(name)
        return value if isinstance(value, list) else []

    approvals = approval_entries(data.get("approvals"))
    declined = data.get("declined")
    return HeldWriteOff(
        invoice_id=invoice_id,
        event_id=text("event_id"),
        rule=text("rule"),
        amount_due=number("amount_due"),
        currency=text("currency"),
        held_at=text("held_at"),
        reason=text("reason"),
        event=data.get("event") if isinstance(data.get("event"), dict) else None,
        tier=number("tier"),
        approvers_needed=number("approvers_needed"),
        approvals=approvals,
        not_counted=tuple(u for u in entries("not_counted") if isinstance(u, str)),
        declined={k: str(v) for k, v in declined.items()} if isinstance(declined, dict) else None,
    )


def parse_held(invoice_id: str, raw: bytes | None) -> HeldWriteOff | None:
    """One stored entry of `{prefix}:held` (None when absent or unreadable)."""
    return None if raw is None else _parse(invoice_id, raw)


def get_held(connection: redis.Redis, invoice_id: str, prefix: str = "reactor") -> HeldWriteOff | None:
    """The held write-off of one invoice, or None."""
    return parse_held(invoice_id, connection.hget(held_key(prefix), invoice_id))


def list_held(connection: redis.Redis, prefix: str = "reactor") -> list[HeldWriteOff]:
    """Every held write-off, oldest first."""
    items = []
    for field, raw in connection.hgetall(held_key(prefix)).items():
        held = _parse(field.decode(), raw)
        if held is not None:
            items.append(held)
    return sorted(items, key=lambda h: (h.held_at or "", h.invoice_id))


def count_held(connection: redis.Redis, prefix: str = "reactor") -> int:
    return int(connection.hlen(held_key(prefix)))


def hold(connection: redis.Redis, item: HeldWriteOff, prefix: str = "reactor") -> None:
    """Park a write-off (for the feature that holds them, and for tests)."""
    connection.hset(held_key(prefix), item.invoice_id, held_json(item))


def held_json(item: HeldWriteOff) -> str:
    """The stored form of a held write-off; the approval fields only when it has them, so that a
    budget's or an undo's hold is stored as before."""
    data = asdict(item)
    data["held_at"] = data["held_at"] or datetime.now(timezone.utc).isoformat(timespec="seconds")
    for name in ("tier", "approvers_needed", "approvals", "not_counted", "declined"):
        if not data[name]:
            del data[name]
    return json.dumps(data)


def held_event(connection: redis.Redis, invoice_id: str, prefix: str = "reactor") -> dict[str, Any] | None:
    """The event stored with a held write-off (what a release decides on), or None."""
    raw = connection.hget(held_key(prefix), invoice_id)
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    event = data.get("event") if isinstance(data, dict) else None
    return event if isinstance(event, dict) else None


def hold_write_off(a: WriteOffAttempt, decision: Decision, reason: str) -> dict[str, Any]:
    """Park the write-off a budget refused: in `reactor:held`, in the audit and in the log; not lost,
    not failed, and not retried by itself. The attempt's fresh event is what a release decides on
    again (the rules still apply, the budget that held it is not checked, the amount still counted)."""
    event, given = a.latest, a.approvals
    item = HeldWriteOff(
        invoice_id=decision.invoice_id or a.invoice_id,
        event_id=event.id or None,
        rule=decision.rule,
        amount_due=decision.amount_due,
        currency=decision.currency,
        held_at=a.now.isoformat(timespec="seconds"),
        reason=reason,
        event=event.data,
        # approved, then over the budget: the approvals stay with it, so a release needs none again
        tier=given.tier if given is not None else None,
        approvals=given.approvals if given is not None else (),
        not_counted=given.not_counted if given is not None else (),
    )
    hold(a.ctx.redis, item, a.ctx.keys.prefix)
    a.ctx.notices.add("held", f"{item.invoice_id}: {item.amount_text()} by rule {decision.rule}: {reason}")
    log.warning(
        "write-off of invoice %s held: %s (reactor held list / release)",
        item.invoice_id,
        reason,
        extra={"invoice_id": item.invoice_id, "rule": decision.rule},
    )
    record_outcome(a.ctx, a.job, event, decision, Outcome.HELD, reason=reason)
    return Outcome.HELD.result(rule=decision.rule, reason=reason)


# -- release -------------------------------------------------------------------------------------


def release(
    connection: redis.Redis,
    queue: Queue,
    invoice_ids: Iterable[str],
    actor: str,
    *,
    prefix: str = "reactor",
    reason: str | None = None,
) -> list[str]:
    """Hand held write-offs back to a worker (job `reactor.jobs.release_held`): for each, its removal,
    its enqueue and its `released` audit record (who, and why when given) in one transaction.
    `reactor held release` and the dashboard's Release both come here. Returns the invoice ids
    released; unknown ids are skipped."""
    why = " ".join((reason or "").split())
    if len(why) > MAX_REASON:
        raise ValueError(f"give a reason of at most {MAX_REASON} characters (this one has {len(why)})")
    audit = AuditLog(connection, Keys(prefix).audit())
    released = []
    for invoice_id in invoice_ids:
        item = get_held(connection, invoice_id, prefix)
        event = held_event(connection, invoice_id, prefix)
        if event is None or (item is not None and item.awaits_approval):
            continue  # one awaiting approval is approved or declined (reactor/console/approvals.py)
        record = AuditRecord(
            event_id=None,
            invoice_id=invoice_id,
            outcome=Outcome.RELEASED,
            reason=f"by {actor}: {why}" if why else f"by {actor}",
        )
        with connection.pipeline(transaction=True) as pipe:
            pipe.multi()  # RQ puts a caller's pipeline in MULTI itself, refusing one with commands queued
            args: tuple[Any, ...] = (event, actor)
            if item is not None and item.approvers_needed is None and item.tier is not None and item.approvals:
                args = (event, actor, item.given().as_data(), True)  # approved, held by a budget
            queue.enqueue(RELEASE_HELD_JOB, *args, pipeline=pipe, description=f"release {invoice_id}")
            pipe.hdel(held_key(prefix), invoice_id)
            audit.queue(pipe, record)
            pipe.execute()
        released.append(invoice_id)
    return released
