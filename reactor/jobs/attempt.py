"""One write-off attempt: what its steps (reactor/jobs/write_off.py) read and what they learn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis
from rq.job import Job

from ..chargebee import RetryableError, WriteOffResult
from ..ingest.envelope import Event
from ..rules import Decision, RuleSet
from .audit import Outcome
from .context import JobContext
from .trail import record_outcome

if TYPE_CHECKING:
    from redis.lock import Lock
    from typing_extensions import Unpack

    from .approval_marks import GivenApprovals
    from .trail import Given


@dataclass
class WriteOffAttempt:
    """The attempt to write off `event`'s invoice: given by the job that runs it, then filled in by
    the steps (the invoice lock, the attempt mark an earlier run left, the event with the invoice
    fetched fresh, the decision on it)."""

    ctx: JobContext
    job: Job | None
    event: Event
    """As the job received it (stored, verified, held or pending)."""
    ruleset: RuleSet
    now: datetime
    check_budget: bool = True
    """False when a person released it: the budget that held it is not checked (still counted)."""
    approvals: GivenApprovals | None = None
    """The approvals people gave it (the last approval queued this attempt); None: none given."""
    released_by: str | None = None
    """Who released it (or approved it last), when a person handed it to this attempt."""
    for_facts: bool = False
    """The event alone decided no write-off, but lacks facts that could change that."""
    lock: Lock | None = None
    earlier: dict[str, Any] | None = None
    """The attempt mark of an earlier run that sent write_off and may not have heard the answer."""
    fresh: Event | None = None
    """The event with the invoice as Chargebee has it now (after credits and facts, once fetched)."""
    decision: Decision | None = None
    """The decision on `fresh`."""
    sent: WriteOffResult | None = None
    """Chargebee's answer to the write_off call, once sent."""

    @property
    def invoice_id(self) -> str:
        invoice_id = self.event.invoice_id
        if invoice_id is None:  # the webhook and the sweep store none without one (reactor/ingest/events.py)
            raise ValueError(f"event {self.event.id!r} carries no invoice id: nothing to write off")
        return invoice_id

    @property
    def latest(self) -> Event:
        """The freshest event this attempt has: `fresh` once fetched, else the event received."""
        return self.fresh or self.event

    def renew(self) -> None:
        """Reset the invoice lock's TTL before each Chargebee call, failing if it was lost: a job that
        overran its lock must not call Chargebee while another job holds the invoice."""
        assert self.lock is not None
        try:
            self.lock.extend(self.ctx.settings.invoice_lock_ttl, replace_ttl=True)
        except redis.exceptions.LockError:
            message = f"lost the lock on invoice {self.invoice_id}; another job may hold it now"
            raise RetryableError(message) from None

    def record(
        self, outcome: Outcome, event: Event | None, decision: Decision | None, **given: Unpack[Given]
    ) -> dict[str, Any]:
        """Record the attempt's outcome in the audit and the log; returns the job's result."""
        record_outcome(self.ctx, self.job, event, decision, outcome, **given)
        return outcome.result(**({"rule": decision.rule} if decision else {}))
