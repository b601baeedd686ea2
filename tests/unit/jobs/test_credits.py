"""What apply_credits_first reads of a customer, and its idempotency key: pure parts of
reactor/jobs/credits.py (the calls are tested end to end in tests/integration/test_credits_first.py)."""

from __future__ import annotations

import pytest

from reactor.jobs.credits import credits_key, refundable_in
from reactor.jobs.send import idempotency_key


@pytest.mark.parametrize(
    ("customer", "expected"),
    [
        ({"refundable_credits": 500}, 500),
        ({"refundable_credits": 0}, 0),
        ({}, None),
        ({"refundable_credits": "500"}, None),
        ({"refundable_credits": True}, None),
        ({"balances": [{"currency_code": "EUR", "refundable_credits": 300}], "refundable_credits": 900}, 0),
        ({"balances": [{"currency_code": "USD", "refundable_credits": 300}], "refundable_credits": 900}, 300),
        ({"balances": [{"refundable_credits": 300}]}, None),
        ({"balances": [], "refundable_credits": 200}, 200),
    ],
)
def test_the_customers_refundable_credits_in_the_invoices_currency(customer, expected):
    assert refundable_in(customer, "USD") == expected


def test_the_credits_key_is_stable_short_and_not_the_write_offs():
    key = credits_key("acme", "inv_1", "rule-a")
    assert key == credits_key("acme", "inv_1", "rule-a") and len(key) <= 100
    assert key.startswith("reactor-ac-")
    assert key != credits_key("acme", "inv_1", "rule-b") != credits_key("acme-test", "inv_1", "rule-a")
    assert key != idempotency_key("acme", "inv_1", "rule-a")
    assert credits_key("acme", "inv_1", "rule-a", 500) != key  # a later application is a new request
