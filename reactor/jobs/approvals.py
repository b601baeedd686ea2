"""Four eyes in the worker: a write-off above an approval tier (rules.yaml `approvals:`,
reactor/rules/approvals.py) is not made until enough distinct people approved it. It waits in the
hold (`{prefix}:held`, reactor/jobs/held.py) with its tier and the approvals so far; people approve
or decline it there (reactor/console/approvals.py), and the last approval hands it to a worker
(`reactor.jobs.release_held` with the approvals), which decides again on the invoice fetched fresh and
comes back here: enough approvals for the tier it is in now, or it waits again.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import redis

from ..rules.approvals import ApprovalNeed, approval_needed
from .approval_marks import person
from .audit import Outcome
from .held import HeldWriteOff, held_json, parse_held
from .undone import load_mark

if TYPE_CHECKING:
    from .attempt import WriteOffAttempt
    from .context import JobContext

log = logging.getLogger(__name__)

AWAITS = "awaits approval"
"""How the reason of a write-off in the approvals queue starts."""


def approvals_given(a: WriteOffAttempt) -> dict[str, Any] | None:
    """The write_off step of four eyes (reactor/jobs/write_off.py): None when the decision needs no
    approval or has enough; else the write-off waits in the approvals queue (the attempt's result)."""
    decision = a.decision
    assert decision is not None
    need = approval_needed(a.ruleset.approvals, decision.currency, decision.amount_due_major)
    if need is None:
        return None
    if a.approvals is not None and a.approvals.enough_for(need.tier, need.approvers):
        return None
    return await_approval(a, need)


def not_counted_for(ctx: JobContext, invoice_id: str, released_by: str | None) -> set[str]:
    """The people whose approval of this invoice does not count: who released it, who undid our
    write-off of it (the `undone` mark)."""
    people = {person(released_by)} if released_by else set()
    undone = load_mark(ctx, ctx.keys.undone(invoice_id)) or {}
    if isinstance(undone.get("actor"), str):
        people.add(person(undone["actor"]))
    return {p for p in people if p}


def await_approval(a: WriteOffAttempt, need: ApprovalNeed) -> dict[str, Any]:
    """Park the write-off in the approvals queue: approvals so far are kept while it stays in the same
    tier (another event about the invoice does not wipe them); a new tier starts from none."""
    decision, event = a.decision, a.latest
    assert decision is not None
    invoice_id = decision.invoice_id or a.invoice_id
    reason = f"{AWAITS}: {need.why}"
    if a.approvals is not None:
        reason += f" (approved for tier {a.approvals.tier} by {', '.join(a.approvals.counted()) or 'nobody'})"
    # who released it does not count; who approved it last (a.approvals given) still does, for a new tier
    not_counted = not_counted_for(a.ctx, invoice_id, a.released_by if a.approvals is None else None)
    fresh = HeldWriteOff(
        invoice_id=invoice_id,
        event_id=event.id or None,
        rule=decision.rule,
        amount_due=decision.amount_due,
        currency=decision.currency,
        held_at=a.now.isoformat(timespec="seconds"),
        reason=reason,
        event=event.data,
        tier=need.tier,
        approvers_needed=need.approvers,
    )
    _merge_into_queue(a.ctx.redis, a.ctx.keys.held(), fresh, not_counted)
    a.ctx.notices.add("approval", f"{invoice_id}: {fresh.amount_text()} by rule {decision.rule}: {reason}")
    log.warning("write-off of invoice %s %s", invoice_id, reason, extra={"invoice_id": invoice_id})
    return a.record(Outcome.AWAITS_APPROVAL, event, decision, reason=reason, invoice_id=invoice_id)


def _merge_into_queue(connection: redis.Redis, key: str, fresh: HeldWriteOff, not_counted: set[str]) -> None:
    """Write `fresh` over the invoice's entry, keeping the approvals and the time it started waiting
    when the entry already waits for the same tier. WATCH: an approval given meanwhile is not lost."""
    with connection.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(key)
                before = parse_held(fresh.invoice_id, pipe.hget(key, fresh.invoice_id))
                item = fresh
                people = set(not_counted)
                if before is not None and before.awaits_approval:
                    people |= set(before.not_counted)
                    if before.tier == fresh.tier:
                        item = _with(fresh, approvals=before.approvals, held_at=before.held_at or fresh.held_at)
                item = _with(item, not_counted=tuple(sorted(people)))
                pipe.multi()
                pipe.hset(key, fresh.invoice_id, held_json(item))
                pipe.execute()
                return
            except redis.WatchError:
                continue


def _with(item: HeldWriteOff, **changes: Any) -> HeldWriteOff:
    return replace(item, **changes)


def declined_hold(ctx: JobContext, invoice_id: str) -> str | None:
    """Why no job may write `invoice_id` off now (a person declined it and nobody has released it since),
    or None."""
    raw = ctx.redis.hget(ctx.keys.held(), invoice_id)
    item = parse_held(invoice_id, raw)
    if item is None or item.declined is None:
        return None
    who = item.declined.get("user", "?")
    return f"declined by {who} at {item.declined.get('at', '?')}; held until `reactor held release {invoice_id}`"
