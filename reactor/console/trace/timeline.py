"""The timeline of one invoice, assembled from its sources without any I/O: the trace entries
(receipts, decisions, Chargebee calls), the audit records, the dead letters and the held write-off.
`build_timeline` orders them; `render_text` is what `reactor trace` prints.

One `Step` a thing that happened: a moment (UTC), a kind, a one-line title, indented details, and
the source's fields as they were recorded (`data`, for `--format json`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ...jobs.audit import AuditRecord, amount_text
from ...jobs.held import UNDONE_HOLD_REASON, HeldWriteOff
from ...timestamps import SHOWN_WIDTH, shown_time
from ..deadletters import DeadLetter

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Step:
    at: datetime | None
    kind: str  # receipt | decision | call | throttled | unordered | outcome | dead_letter | held
    title: str
    details: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(timespec="milliseconds") if self.at else None,
            "kind": self.kind,
            "title": self.title,
            "details": list(self.details),
            "data": self.data,
        }


def moment(value: Any) -> datetime | None:
    """An ISO time as a UTC datetime; None when absent or unreadable."""
    if isinstance(value, datetime):
        found = value
    else:
        try:
            found = datetime.fromisoformat(str(value or "").replace("Z", "+00:00"))
        except ValueError:
            return None
    return found.astimezone(timezone.utc) if found.tzinfo else found.replace(tzinfo=timezone.utc)


def build_timeline(
    entries: Iterable[dict[str, Any]],
    records: Iterable[AuditRecord],
    dead_letters: Iterable[DeadLetter] = (),
    held: HeldWriteOff | None = None,
) -> list[Step]:
    """Every step in time order; steps at the same moment keep the order of their sources (trace
    entries first: a call is made before the record of its result)."""
    steps = [trace_step(entry) for entry in entries]
    steps += [outcome_step(record) for record in records]
    steps += [dead_letter_step(letter) for letter in dead_letters]
    if held is not None:
        steps.append(held_step(held))
    order = {id(step): i for i, step in enumerate(steps)}
    return sorted(steps, key=lambda step: (_sort_moment(step), order[id(step)]))


def _sort_moment(step: Step) -> datetime:
    """When a step sorts. A held write-off's `held_at` is kept to the second (reactor/jobs/held.py):
    the hold came within that second, after the decision or undo that made it, so it sorts at the
    end of its second."""
    when = step.at or _EPOCH
    if step.kind == "held" and when.microsecond == 0:
        return when + timedelta(seconds=1) - timedelta(microseconds=1)
    return when


def trace_step(entry: dict[str, Any]) -> Step:
    kind = str(entry.get("kind") or "unknown")
    builder = {
        "receipt": receipt_step,
        "decision": decision_step,
        "call": call_step,
        "throttled": throttled_step,
        "unordered": unordered_step,
    }
    build = builder.get(kind)
    if build is None:
        return Step(moment(entry.get("at")), kind, f"{kind} (recorded by a newer release)", data=entry)
    return build(entry)


RECEIPT_ANSWERS = {
    "queued": "queued for evaluation",
    "duplicate": "duplicate: this event id was already taken, nothing done",
    "ignored": "ignored (200): nothing to decide",
    "rejected": "refused (400): nothing taken",
}


def receipt_step(entry: dict[str, Any]) -> Step:
    status = entry.get("status")
    kind = entry.get("event_type") or "(no event_type)"
    title = f"event {entry.get('event_id')} {kind} received: {RECEIPT_ANSWERS.get(status, status)}"
    version = entry.get("resource_version")
    details = [f"resource_version {version}"] if version is not None else []
    if entry.get("why"):
        details.append(f"why: {entry['why']}")
    return Step(moment(entry.get("at")), "receipt", title, tuple(details), entry)


def decision_step(entry: dict[str, Any]) -> Step:
    mode = " (dry run)" if entry.get("dry_run") else ""
    by = f"rule {entry['rule']}" if entry.get("rule") else "no rule"
    title = f"decision ({entry.get('stage')}): {entry.get('action')}{mode} by {by}, rules {entry.get('rules_version')}"
    details = [f"reason: {entry.get('reason')}"]
    for rule in entry.get("rules") or ():
        if rule.get("skipped_by_on"):
            details.append(f"rule {rule.get('rule')}: not for this event type (on:)")
            continue
        verdict = "decided" if rule.get("decided") else ("matched" if rule.get("matched") else "did not match")
        details.append(f"rule {rule.get('rule')} ({rule.get('action')}): {verdict}")
        for cond in rule.get("conditions") or ():
            actual = cond.get("actual") if cond.get("actual") is not None else "(missing)"
            held = cond.get("held")  # as `reactor rules explain` marks them; None: could not be evaluated
            mark = "✔ true" if held else ("? unknown" if held is None and "held" in cond else "✘ false")
            note = f" ({cond['note']})" if cond.get("note") else ""
            details.append(
                f"  {mark}: {cond.get('field')} {cond.get('operator')} {cond.get('expected')}, actual {actual}{note}"
            )
    blocked = entry.get("blocked_by")
    details.append(f"safety checks: blocked by {blocked}" if blocked else "safety checks: passed")
    return Step(moment(entry.get("at")), "decision", title, tuple(details), entry)


def call_step(entry: dict[str, Any]) -> Step:
    title = f"Chargebee {entry.get('method')} {entry.get('path')} → {entry.get('status')}"
    waited = entry.get("waited_s") or 0
    details = [f"waited {waited:.2f} s for the rate limit, answered in {entry.get('elapsed_ms')} ms"]
    if entry.get("idempotency_key"):
        replayed = "replayed by Chargebee" if entry.get("replayed") else "not replayed"
        details.append(f"idempotency key {entry['idempotency_key']} ({replayed})")
    if entry.get("retry_after"):
        details.append(f"Retry-After {entry['retry_after']} s")
    if entry.get("error_code"):
        details.append(f"error {entry['error_code']}")
    note = entry.get("credit_note")
    if isinstance(note, dict):
        details.append(f"credit note {note.get('id')}: {amount_text(note.get('amount'), note.get('currency'))}")
    return Step(moment(entry.get("at")), "call", title, tuple(details), entry)


def throttled_step(entry: dict[str, Any]) -> Step:
    title = f"no Chargebee call slot after {entry.get('waited_s') or 0:.2f} s: job deferred"
    return Step(moment(entry.get("at")), "throttled", title, (str(entry.get("reason") or ""),), entry)


def unordered_step(entry: dict[str, Any]) -> Step:
    title = f"event {entry.get('event_id')}: resource_version not used for ordering"
    return Step(moment(entry.get("at")), "unordered", title, (str(entry.get("reason") or ""),), entry)


def outcome_step(record: AuditRecord) -> Step:
    outcome = getattr(record.outcome, "value", record.outcome)
    parts = [f"outcome {outcome}"]
    if record.amount_due is not None:
        parts.append(record.amount_text())
    if record.rule:
        parts.append(f"rule {record.rule}")
    details = [f"{name}: {value}" for name, value in _record_details(record) if value]
    return Step(record.moment, "outcome", ", ".join(parts), tuple(details), record.as_dict())


def _record_details(record: AuditRecord) -> list[tuple[str, Any]]:
    return [
        ("credit note", record.credit_note),
        ("reason", record.reason),
        ("detail", record.detail),
        ("event", record.event_id),
        ("job", record.job_id),
        ("rules", record.rules_version),
    ]


def dead_letter_step(letter: DeadLetter) -> Step:
    title = f"dead letter {letter.job_id}: {letter.last_error}"
    details = (f"attempts {letter.attempts}, replays {letter.replays}, status {letter.status}",)
    return Step(letter.failed_at, "dead_letter", title, details, letter.as_dict())


def held_step(held: HeldWriteOff) -> Step:
    title = f"held now: {held.reason} ({held.amount_text()}, rule {held.rule})"
    details = (f"`reactor held release {held.invoice_id}` {release_text(held)}",)
    data = {"invoice_id": held.invoice_id, "event_id": held.event_id, "rule": held.rule, "reason": held.reason}
    return Step(moment(held.held_at), "held", title, details, data)


def release_text(held: HeldWriteOff) -> str:
    """What releasing this hold does (reactor/jobs/held.py): a worker decides again on the invoice
    fetched fresh; a budget's hold is then not checked against that budget."""
    if held.reason == UNDONE_HOLD_REASON:
        return "decides again on the fresh invoice and may write it off again (with a new idempotency key)"
    return "decides again on the fresh invoice and may write it off, without checking the budget that held it"


def time_text(at: datetime | None) -> str:
    """A step's time as every table shows one (reactor/timestamps.py), or `(no time)` as wide."""
    return shown_time(at).ljust(SHOWN_WIDTH) if at is not None else "(no time)".ljust(SHOWN_WIDTH)


DETAIL_INDENT = SHOWN_WIDTH + 2 + 11 + 2
"""Where a step's details start: under its title, past the time and the kind."""


def render_text(invoice_id: str, steps: list[Step], subject: str = "invoice") -> str:
    """One line a step (time in UTC, kind, title), its details indented below; `subject` names what
    `invoice_id` is (an `event` that names no invoice has its receipt only)."""
    lines = [f"{subject} {invoice_id}: {len(steps)} step{'s' if len(steps) != 1 else ''} (times in UTC)"]
    for step in steps:
        lines.append(f"{time_text(step.at)}  {step.kind:<11}  {step.title}")
        lines.extend(f"{'':{DETAIL_INDENT}}{detail}" for detail in step.details)
    return "\n".join(lines)
