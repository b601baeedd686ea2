"""`reactor events replay` by the fields ops think in: invoice, customer, rule, outcome, event type,
currency and a time window, over the audit trail and the stored events.

The audit trail is the index: every event a worker decided on has records there, in time order, so
a window costs only its size (reactor/jobs/audit/stream.py). The records give the rule and the
outcome; the stored event gives the customer. `matches` is the pure choice; `gather` reads Redis for
a selection, `named` for events named by id; `decide_now` is what a dry run shows: the rules in
force on the stored event, with no Chargebee call (the replayed job fetches the invoice fresh and
may decide otherwise).

Replaying only enqueues `reactor.jobs.evaluate` (`DeadLetters.replay_event`), so every safeguard of
a write-off holds: the fresh invoice, the written-off mark, the idempotency key.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ..ingest.envelope import Event
from ..ingest.events import EventStore
from ..jobs.audit import AuditFilter, AuditLog, AuditRecord
from ..rules import Decision, RuleSet, decide


@dataclass(frozen=True)
class ReplaySelection:
    """What to replay; a field left None does not narrow. `outcomes` and `rule` match an event
    with any record of that outcome or rule in the window."""

    invoice: str | None = None
    customer: str | None = None
    rule: str | None = None
    outcomes: frozenset[str] | None = None
    event_type: str | None = None
    currency: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def chooses_anything(self) -> bool:
        """Whether any field narrows: an empty selection would be every event ever decided."""
        return any(value is not None for value in vars(self).values())


_NO_EVENT = Event.from_data({})


@dataclass
class ReplayCandidate:
    """One event the trail names in the window: its records, oldest first, and its stored copy
    (None when it has expired, REACTOR_EVENT_TTL)."""

    event_id: str
    records: list[AuditRecord] = field(default_factory=list)
    event: Event | None = None

    def _recorded(self, name: str) -> str | None:
        """The first of the records' `name` that is set: what the trail says when the event does not."""
        return next((value for r in self.records if (value := getattr(r, name))), None)

    @property
    def invoice_id(self) -> str | None:
        return (self.event or _NO_EVENT).invoice_id or self._recorded("invoice_id")

    @property
    def customer_id(self) -> str | None:
        seen = self.event or _NO_EVENT
        found = (seen.invoice or {}).get("customer_id")
        if not found:
            customer = seen.content.get("customer")
            found = customer.get("id") if isinstance(customer, dict) else None
        return found if isinstance(found, str) else None

    @property
    def event_type(self) -> str | None:
        return (self.event or _NO_EVENT).event_type or self._recorded("event_type")

    @property
    def currency(self) -> str | None:
        found = ((self.event or _NO_EVENT).invoice or {}).get("currency_code")
        return found if isinstance(found, str) else self._recorded("currency")

    @property
    def latest(self) -> AuditRecord | None:
        return self.records[-1] if self.records else None


def matches(selection: ReplaySelection, candidate: ReplayCandidate) -> bool:
    """Whether the candidate is one the selection asks for (the window is applied by `gather`)."""
    if selection.invoice is not None and candidate.invoice_id != selection.invoice:
        return False
    if selection.customer is not None and candidate.customer_id != selection.customer:
        return False
    if selection.event_type is not None and candidate.event_type != selection.event_type:
        return False
    if selection.currency is not None and (candidate.currency or "").upper() != selection.currency.upper():
        return False
    if selection.rule is not None and all(r.rule != selection.rule for r in candidate.records):
        return False
    return selection.outcomes is None or any(str(r.outcome) in selection.outcomes for r in candidate.records)


def select(selection: ReplaySelection, candidates: Iterable[ReplayCandidate]) -> list[ReplayCandidate]:
    return [candidate for candidate in candidates if matches(selection, candidate)]


def gather(
    audit: AuditLog,
    events: EventStore,
    selection: ReplaySelection,
    progress: Callable[[int], None] = lambda _n: None,
) -> list[ReplayCandidate]:
    """The events the trail names in the window (by first record), each with its records and its
    stored copy, narrowed by the selection. `progress` is called with the records read so far."""
    by_event: dict[str, ReplayCandidate] = {}
    for count, record in enumerate(
        audit.query(AuditFilter(since=selection.since, until=selection.until, invoice_id=selection.invoice)), start=1
    ):
        if record.event_id:
            by_event.setdefault(record.event_id, ReplayCandidate(record.event_id)).records.append(record)
        if count % 500 == 0:
            progress(count)
    narrowed = [c for c in by_event.values() if _may_match(selection, c.records)]
    for candidate in narrowed:
        candidate.event = events.load(candidate.event_id)
    return select(selection, narrowed)


def named(
    audit: AuditLog,
    events: EventStore,
    event_ids: Iterable[str],
    progress: Callable[[int], None] = lambda _n: None,
) -> list[ReplayCandidate]:
    """The events named by id, in the order named (each once), each with its records and its stored
    copy (None when expired or never received), for a dry run. The trail is read once for all of
    them, as `reactor audit --event` reads it; `progress` is called with the records read so far."""
    by_event = {event_id: ReplayCandidate(event_id) for event_id in event_ids}
    for count, record in enumerate(audit.query(), start=1):
        if record.event_id in by_event:
            by_event[record.event_id].records.append(record)
        if count % 500 == 0:
            progress(count)
    for candidate in by_event.values():
        candidate.event = events.load(candidate.event_id)
    return list(by_event.values())


def _may_match(selection: ReplaySelection, records: Collection[AuditRecord]) -> bool:
    """The choice on the records alone, before the stored event is read (one GET each)."""
    if selection.rule is not None and all(r.rule != selection.rule for r in records):
        return False
    return selection.outcomes is None or any(str(r.outcome) in selection.outcomes for r in records)


def decide_now(ruleset: RuleSet, candidate: ReplayCandidate, now: datetime) -> Decision | None:
    """What the rules in force say about the stored event now, with no Chargebee call; None when the
    stored event has expired (a replay would be refused)."""
    if candidate.event is None:
        return None
    return decide(ruleset, candidate.event.data, now)
