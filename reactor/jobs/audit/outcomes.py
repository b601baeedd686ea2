"""The outcomes: what came of a job's attempt or of an operator's action, one word each.

The words are stored (the audit stream, RQ's job results), exported (csv, jsonl), shown (the
dashboard, `reactor audit`) and filtered on (`--outcome`), so a member's value is the word itself and
never changes. `Outcome` is a `str`, and `str()`, `format()` and f-strings give that word on every
Python the reactor supports: from 3.11 on, a `(str, Enum)` member would otherwise format as
`Outcome.WRITTEN_OFF` in some of them.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class Outcome(str, Enum):
    """An outcome, with its `meaning` for people; `recorded` is False for the few that only a job's
    result carries (the audit trail never holds them)."""

    meaning: str
    recorded: bool

    def __new__(cls, value: str, meaning: str, recorded: bool = True) -> Outcome:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        member.recorded = recorded
        return member

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def read(cls, text: str) -> Outcome | str:
        """`text` as a member, or as it is when this release does not know it: the trail outlives
        releases, so a record written by an older or a newer one must still be read and shown."""
        try:
            return cls(text)
        except ValueError:
            return text

    def result(self, **fields: Any) -> dict[str, Any]:
        """A job's return value, `{"outcome": "written_off", ...}`. RQ pickles it into Redis, so the
        outcome goes in as the plain word: a reader without this release (rq's own tools, an older
        worker) can still load it."""
        return {"outcome": self.value, **fields}

    WRITTEN_OFF = "written_off", "write_off accepted by Chargebee"
    ALREADY_WRITTEN_OFF = "already_written_off", "an earlier job of ours had written this invoice off"
    SETTLED_ELSEWHERE = (
        "settled_elsewhere",
        "Chargebee answered invalid_state_for_request: paid, voided or written off meanwhile",
    )
    CHANGED = "changed", "the fresh invoice no longer matched the rule; nothing written off"
    DRY_RUN = "dry_run", "mode dry_run: would have written off, called nothing"
    SKIPPED = "skipped", "a skip rule or a guardrail decided; nothing written off"
    NO_MATCH = "no_match", "no rule matched"
    PAYMENT_IN_PROGRESS = "payment_in_progress", "a payment is in progress on the invoice; nothing written off"
    COLLECTING = (
        "collecting",
        "Chargebee is still collecting (dunning in progress, a retry or a promised payment ahead)",
    )
    GONE = "gone", "the invoice is deleted or voided in Chargebee, or Chargebee has no such invoice (404)"
    FACTS_MISSING = (
        "facts_missing",
        "a rule on the way reads facts the reactor could not fetch or could not evaluate; not written off",
    )
    TIMED_OUT = (
        "timed_out",
        "the job ran past its timeout and was stopped before an outcome; it runs again or is a dead letter",
    )
    KILLED = "killed", "the process running the job died before an outcome; it runs again or is a dead letter"
    EVENT_MISSING = "event_missing", "the stored event had expired or was never stored"
    STALE = "stale", "an older event than one already processed for this invoice"
    REJECTED = (
        "rejected",
        "REACTOR_VERIFY_EVENTS: Chargebee does not know this event id (forged); nothing acted on",
    )
    RETRYING = "retrying", "a retryable Chargebee error; the job will run again"
    FAILED = "failed", "Chargebee refused the request; the job is in the dead letters"
    DECIDED = "decided", "the rules chose write_off on the event; the fresh invoice is checked next"
    REPLAYED = "replayed", "an operator ran the event again (dlq replay or events replay)"
    PURGED = "purged", "an operator deleted a dead letter (dlq purge)"
    RECHECK_SCHEDULED = (
        "recheck_scheduled",
        "a time-based rule can match later; a re-check is scheduled for that moment",
    )
    RECHECK_CANCELLED = (
        "recheck_cancelled",
        "the invoice was settled (paid, voided, written off); its pending re-check is dropped",
    )
    HELD = (
        "held",
        "a write-off would pass a budget (limits.max_per_day / max_count_per_hour); held for a person",
    )
    RELEASED = (
        "released",
        "an operator released a held write-off (reactor held release); it is decided again",
    )
    CREDITS_APPLIED = (
        "credits_applied",
        "apply_credits_first: the customer's credits were applied (amount: the credits); when they covered"
        " the amount due nothing is written off, else the rest is decided again and recorded after this",
    )
    UNDONE = (
        "undone",
        "a person reversed our write-off in Chargebee (reactor undo: its credit note removed); the invoice"
        " is unpaid again and held until `reactor held release` (reason: who and why)",
    )
    AWAITS_APPROVAL = (
        "awaits_approval",
        "the write-off is above an approval tier (rules.yaml approvals:); it waits in the approvals queue",
    )
    APPROVED = "approved", "a person approved a write-off in the approvals queue (reason: who, and how many so far)"
    DECLINED = "declined", "a person declined a write-off in the approvals queue; nothing written off, held for people"
    APPROVAL_EXPIRED = (
        "approval_expired",
        "an approval older than REACTOR_APPROVAL_TTL no longer counts (reason: whose, given when)",
    )
    RECOVERY_CANDIDATE = (
        "recovery_candidate",
        "the customer of an invoice we wrote off paid afterwards (amount: the payment; detail: customer and"
        " transaction); `reactor recover` reverses the write-off and applies it",
    )
    RECOVERED = (
        "recovered",
        "reactor recover: our write-off reversed and the payment applied (amount: applied; detail: what is"
        " still due); an invoice left part-paid stays held",
    )
    RECOVERY_FAILED = (
        "recovery_failed",
        "reactor recover stopped: Chargebee refused the reversal (nothing applied) or the payment (the"
        " invoice stays reversed and held); reason says which",
    )
    USER_CHANGED = (
        "user_changed",
        "a person added or removed a named user or changed their password or role (reason: who, whom,"
        " what; never a password)",
    )
    # Only in a job's result:
    RECHECK_GONE = "recheck_gone", "the re-check found nothing pending: cancelled before it ran", False
    SUPERSEDED = "superseded", "a newer event moved the invoice's re-check; this run did nothing", False
    SWEPT = "swept", "the scheduled sweep ran; the result counts its pages, invoices and matches", False
    # Only on reading: a record that carries no outcome at all.
    UNKNOWN = "unknown", "the record carries no outcome", False


OUTCOMES: dict[str, str] = {outcome.value: outcome.meaning for outcome in Outcome if outcome.recorded}
"""Every outcome the audit trail records → its meaning (what `reactor audit --outcome` and the
dashboard's filter offer)."""
