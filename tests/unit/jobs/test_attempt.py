"""A write-off attempt's own parts that need no Redis: which invoice it is for, the budget without
limits, and the refusals the steps return as values (reactor/jobs/attempt.py, refusals.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, cast

import pytest

from reactor.ingest.envelope import Event
from reactor.jobs.attempt import WriteOffAttempt
from reactor.jobs.budget import Budgets, Reservation
from reactor.jobs.context import JobContext
from reactor.jobs.refusals import BudgetRefused, CreditsUnreadable, Refused
from reactor.rules import parse_rules

NOW = datetime(2026, 1, 15, 10, tzinfo=timezone.utc)
RULES = parse_rules("version: 1\nmode: live\nrules: []\n")


def attempt(event: dict[str, Any]) -> WriteOffAttempt:
    return WriteOffAttempt(cast(JobContext, None), None, Event.from_data(event), RULES, NOW)


def test_an_attempt_is_for_its_events_invoice_and_its_latest_event_is_the_freshest():
    a = attempt({"id": "ev_1", "event_type": "payment_failed", "content": {"invoice": {"id": "inv_1"}}})

    assert a.invoice_id == "inv_1" and a.latest is a.event and a.check_budget and not a.for_facts
    a.fresh = a.event.with_invoice({"id": "inv_1", "status": "paid"})
    assert a.latest is a.fresh and a.event.invoice == {"id": "inv_1"}


def test_an_event_without_an_invoice_is_nothing_to_write_off():
    with pytest.raises(ValueError, match="carries no invoice id"):
        _ = attempt({"id": "ev_2", "event_type": "payment_failed", "content": {}}).invoice_id


def test_without_budget_limits_nothing_is_counted_or_refused():
    reservation = Budgets(cast(Any, None), RULES.limits).reserve("USD", 1250, NOW)

    assert isinstance(reservation, Reservation) and not isinstance(reservation, Refused)
    reservation.give_back()  # nothing was taken: nothing to give back, and no Redis to ask


def test_refusals_are_one_tree_carrying_their_reason():
    for refusal in (BudgetRefused("limits.max_count_per_hour (3) reached this hour"), CreditsUnreadable("no customer")):
        assert isinstance(refusal, Refused) and refusal.reason
