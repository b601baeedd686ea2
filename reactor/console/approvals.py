"""The approvals queue as people work it: approve or decline a write-off that waits for approvers
(reactor/jobs/approvals.py puts it there), and let approvals older than REACTOR_APPROVAL_TTL lapse.
`reactor approvals approve|decline` and the dashboard's buttons both come here, with the person who
acts (a named user, reactor/console/users.py).

Each action is one Redis transaction (WATCH on the hold): the entry's approvals, the audit record
that names the person with the time, and, for the last approval needed, the removal from the queue
and the job `reactor.jobs.release_held` that decides again on the invoice fetched fresh.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import redis

from ..jobs.approval_marks import person
from ..jobs.audit import AuditLog, AuditRecord, Outcome
from ..jobs.held import MAX_REASON, HeldWriteOff, held_json, list_held, parse_held
from ..keys import RELEASE_HELD_JOB, Keys

if TYPE_CHECKING:
    from rq import Queue

DEFAULT_APPROVAL_TTL = 7 * 24 * 3600
"""How long an approval counts (REACTOR_APPROVAL_TTL)."""


class ApprovalRefused(Exception):
    """The action was refused; the message is the sentence to show."""


@dataclass(frozen=True)
class ApprovalDone:
    """What an approval or a decline did."""

    invoice_id: str
    user: str
    counted: tuple[str, ...]
    needed: int
    queued: bool  # the last approval: the write-off went to a worker
    declined: bool = False

    def summary(self) -> str:
        if self.declined:
            return f"{self.invoice_id}: declined by {self.user}; nothing is written off, held for people"
        if self.queued:
            return (
                f"{self.invoice_id}: approved by {', '.join(self.counted)} ({len(self.counted)} of {self.needed}); "
                "a worker fetches the invoice fresh and decides again"
            )
        left = self.needed - len(self.counted)
        return (
            f"{self.invoice_id}: approved by {self.user} ({len(self.counted)} of {self.needed}); "
            f"it waits for {left} more approver{'s' if left != 1 else ''}"
        )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _clean_reason(reason: str) -> str:
    why = " ".join((reason or "").split())
    if len(why) > MAX_REASON:
        raise ApprovalRefused(f"give a reason of at most {MAX_REASON} characters (this one has {len(why)})")
    return why


def _undoer(pipe: redis.client.Pipeline, keys: Keys, invoice_id: str) -> str | None:
    raw = pipe.get(keys.undone(invoice_id))
    try:
        mark = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    actor = mark.get("actor") if isinstance(mark, dict) else None
    return person(actor) if isinstance(actor, str) else None


def _expired(item: HeldWriteOff, now: datetime, ttl: int) -> tuple[HeldWriteOff, list[dict[str, str]]]:
    """`item` without the approvals older than `ttl` seconds, and those."""
    kept, lapsed = [], []
    for approval in item.approvals:
        try:
            at = datetime.fromisoformat(approval.get("at", ""))
        except ValueError:
            at = None
        if at is None or now - at > timedelta(seconds=ttl):
            lapsed.append(approval)
        else:
            kept.append(approval)
    return (replace(item, approvals=tuple(kept)) if lapsed else item), lapsed


def _record(item: HeldWriteOff, outcome: Outcome, reason: str) -> AuditRecord:
    return AuditRecord(
        event_id=item.event_id,
        invoice_id=item.invoice_id,
        outcome=outcome,
        rule=item.rule,
        amount_due=item.amount_due,
        currency=item.currency,
        reason=reason,
    )


def _expiry_records(item: HeldWriteOff, lapsed: list[dict[str, str]], ttl: int) -> list[AuditRecord]:
    return [
        _record(
            item,
            Outcome.APPROVAL_EXPIRED,
            f"the approval by {a.get('user')} given at {a.get('at')} is older than {ttl // 3600} hours"
            " (REACTOR_APPROVAL_TTL) and no longer counts",
        )
        for a in lapsed
    ]


def _waiting(pipe: redis.client.Pipeline, keys: Keys, invoice_id: str) -> HeldWriteOff:
    item = parse_held(invoice_id, pipe.hget(keys.held(), invoice_id))
    if item is None:
        raise ApprovalRefused(
            f"{invoice_id} is not in the approvals queue (never held, or already approved, declined or released)"
        )
    if item.declined is not None:
        raise ApprovalRefused(
            f"{invoice_id} was declined by {item.declined.get('user')} at {item.declined.get('at')}; "
            f"a decline ends the approvals: `reactor held release {invoice_id}` sends it through them again"
        )
    if not item.awaits_approval:
        raise ApprovalRefused(
            f"{invoice_id} is held ({item.reason}) but does not wait for approval: "
            f"`reactor held release {invoice_id}` hands it back to a worker"
        )
    return item


def _transaction(
    connection: redis.Redis, keys: Keys, work: Callable[[redis.client.Pipeline], ApprovalDone]
) -> ApprovalDone:
    with connection.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(keys.held())
                return work(pipe)
            except redis.WatchError:
                continue


def approve(
    connection: redis.Redis,
    queue: Queue,
    invoice_id: str,
    user: str,
    *,
    prefix: str = "reactor",
    approval_ttl: int = DEFAULT_APPROVAL_TTL,
    reason: str = "",
    now: datetime | None = None,
) -> ApprovalDone:
    """`user` approves the write-off of `invoice_id`; the last approval needed queues it for a worker.
    Raises ApprovalRefused with the sentence to show."""
    keys, why = Keys(prefix), _clean_reason(reason)
    audit = AuditLog(connection, keys.audit())

    def work(pipe: redis.client.Pipeline) -> ApprovalDone:
        moment = now or _now()
        item, lapsed = _expired(_waiting(pipe, keys, invoice_id), moment, approval_ttl)
        needed = item.approvers_needed or 1
        undoer = _undoer(pipe, keys, invoice_id)
        if user in item.not_counted or user == undoer:
            raise ApprovalRefused(
                f"{user} released or undid the write-off of {invoice_id} before, so their approval does not count:"
                " four eyes need someone else"
            )
        if user in item.approvers:
            left = needed - len(item.approvers)
            others = "a different approver" if left == 1 else f"{left} other approvers"
            raise ApprovalRefused(
                f"{user} has already approved {invoice_id}: the same person's approval counts once; "
                f"it still needs {others}"
            )
        stamp = moment.isoformat(timespec="seconds")
        item = replace(item, approvals=(*item.approvals, {"user": user, "at": stamp}))
        counted = tuple(item.approvers)
        last = len(counted) >= needed
        said = f"by {user} ({len(counted)} of {needed} for tier {item.tier})" + (f": {why}" if why else "")
        event = json.loads(pipe.hget(keys.held(), invoice_id) or b"{}").get("event")
        if last and not isinstance(event, dict):
            raise ApprovalRefused(f"{invoice_id}: the held entry carries no event to decide on; release it instead")
        pipe.multi()
        for record in _expiry_records(item, lapsed, approval_ttl):
            audit.queue(pipe, record)
        if last:
            given = item.given().as_data()
            queue.enqueue(RELEASE_HELD_JOB, event, user, given, pipeline=pipe, description=f"approved {invoice_id}")
            pipe.hdel(keys.held(), invoice_id)
            said += "; the write-off is decided again on the invoice fetched fresh"
        else:
            pipe.hset(keys.held(), invoice_id, held_json(item))
        audit.queue(pipe, _record(item, Outcome.APPROVED, said))
        pipe.execute()
        return ApprovalDone(invoice_id, user, counted, needed, queued=last)

    return _transaction(connection, keys, work)


def decline(
    connection: redis.Redis,
    invoice_id: str,
    user: str,
    *,
    prefix: str = "reactor",
    reason: str = "",
    now: datetime | None = None,
) -> ApprovalDone:
    """`user` declines the write-off of `invoice_id`: it stays held, declined, until a person releases
    it; nothing is written off. Raises ApprovalRefused."""
    keys, why = Keys(prefix), _clean_reason(reason)
    audit = AuditLog(connection, keys.audit())

    def work(pipe: redis.client.Pipeline) -> ApprovalDone:
        item = _waiting(pipe, keys, invoice_id)
        stamp = (now or _now()).isoformat(timespec="seconds")
        said = f"declined by {user} at {stamp}" + (f": {why}" if why else "")
        item = replace(item, declined={"user": user, "at": stamp, "reason": why}, reason=said)
        pipe.multi()
        pipe.hset(keys.held(), invoice_id, held_json(item))
        audit.queue(pipe, _record(item, Outcome.DECLINED, f"by {user}" + (f": {why}" if why else "")))
        pipe.execute()
        return ApprovalDone(invoice_id, user, tuple(item.approvers), item.approvers_needed or 1, False, True)

    return _transaction(connection, keys, work)


def waiting(connection: redis.Redis, prefix: str = "reactor") -> list[HeldWriteOff]:
    """The approvals queue, oldest first."""
    return [item for item in list_held(connection, prefix) if item.awaits_approval]


def expire_approvals(
    connection: redis.Redis,
    *,
    prefix: str = "reactor",
    approval_ttl: int = DEFAULT_APPROVAL_TTL,
    now: datetime | None = None,
) -> int:
    """Drop the approvals older than `approval_ttl` from every waiting write-off, recording each
    (`approval_expired`); the number dropped. Approving does the same for its invoice."""
    keys, audit = Keys(prefix), AuditLog(connection, Keys(prefix).audit())
    dropped = 0
    for waiting_item in waiting(connection, prefix):
        with connection.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(keys.held())
                item = parse_held(waiting_item.invoice_id, pipe.hget(keys.held(), waiting_item.invoice_id))
                if item is None or not item.awaits_approval:
                    continue
                item, lapsed = _expired(item, now or _now(), approval_ttl)
                if not lapsed:
                    continue
                pipe.multi()
                pipe.hset(keys.held(), item.invoice_id, held_json(item))
                for record in _expiry_records(item, lapsed, approval_ttl):
                    audit.queue(pipe, record)
                pipe.execute()
                dropped += len(lapsed)
            except redis.WatchError:
                continue  # changed meanwhile: the next run (or its approval) sees it
    return dropped
