"""RunFacts: a run's customers and subscriptions, each fetched at most once; a 404 kept as unknown,
a failed call never kept."""

from __future__ import annotations

from typing import Any

import pytest

from reactor.chargebee import ChargebeeError, NotFoundError
from reactor.jobs.facts import RunFacts


class Chargebee:
    """Answers from a dict; an id listed in `failing` fails (500) that many times first."""

    def __init__(self, customers: dict[str, dict[str, Any]], failing: dict[str, int] | None = None) -> None:
        self.customers, self.failing, self.asked = customers, dict(failing or {}), []

    def retrieve_customer(self, customer_id: str) -> dict[str, Any]:
        self.asked.append(customer_id)
        if self.failing.get(customer_id, 0) > 0:
            self.failing[customer_id] -= 1
            raise ChargebeeError("internal error", status=500)
        if customer_id not in self.customers:
            raise NotFoundError(f"customer {customer_id} not found", status=404)
        return self.customers[customer_id]

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        raise AssertionError("not asked for in these tests")


def test_a_customer_is_fetched_once_for_every_invoice_naming_it():
    chargebee = Chargebee({"cus_1": {"id": "cus_1", "cf_segment": "smb"}})
    facts = RunFacts(chargebee)
    found = [facts.retrieve_customer("cus_1") for _ in range(5)]
    assert all(f["cf_segment"] == "smb" for f in found)
    assert chargebee.asked == ["cus_1"]


def test_a_customer_chargebee_does_not_have_stays_not_found_for_the_run():
    chargebee = Chargebee({})
    facts = RunFacts(chargebee)
    for _ in range(3):
        with pytest.raises(NotFoundError):
            facts.retrieve_customer("cus_gone")
    assert chargebee.asked == ["cus_gone"]


def test_a_failed_fetch_is_not_kept_the_next_ask_calls_again():
    chargebee = Chargebee({"cus_1": {"id": "cus_1"}}, failing={"cus_1": 2})
    facts = RunFacts(chargebee)
    for _ in range(2):
        with pytest.raises(ChargebeeError) as failed:
            facts.retrieve_customer("cus_1")
        assert not isinstance(failed.value, NotFoundError)
    assert "cus_1" not in facts.customers
    assert facts.retrieve_customer("cus_1") == {"id": "cus_1"}
    assert chargebee.asked == ["cus_1", "cus_1", "cus_1"]


def test_two_runs_share_nothing():
    chargebee = Chargebee({"cus_1": {"id": "cus_1"}})
    RunFacts(chargebee).retrieve_customer("cus_1")
    RunFacts(chargebee).retrieve_customer("cus_1")
    assert chargebee.asked == ["cus_1", "cus_1"]
