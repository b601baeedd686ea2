"""One record of the decision trail (`AuditRecord`) and the fields the stream holds for it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ...rules.money import to_major
from .outcomes import Outcome

FIELDS = (
    "at",
    "event_id",
    "event_type",
    "invoice_id",
    "rule",
    "action",
    "outcome",
    "amount_due",
    "currency",
    "mode",
    "rules_version",
    "reason",
    "job_id",
    "detail",
    "credit_note",
    "job_seconds",
)


@dataclass
class AuditRecord:
    """`outcome` is an Outcome when written; read back, it is one too, or the stored word as it is
    when this release does not know it (Outcome.read)."""

    event_id: str | None
    invoice_id: str | None
    outcome: Outcome | str
    action: str | None = None
    rule: str | None = None
    amount_due: int | None = None
    currency: str | None = None
    mode: str | None = None
    rules_version: str | None = None
    reason: str | None = None
    event_type: str | None = None
    job_id: str | None = None
    detail: str | None = None
    credit_note: str | None = None  # a write-off's, from Chargebee's answer; records before it have none
    job_seconds: float | None = None  # from the job's (latest) start to this record; none outside a job
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
    id: str | None = None

    def to_fields(self) -> dict[str, str]:
        data = asdict(self)
        data.pop("id")
        return {k: "" if v is None else str(v) for k, v in data.items()}

    @classmethod
    def from_fields(cls, entry_id: str, fields: dict[str, str]) -> AuditRecord:
        values: dict[str, Any] = {k: (v if v != "" else None) for k, v in fields.items() if k in FIELDS}
        if values.get("amount_due") is not None:
            values["amount_due"] = int(values["amount_due"])
        if values.get("job_seconds") is not None:
            values["job_seconds"] = _number(values["job_seconds"])
        if values.get("outcome") is not None:
            values["outcome"] = Outcome.read(values["outcome"])
        values.setdefault("outcome", Outcome.UNKNOWN)
        values.setdefault("event_id", None)
        values.setdefault("invoice_id", None)
        return cls(id=entry_id, **values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def moment(self) -> datetime | None:
        """`at` as a datetime (None when a record carries something unreadable)."""
        try:
            value = datetime.fromisoformat((self.at or "").replace("Z", "+00:00"))
        except ValueError:
            return None
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    def amount_text(self) -> str:
        """The amount as people read it, `12.50 USD`; Chargebee's minor units stay in the exports."""
        return amount_text(self.amount_due, self.currency)


def amount_text(amount_due: int | None, currency: str | None) -> str:
    """Minor units as people read them: `12.50 USD` (JPY and other zero-decimal currencies as they are)."""
    if amount_due is None:
        return ""
    if not currency:
        return str(amount_due)
    return f"{to_major(amount_due, currency)} {currency}"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
