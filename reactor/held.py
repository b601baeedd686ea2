"""Write-offs held back for a person: the place a spending guard (such as a daily budget) parks a
write-off it will not carry out on its own, and where the dashboard and /metrics look for them.

Nothing in the reactor holds write-offs yet; this module fixes the contract so that the producer
and the readers agree.

Redis key `{prefix}:held` (`reactor:held` by default): a hash.
  field  the invoice id (one entry per invoice: holding it again replaces the entry)
  value  a JSON object:
         {"invoice_id": "inv_1", "event_id": "ev_1", "rule": "dunning-exhausted-small-balance",
          "amount_due": 1250,            # minor units, as Chargebee sends them
          "currency": "USD", "held_at": "2026-01-15T10:00:00+00:00",   # ISO 8601, UTC
          "reason": "daily budget for USD spent"}
Readers tolerate missing fields and skip values that are not JSON objects. Releasing or dropping a
held write-off is `HDEL reactor:held <invoice id>` (done by the feature that holds them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import redis

from .rules.money import to_major


def held_key(prefix: str = "reactor") -> str:
    return f"{prefix}:held"


@dataclass(frozen=True)
class HeldWriteOff:
    invoice_id: str
    event_id: str | None = None
    rule: str | None = None
    amount_due: int | None = None
    currency: str | None = None
    held_at: str | None = None
    reason: str | None = None

    def amount_text(self) -> str:
        """`12.50 USD` as people read it."""
        if self.amount_due is None:
            return ""
        if not self.currency:
            return str(self.amount_due)
        return f"{to_major(self.amount_due, self.currency)} {self.currency}"


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

    amount = data.get("amount_due")
    return HeldWriteOff(
        invoice_id=invoice_id,
        event_id=text("event_id"),
        rule=text("rule"),
        amount_due=amount if type(amount) is int else None,
        currency=text("currency"),
        held_at=text("held_at"),
        reason=text("reason"),
    )


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
    data = asdict(item)
    data["held_at"] = data["held_at"] or datetime.now(timezone.utc).isoformat(timespec="seconds")
    connection.hset(held_key(prefix), item.invoice_id, json.dumps(data))
