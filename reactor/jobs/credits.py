"""`apply_credits_first: true`: the customer's refundable credits go on the invoice before a
write-off (https://apidocs.chargebee.com/docs/api/invoices/apply-credits-for-an-invoice), so only
what they leave is written off. Safe to run again, as the write-off is: a credits mark before the
POST, a stable idempotency key, and the record and the mark's removal in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..chargebee import ChargebeeError, InvalidIdError, InvalidStateError, NotFoundError, RetryableError
from ..ingest.envelope import Event
from ..rules import Decision
from ..rules.money import to_major
from .audit import Outcome
from .context import JobContext
from .refusals import CreditsUnreadable
from .trail import log_record, make_record

if TYPE_CHECKING:
    from .attempt import WriteOffAttempt

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

    event: Event
    amount: int
    covered: bool


def apply_credits_first(a: WriteOffAttempt, decision: Decision) -> CreditsApplied | CreditsUnreadable | None:
    """Apply the customer's credits to the attempt's fresh invoice (once); None when there are none,
    the refusal when they cannot be read (nothing may be written off then: the rule asked for
    credits first)."""
    assert a.fresh is not None
    invoice = a.fresh.invoice or {}
    invoice_id = str(invoice.get("id"))
    before = _int(invoice.get("credits_applied")) or 0  # a mark left by a call that did not land is replaced
    # The customer's credits read fresh first; none, and nothing is called (the docs ask for
    # non-zero credits before the call, and what Chargebee answers otherwise is UNCONFIRMED).
    available = customer_credits(a.ctx, invoice, a.renew)
    if isinstance(available, CreditsUnreadable) or available <= 0:
        return available or None
    # A stable key per (site, invoice, rule, credits applied before) and a fixed comment: a repeated
    # call within Chargebee's window is answered as a replay.
    settings = a.ctx.settings
    key = credits_key(settings.chargebee_site or settings.api_base or "", invoice_id, decision.rule, before)
    _save_mark(a, invoice_id, key, decision.rule, before)
    a.renew()
    after = _send(a.ctx, invoice_id, key, decision.rule)
    applied = (_int(after.get("credits_applied")) or 0) - before
    return _commit(a, a.fresh.with_invoice(after), decision, max(applied, 0))


def recover_credits(a: WriteOffAttempt) -> CreditsApplied | None:
    """An earlier run of ours sent apply_credits and was stopped before its record: its credits mark
    keeps the invoice's `credits_applied` as it was, so when the fresh invoice's rose above it, the
    call went through; record it now, once, instead of calling again. The caller goes on to decide
    on what the credits left."""
    assert a.fresh is not None
    invoice = a.fresh.invoice or {}
    mark = _load_mark(a.ctx, str(invoice.get("id")))
    if mark is None:
        return None
    before, now = _int(mark.get("credits_before")) or 0, _int(invoice.get("credits_applied")) or 0
    if now <= before:
        return None  # the call did not land (or was refused): the next apply_credits sends it again
    return _commit(a, a.fresh, None, now - before, mark.get("rule"))


def customer_credits(ctx: JobContext, invoice: dict[str, Any], renew: Callable[[], None]) -> int | CreditsUnreadable:
    """The customer's refundable credits in the invoice's currency, read fresh (multi-currency
    customers carry them per currency in `balances[]`), or why they cannot be read."""
    customer_id = invoice.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id:
        return CreditsUnreadable("apply_credits_first: the invoice names no customer_id, so its credits cannot be read")
    renew()
    try:
        customer = ctx.chargebee.retrieve_customer(customer_id)
    except NotFoundError:
        return CreditsUnreadable(
            f"apply_credits_first: Chargebee has no customer {customer_id} (404) to read credits from"
        )
    except InvalidIdError as exc:  # nothing was sent
        return CreditsUnreadable(f"apply_credits_first: Chargebee cannot be asked for the customer's credits: {exc}")
    found = refundable_in(customer, invoice.get("currency_code"))
    if found is None:
        return CreditsUnreadable(f"apply_credits_first: customer {customer_id} shows no readable refundable_credits")
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
    a: WriteOffAttempt, event: Event, decision: Decision | None, amount: int, rule: str | None = None
) -> CreditsApplied:
    """The `credits_applied` record and the end of the mark, in one transaction. Without a decision
    the credits are an earlier run's, recovered (`rule` from its mark)."""
    recovered = decision is None
    invoice = event.invoice or {}
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
        a.ctx,
        a.job,
        event,
        decision,
        Outcome.CREDITS_APPLIED,
        amount_due=amount,
        reason=f"credits of {to_major(amount, currency)} {currency} applied {by}first (rule {rule}): {left}",
        detail=f"amount_due_after={due} recovered={str(recovered).lower()}",
    )
    record.rule, record.action = rule, "write_off"
    with a.ctx.redis.pipeline(transaction=True) as pipe:
        pipe.delete(a.ctx.keys.credits_attempt(str(invoice.get("id"))))
        a.ctx.audit.queue(pipe, record)
        pipe.execute()
    log_record(record)
    return CreditsApplied(event, amount, covered)


def _save_mark(a: WriteOffAttempt, invoice_id: str, key: str, rule: str | None, before: int) -> None:
    """Written before the POST, with the invoice's `credits_applied` as it was (`before`)."""
    mark = {
        "at": datetime.now(timezone.utc).isoformat(),
        "key": key,
        "rule": rule,
        "credits_before": before,
        "event_id": a.latest.id or None,
        "job_id": a.job.id if a.job else None,
    }
    a.ctx.redis.set(a.ctx.keys.credits_attempt(invoice_id), json.dumps(mark), ex=CREDITS_MARK_TTL)


def _load_mark(ctx: JobContext, invoice_id: str) -> dict[str, Any] | None:
    raw = ctx.redis.get(ctx.keys.credits_attempt(invoice_id))
    try:
        mark = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return mark if isinstance(mark, dict) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
