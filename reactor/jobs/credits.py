"""`apply_credits_first: true`: the customer's refundable credits go on the invoice before a
write-off (https://apidocs.chargebee.com/docs/api/invoices/apply-credits-for-an-invoice), so only
what they leave is written off.

Safe to run again, as the write-off is (reactor/jobs/write_off.py):

1. the customer's `refundable_credits` are read fresh first; none, and nothing is called (the
   docs ask for non-zero credits before the call, and what Chargebee answers otherwise is
   UNCONFIRMED);
2. a credits mark, written before the POST, keeps the invoice's `credits_applied` as it was; a
   later run (the worker killed after the call, before its record) that finds the fresh invoice's
   `credits_applied` above it knows the call went through, records it, and does not call again;
3. a stable `chargebee-idempotency-key` per (site, invoice, rule, credits applied before) and a
   fixed comment, so a repeated call within Chargebee's window is answered as a replay;
4. the record of the credits and the removal of the mark happen in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rq.job import Job

from ..chargebee import ChargebeeError, InvalidIdError, InvalidStateError, NotFoundError, RetryableError
from ..rules import Decision
from ..rules.money import to_major
from .audit import Outcome
from .context import JobContext
from .stored_events import as_event, with_invoice
from .trail import log_record, make_record

CREDITS_MARK_TTL = 30 * 24 * 3600  # as long as a stored event: a replay from the dead letters still finds it
APPLICABLE_STATUSES = ("not_paid", "payment_due", "posted")  # apply_credits' prerequisites


def credits_key(site: str, invoice_id: str, rule: str | None, credits_before: int = 0) -> str:
    """Stable per (site, invoice, rule, the invoice's credits_applied before the call), at most 100
    characters as Chargebee requires: a run after a call that did not land sends the same request
    again, and a later application (credits added after a write-off was undone) is a new one, never
    answered with the first one's replay."""
    text = f"credits\x00{site}\x00{invoice_id}\x00{rule or ''}\x00{credits_before}"
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"reactor-ac-{digest[:48]}"


@dataclass(frozen=True)
class CreditsApplied:
    """Credits on the invoice by this rule: `event` carries the invoice as it is after them."""

    event: dict[str, Any]
    amount: int
    covered: bool


def apply_credits_first(
    ctx: JobContext, job: Job | None, fresh_event: dict[str, Any], decision: Decision, renew: Callable[[], None]
) -> CreditsApplied | str | None:
    """Apply the customer's credits (once); None when there are none, a reason when they cannot be
    read (nothing may be written off then: the rule asked for credits first)."""
    invoice = as_event(fresh_event).invoice or {}
    invoice_id = str(invoice.get("id"))
    before = _int(invoice.get("credits_applied")) or 0  # a mark left by a call that did not land is replaced
    available = customer_credits(ctx, invoice, renew)
    if isinstance(available, str) or available <= 0:
        return available or None
    key = credits_key(ctx.settings.chargebee_site or ctx.settings.api_base or "", invoice_id, decision.rule, before)
    _save_mark(ctx, job, invoice_id, key, decision, before, fresh_event)
    renew()
    after = _send(ctx, invoice_id, key, decision.rule)
    applied = (_int(after.get("credits_applied")) or 0) - before
    return _commit(ctx, job, with_invoice(fresh_event, after), decision, max(applied, 0), False)


def recover_credits(ctx: JobContext, job: Job | None, fresh_event: dict[str, Any]) -> CreditsApplied | None:
    """An earlier run of ours sent apply_credits and was stopped before its record: when the fresh
    invoice's `credits_applied` rose above the mark's, the call went through; record it now, once,
    instead of calling again. The caller goes on to decide on what the credits left."""
    invoice = as_event(fresh_event).invoice or {}
    mark = _load_mark(ctx, str(invoice.get("id")))
    if mark is None:
        return None
    before, now = _int(mark.get("credits_before")) or 0, _int(invoice.get("credits_applied")) or 0
    if now <= before:
        return None  # the call did not land (or was refused): the next apply_credits sends it again
    return _commit(ctx, job, fresh_event, None, now - before, True, rule=mark.get("rule"))


def customer_credits(ctx: JobContext, invoice: dict[str, Any], renew: Callable[[], None]) -> int | str:
    """The customer's refundable credits in the invoice's currency, read fresh (multi-currency
    customers carry them per currency in `balances[]`), or why they cannot be read."""
    customer_id = invoice.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id:
        return "apply_credits_first: the invoice names no customer_id, so its credits cannot be read"
    renew()
    try:
        customer = ctx.chargebee.retrieve_customer(customer_id)
    except NotFoundError:
        return f"apply_credits_first: Chargebee has no customer {customer_id} (404) to read credits from"
    except InvalidIdError as exc:  # nothing was sent
        return f"apply_credits_first: Chargebee cannot be asked for the customer's credits: {exc}"
    found = refundable_in(customer, invoice.get("currency_code"))
    if found is None:
        return f"apply_credits_first: customer {customer_id} shows no readable refundable_credits"
    return found


def refundable_in(customer: dict[str, Any], currency: object) -> int | None:
    """The customer's refundable credits in `currency`: its `balances[]` entry when it has them per
    currency (credits in another currency cannot pay the invoice), else `refundable_credits`; None
    when unreadable."""
    balances = customer.get("balances")
    if not isinstance(balances, list) or not balances:
        return _int(customer.get("refundable_credits"))
    if not all(isinstance(b, dict) and isinstance(b.get("currency_code"), str) for b in balances):
        return None
    mine = [b for b in balances if b["currency_code"] == currency]
    return _int(mine[0].get("refundable_credits")) if mine else 0


def _send(ctx: JobContext, invoice_id: str, key: str, rule: str | None) -> dict[str, Any]:
    """The call. A refusal is read against the invoice as it is now: no longer open means settled
    elsewhere; otherwise (the credits gone meanwhile, say) the job tries again and reads them anew."""
    comment = f"chargebee-reactor: credits applied before a write-off by rule {rule}"
    try:
        return ctx.chargebee.apply_credits(invoice_id, comment, key)
    except (NotFoundError, RetryableError):
        raise
    except ChargebeeError as exc:
        if exc.status is None or exc.status >= 500:
            raise
        status = ctx.chargebee.retrieve_invoice(invoice_id).get("status")
        if status not in APPLICABLE_STATUSES:
            raise InvalidStateError(f"apply_credits refused, invoice now {status}: {exc.message}") from exc
        raise RetryableError(f"apply_credits refused ({exc}); the customer's credits are read again") from exc


def _commit(
    ctx: JobContext,
    job: Job | None,
    event: dict[str, Any],
    decision: Decision | None,
    amount: int,
    recovered: bool,
    rule: str | None = None,
) -> CreditsApplied:
    """The `credits_applied` record and the end of the mark, in one transaction."""
    invoice = as_event(event).invoice or {}
    due = _int(invoice.get("amount_due")) or 0
    currency = str(invoice.get("currency_code") or "")
    rule = decision.rule if decision else rule
    covered = due == 0 or invoice.get("status") == "paid"
    left = (
        "covered the amount due; nothing written off"
        if covered
        else f"{to_major(due, currency)} {currency} left, decided again"
    )
    by = "by an earlier run that did not record them; " if recovered else ""
    record = make_record(
        ctx,
        job,
        event,
        decision,
        Outcome.CREDITS_APPLIED,
        amount_due=amount,
        reason=f"credits of {to_major(amount, currency)} {currency} applied {by}first (rule {rule}): {left}",
        detail=f"amount_due_after={due} recovered={str(recovered).lower()}",
    )
    record.rule, record.action = rule, "write_off"
    with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.delete(ctx.keys.credits_attempt(str(invoice.get("id"))))
        ctx.audit.queue(pipe, record)
        pipe.execute()
    log_record(record)
    return CreditsApplied(event, amount, covered)


def _save_mark(
    ctx: JobContext,
    job: Job | None,
    invoice_id: str,
    key: str,
    decision: Decision,
    before: int,
    event: dict[str, Any],
) -> None:
    mark = {
        "at": datetime.now(timezone.utc).isoformat(),
        "key": key,
        "rule": decision.rule,
        "credits_before": before,
        "event_id": event.get("id"),
        "job_id": job.id if job else None,
    }
    ctx.redis.set(ctx.keys.credits_attempt(invoice_id), json.dumps(mark), ex=CREDITS_MARK_TTL)


def _load_mark(ctx: JobContext, invoice_id: str) -> dict[str, Any] | None:
    raw = ctx.redis.get(ctx.keys.credits_attempt(invoice_id))
    try:
        mark = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return mark if isinstance(mark, dict) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
