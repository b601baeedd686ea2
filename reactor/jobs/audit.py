"""The decision trail: one record for every decision and every outcome, kept in a Redis stream.

A stream gives an append-only log with time-ordered ids, cheap range reads for `reactor audit
--since`, and a length cap (`maxlen`, approximate) so Redis cannot fill up with history.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import redis

from ..rules.money import to_major

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
    "collecting": "Chargebee is still collecting (dunning in progress, a retry or a promised payment ahead)",
    "gone": "the invoice is deleted or voided in Chargebee, or Chargebee has no such invoice (404)",
    "facts_missing": "a rule on the way reads facts the reactor could not fetch; not written off",
    "timed_out": "the job ran past its timeout and was stopped before an outcome; it runs again or is a dead letter",
    "killed": "the process running the job died before an outcome; it runs again or is a dead letter",
    "event_missing": "the stored event had expired or was never stored",
    "stale": "an older event than one already processed for this invoice",
    "rejected": "REACTOR_VERIFY_EVENTS: Chargebee does not know this event id (forged); nothing acted on",
    "retrying": "a retryable Chargebee error; the job will run again",
    "failed": "Chargebee refused the request; the job is in the dead letters",
    "decided": "the rules chose write_off on the event; the fresh invoice is checked next",
    "replayed": "an operator ran the event again (dlq replay or events replay)",
    "purged": "an operator deleted a dead letter (dlq purge)",
    "recheck_scheduled": "a time-based rule can match later; a re-check is scheduled for that moment",
    "recheck_cancelled": "the invoice was settled (paid, voided, written off); its pending re-check is dropped",
    "held": "a write-off would pass a budget (limits.max_per_day / max_count_per_hour); held for a person",
    "released": "an operator released a held write-off (reactor held release); it is decided again",
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


def _stream_id(moment: datetime, exclusive: bool = False) -> str:
    """A stream id bound for a moment: stream ids start with the milliseconds since the epoch."""
    bound = f"{int(moment.timestamp() * 1000)}"
    return f"({bound}-0" if exclusive else bound


class AuditLog:
    """The stream, with an optional source of the current rules version: a record written without
    one (a failure, a lock, an operator's replay) is stamped with the rules that were in force."""

    def __init__(
        self,
        connection: redis.Redis,
        key: str = "reactor:audit",
        maxlen: int = 1_000_000,
        rules_version: Callable[[], str | None] | None = None,
    ):
        self.redis = connection
        self.key = key
        self.maxlen = maxlen
        self.rules_version = rules_version

    def stamp(self, record: AuditRecord) -> AuditRecord:
        """Name the rules in force on a record written without a decision."""
        if record.rules_version is None and self.rules_version is not None:
            try:
                record.rules_version = self.rules_version()
            except Exception:  # a broken rules file must not stop the record being written
                record.rules_version = None
        return record

    def append(self, record: AuditRecord) -> str:
        self.stamp(record)
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
        *,
        until: datetime | None = None,
        outcomes: Collection[str] | None = None,
        job_id: str | None = None,
        newest_first: bool = False,
    ) -> Iterator[AuditRecord]:
        """Records in time order (or newest first), filtered; reads the stream in batches so
        memory stays flat. `since`/`until` become stream-id bounds, so a window costs only its size."""
        low = _stream_id(since) if since else "-"
        high = _stream_id(until) if until else "+"
        wanted = set(outcomes) if outcomes else None
        yielded = 0
        while True:
            if newest_first:
                entries = self.redis.xrevrange(self.key, max=high, min=low, count=batch)
            else:
                entries = self.redis.xrange(self.key, min=low, max=high, count=batch)
            if not entries:
                return
            for raw_id, raw_fields in entries:
                fields = {k.decode(): v.decode() for k, v in raw_fields.items()}
                if invoice_id and fields.get("invoice_id") != invoice_id:
                    continue
                if event_id and fields.get("event_id") != event_id:
                    continue
                if job_id and fields.get("job_id") != job_id:
                    continue
                if wanted is not None and fields.get("outcome") not in wanted:
                    continue
                yield AuditRecord.from_fields(raw_id.decode(), fields)
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            if newest_first:
                high = "(" + entries[-1][0].decode()
            else:
                low = "(" + entries[-1][0].decode()

    def for_event(self, event_id: str) -> list[AuditRecord]:
        return list(self.query(event_id=event_id))

    def count(self) -> int:
        return int(self.redis.xlen(self.key))


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def visible(text: str, keep_newlines: bool = False) -> str:
    """`text` safe to print on a terminal: every character that is not printable (C0 and C1 control
    characters, DEL, bidi overrides, zero-width and other format characters, lone surrogates) shown
    as its escape, `\\x1b`, `\\u202e`, `\\n`, so an id or a reason cannot move the cursor, recolour
    or retitle the terminal, or hide part of a line. With keep_newlines, line breaks and tabs stay
    (a traceback)."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable() or (keep_newlines and char in "\n\t"):
            out.append(char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell safe to open in a spreadsheet and to `cat`: control characters escaped (visible),
    and a text starting with = + - @ (or a tab or CR) that is not a plain number prefixed with `'`,
    so Excel, LibreOffice and Google Sheets show it as text instead of running it as a formula
    (CSV injection). Numbers, including negative ones, are left as they are."""
    if not isinstance(value, str):
        return value
    text = visible(value)
    if value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + text
    return text


def export_lines(records: Iterable[AuditRecord], fmt: str) -> Iterator[str]:
    """Render records as csv or jsonl, a line at a time, so an export of a million records streams.

    Amounts stay in Chargebee's minor units (`amount_due`, with `currency`), as in the API.
    jsonl is the exact export: JSON escapes every control and non-ASCII character (ensure_ascii),
    so a line holds printable ASCII only and reads back to the stored values. csv is for people and
    spreadsheets: cells pass through spreadsheet_cell (control characters escaped, formulas
    neutralised), so a cell can differ from the stored value; use jsonl to process the trail."""
    if fmt == "jsonl":
        for record in records:
            yield json.dumps(record.as_dict(), sort_keys=True, ensure_ascii=True) + "\n"
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=("id", *FIELDS), extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({k: "" if v is None else spreadsheet_cell(v) for k, v in record.as_dict().items()})
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        yield out.getvalue()
        return
    raise ValueError(f"unknown format {fmt!r}: use table, csv or jsonl")


def export(records: Iterable[AuditRecord], fmt: str) -> str:
    """Render records as csv or jsonl (tables are drawn by the CLI)."""
    return "".join(export_lines(records, fmt))
