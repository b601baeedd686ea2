"""The decision trail: one record for every decision and every outcome, kept in a Redis stream.

A stream gives an append-only log with time-ordered ids, cheap range reads for `reactor audit
--since`, and a length cap (`maxlen`, approximate) so Redis cannot fill up with history.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import redis

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
)

OUTCOMES = {
    "written_off": "write_off accepted by Chargebee",
    "already_written_off": "an earlier job of ours had written this invoice off",
    "settled_elsewhere": "Chargebee answered invalid_state_for_request: paid, voided or written off meanwhile",
    "changed": "the fresh invoice no longer matched the rule; nothing written off",
    "dry_run": "mode dry_run: would have written off, called nothing",
    "skipped": "a skip rule or a guardrail decided; nothing written off",
    "no_match": "no rule matched",
    "payment_in_progress": "a payment is in progress on the invoice; nothing written off",
    "event_missing": "the stored event had expired or was never stored",
    "stale": "an older event than one already processed for this invoice",
    "retrying": "a retryable Chargebee error; the job will run again",
    "failed": "Chargebee refused the request; the job is in the dead letters",
    "decided": "the rules chose write_off on the event; the fresh invoice is checked next",
}


@dataclass
class AuditRecord:
    event_id: str | None
    invoice_id: str | None
    outcome: str
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
        values.setdefault("outcome", "unknown")
        values.setdefault("event_id", None)
        values.setdefault("invoice_id", None)
        return cls(id=entry_id, **values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    def __init__(self, connection: redis.Redis, key: str = "reactor:audit", maxlen: int = 1_000_000):
        self.redis = connection
        self.key = key
        self.maxlen = maxlen

    def append(self, record: AuditRecord) -> str:
        entry_id = self.redis.xadd(self.key, record.to_fields(), maxlen=self.maxlen, approximate=True)
        record.id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        return record.id

    def query(
        self,
        since: datetime | None = None,
        invoice_id: str | None = None,
        event_id: str | None = None,
        limit: int | None = None,
        batch: int = 1000,
    ) -> Iterator[AuditRecord]:
        """Records in time order, filtered; reads the stream in batches so memory stays flat."""
        start = f"{int(since.timestamp() * 1000)}-0" if since else "-"
        yielded = 0
        while True:
            entries = self.redis.xrange(self.key, min=start, max="+", count=batch)
            if not entries:
                return
            for raw_id, raw_fields in entries:
                entry_id = raw_id.decode()
                fields = {k.decode(): v.decode() for k, v in raw_fields.items()}
                if invoice_id and fields.get("invoice_id") != invoice_id:
                    continue
                if event_id and fields.get("event_id") != event_id:
                    continue
                yield AuditRecord.from_fields(entry_id, fields)
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            start = "(" + entries[-1][0].decode()

    def for_event(self, event_id: str) -> list[AuditRecord]:
        return list(self.query(event_id=event_id))

    def count(self) -> int:
        return int(self.redis.xlen(self.key))


def export(records: Iterable[AuditRecord], fmt: str) -> str:
    """Render records as csv or jsonl (tables are drawn by the CLI)."""
    if fmt == "jsonl":
        return "".join(json.dumps(r.as_dict(), sort_keys=True) + "\n" for r in records)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=("id", *FIELDS), extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({k: "" if v is None else v for k, v in record.as_dict().items()})
        return out.getvalue()
    raise ValueError(f"unknown format {fmt!r}: use table, csv or jsonl")
