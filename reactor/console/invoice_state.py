"""What a person reads first about one invoice (the dashboard's invoice page, before its timeline):
the reactor's standing on it in one line (`standing`, from its audit records and its held entry),
and its status at Chargebee now (`chargebee_status`), fetched live under the shared rate limit.
When Chargebee cannot be asked, the status says so and why, never a guess. And, for the dashboard's
recent decisions, which write-offs a person undid since (`undone_write_offs`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import redis

from ..chargebee import AuthError, ChargebeeClient, ChargebeeError, NotFoundError, RetryableError, Throttled
from ..config import Settings
from ..jobs.audit import AuditRecord, Outcome, amount_text
from ..jobs.context import build_rate_limit
from ..jobs.held import HeldWriteOff
from ..keys import Keys
from ..timestamps import shown_time
from .trace.timeline import moment

log = logging.getLogger(__name__)

LIVE_TIMEOUT = 5.0
"""Seconds the page waits for Chargebee's answer (at most REACTOR_HTTP_TIMEOUT)."""
LIVE_SLOT_WAIT = 2.0
"""Seconds the page waits for a slot of the shared call budget (at most the workers' wait)."""


def last_write_off(records: Iterable[AuditRecord]) -> AuditRecord | None:
    """The newest `written_off` record: the write-off in force, or the last one undone."""
    found = None
    for record in records:
        if record.outcome == Outcome.WRITTEN_OFF:
            found = record
    return found


def undone_write_offs(connection: redis.Redis, prefix: str, records: Iterable[AuditRecord]) -> dict[str, Any]:
    """Stream id of each `written_off` record among `records` that a person undid since → the
    invoice's `undone` mark (who, when, why; reactor/console/undo.py). The mark is the latest undo: a
    write-off recorded before it was undone (only the write-off in force can be undone, and a new
    one needs the undo and a release first); one recorded after it stands."""
    rows = [r for r in records if r.outcome == Outcome.WRITTEN_OFF and r.invoice_id and r.id and r.moment]
    if not rows:
        return {}
    keys = Keys(prefix)
    with connection.pipeline(transaction=False) as pipe:
        for record in rows:
            pipe.get(keys.undone(record.invoice_id or ""))
        marks = [_json_object(raw) for raw in pipe.execute()]
    undone = {}
    for record, mark in zip(rows, marks, strict=True):
        at = moment((mark or {}).get("at"))
        if mark and at is not None and record.moment and record.moment < at:
            undone[record.id or ""] = mark
    return undone


def _json_object(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def standing(records: list[AuditRecord], held: HeldWriteOff | None) -> str:
    """One line: `written off 12.50 USD at … by rule …, undone by … at … (why), held (undone)`;
    or, for an invoice the reactor did not write off, its last decision. `records` in stream order."""
    write_off = last_write_off(records)
    after = records[records.index(write_off) + 1 :] if write_off else records
    undone = next((r for r in reversed(after) if r.outcome == Outcome.UNDONE), None)
    released = next((r for r in reversed(after) if r.outcome == Outcome.RELEASED), None)
    if released is not None and undone is not None and after.index(released) < after.index(undone):
        released = None  # a release before the undo (of a budget's hold) is not the undone write-off's
    parts = []
    if write_off is not None:
        parts.append(
            f"written off {write_off.amount_text() or '(amount not recorded)'} at {shown_time(write_off.at)} "
            f"by rule {write_off.rule or '?'}"
        )
    else:
        last = records[-1] if records else None
        parts.append(
            "not written off by the reactor"
            + (f"; last recorded: {last.outcome} at {shown_time(last.at)}" if last else "")
            + (f" by rule {last.rule}" if last and last.rule else "")
        )
    if undone is not None:
        who, why = _who_and_why(undone.reason)
        parts.append(f"undone by {who} at {shown_time(undone.at)}" + (f" ({why})" if why else ""))
    if held is not None:
        parts.append(f"held ({held.reason or 'no reason recorded'}) since {shown_time(held.held_at) or '?'}")
    elif released is not None:
        who, why = _who_and_why(released.reason)
        parts.append(f"released by {who} at {shown_time(released.at)}" + (f" ({why})" if why else ""))
    return ", ".join(parts)


def _who_and_why(reason: str | None) -> tuple[str, str]:
    """`by admin:oncall: goodwill` (how undo and release record a person) → (`admin:oncall`, `goodwill`)."""
    text = (reason or "").removeprefix("by ")
    who, _, why = text.partition(": ")
    return who or "?", why


@dataclass(frozen=True)
class ChargebeeStatus:
    """The invoice at Chargebee now (`known`), or why that could not be learnt (`known` False)."""

    known: bool
    text: str


def chargebee_status(settings: Settings, connection: redis.Redis, invoice_id: str) -> ChargebeeStatus:
    """`GET /invoices/{id}` under the shared rate limit, with a short wait and timeout: a page, not a job."""
    if not settings.api_base:
        return ChargebeeStatus(False, "unknown: no Chargebee is configured for the web process (CHARGEBEE_SITE)")
    limit = build_rate_limit(
        replace(settings, rate_limit_max_wait=min(settings.rate_limit_max_wait, LIVE_SLOT_WAIT)), connection
    )
    client = ChargebeeClient(
        settings.api_base,
        settings.chargebee_api_key,
        timeout=min(settings.http_timeout, LIVE_TIMEOUT),
        rate_limit=limit,
    )
    try:
        invoice = client.retrieve_invoice(invoice_id)
    except NotFoundError:
        return ChargebeeStatus(True, f"Chargebee has no invoice {invoice_id} (HTTP 404: deleted, or another site)")
    except Throttled:
        return ChargebeeStatus(False, "unknown: no Chargebee call was free in the shared rate limit; reload shortly")
    except AuthError as exc:
        return ChargebeeStatus(False, f"unknown: Chargebee refused the API key ({exc})")
    except RetryableError as exc:
        return ChargebeeStatus(False, f"unknown: Chargebee could not be reached ({exc})")
    except ChargebeeError as exc:
        return ChargebeeStatus(False, f"unknown: Chargebee answered {exc}")
    except redis.RedisError as exc:
        log.warning("invoice page: the shared rate limit could not be read: %s", exc)
        return ChargebeeStatus(False, "unknown: the shared Chargebee rate limit could not be read (Redis)")
    finally:
        client.session.close()
    return ChargebeeStatus(True, _invoice_line(invoice))


def _invoice_line(invoice: dict) -> str:
    """`not_paid, 12.50 USD due, 0.00 USD written off` as Chargebee shows the invoice."""
    currency = invoice.get("currency_code") if isinstance(invoice.get("currency_code"), str) else None

    def money(name: str) -> str | None:
        value = invoice.get(name)
        return amount_text(value, currency) if type(value) is int else None

    parts = [str(invoice.get("status") or "no status")]
    if invoice.get("deleted") is True:
        parts.append("deleted")
    for name, label in (("amount_due", "due"), ("write_off_amount", "written off"), ("amount_paid", "paid")):
        shown = money(name)
        if shown is not None:
            parts.append(f"{shown} {label}")
    if isinstance(invoice.get("dunning_status"), str):
        parts.append(f"dunning {invoice['dunning_status']}")
    return ", ".join(parts)
