"""The `send` and `commit` steps of a write-off (reactor/jobs/write_off.py): the budget taken right
before the call, the attempt mark written before the POST, the idempotency key, and the
`written_off` mark committed with its audit record. Called under the invoice lock.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..chargebee import ChargebeeError, Throttled, WriteOffResult
from ..rules import Decision
from .audit import Outcome
from .budget import Budgets
from .context import JobContext
from .marks import commit_written_off, save_attempt
from .refusals import BudgetRefused
from .trail import make_record
from .undone import write_off_generation

if TYPE_CHECKING:
    from .attempt import WriteOffAttempt


def idempotency_key(site: str, invoice_id: str, rule: str | None, generation: int = 0) -> str:
    """Stable per (site, invoice, rule), at most 100 characters as Chargebee requires. `generation`
    counts the undos of our write-off (reactor/jobs/undone.py): the write-off after an undo is a new
    request, which Chargebee must not answer with the replay of the undone one."""
    text = f"{site}\x00{invoice_id}\x00{rule or ''}" + (f"\x00{generation}" if generation else "")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"reactor-wo-{digest[:48]}"


def tell_budget_used_up(ctx: JobContext, reason: str, currency: str, now: datetime) -> None:
    """A budget refused a write-off: told once per budget and window (the held write-offs are told each)."""
    if "max_count_per_hour" in reason:
        once, ttl = f"budget:hour:{now:%Y-%m-%dT%H}", 2 * 3600
    else:
        once, ttl = f"budget:day:{now:%Y-%m-%d}:{currency}", 2 * 86400
    ctx.notices.add("budget", f"{reason} (UTC, {now:%Y-%m-%d %H:00})", once=once, once_ttl=ttl)


def send_write_off(a: WriteOffAttempt, decision: Decision) -> WriteOffResult | BudgetRefused:
    """Take the budget, mark the attempt, and call write_off; returns Chargebee's answer, or the
    budget's refusal (the caller holds the write-off; nothing was called)."""
    ctx, invoice_id = a.ctx, a.invoice_id
    site = ctx.settings.chargebee_site or ctx.settings.api_base or ""
    # Stable per (site, invoice, rule): a repeated call within Chargebee's window is answered as a replay.
    key = idempotency_key(site, invoice_id, decision.rule, write_off_generation(ctx, invoice_id))
    comment = decision.comment
    if a.earlier is not None and a.earlier.get("key") == key:
        comment = a.earlier.get("comment")  # the same parameters, or Chargebee refuses the key (422)
    budgets = Budgets(ctx.redis, a.ruleset.limits, prefix=ctx.keys.prefix)
    currency = decision.currency or ""
    reservation = budgets.reserve(currency, decision.amount_due or 0, a.now, enforce=a.check_budget)
    if isinstance(reservation, BudgetRefused):
        tell_budget_used_up(ctx, reservation.reason, currency, a.now)
        return reservation
    a.renew()
    save_attempt(a, key, decision.rule, comment)  # before the POST: a run after a lost answer finds it
    try:
        return ctx.chargebee.write_off(invoice_id, comment, key)
    except ChargebeeError as exc:
        if (exc.status is not None and exc.status < 500) or isinstance(exc, Throttled):
            # Refused, so certainly not written off: the reservation goes back. A timeout or a 5xx may
            # have written it off, so it keeps its reservation: a budget may count a write-off twice,
            # never not at all.
            reservation.give_back()
        raise


def commit_write_off(a: WriteOffAttempt, decision: Decision, result: WriteOffResult) -> dict[str, Any]:
    """The `written_off` mark and its audit record in one transaction, with the credit note from
    Chargebee's answer; returns the job's result."""
    credit_note = (result.credit_note or {}).get("id")
    mark = {
        "at": a.now.isoformat(),
        "rule": decision.rule,
        "credit_note": credit_note,
        "event_id": a.event.id or None,
        "replayed": result.replayed,
    }
    record = make_record(
        a.ctx,
        a.job,
        a.fresh,
        decision,
        Outcome.WRITTEN_OFF,
        amount_due=result.invoice.get("write_off_amount") or decision.amount_due,
        detail=f"credit_note={credit_note} replayed={str(result.replayed).lower()}{_approved_by(a)}",
    )
    record.credit_note = credit_note
    commit_written_off(a.ctx, a.invoice_id, mark, record, result.invoice, a.fresh.content if a.fresh else None)
    return Outcome.WRITTEN_OFF.result(rule=decision.rule, credit_note=credit_note)


def _approved_by(a: WriteOffAttempt) -> str:
    """` approved_by=alice@<time>,bob@<time>` for a write-off people approved (rules.yaml `approvals:`)."""
    if a.approvals is None:
        return ""
    counted = set(a.approvals.counted())
    given = [f"{x['user']}@{x['at']}" for x in a.approvals.approvals if x.get("user") in counted]
    return f" approved_by={','.join(given)}" if given else ""
