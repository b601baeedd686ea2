"""The reactor's Chargebee client against the strict sandbox over real HTTP, with the shared rate
limit on a real Redis: the sweep's listing, deleted invoices in every plausible shape (Chargebee's
real answer is UNCONFIRMED), customers and subscriptions, and error bodies as Chargebee sends them."""

from __future__ import annotations

import json

import pytest
import requests

from reactor.chargebee import (
    AuthError,
    ChargebeeClient,
    InvalidStateError,
    NotFoundError,
    RateLimitedError,
    RequestError,
)
from reactor.chargebee.ratelimit import ChargebeeRateLimit, Waiting
from reactor.jobs.sweep import LIST_PARAMS, pages
from reactor.rules.safety import gone_reason
from reactor.sandbox import DEMO_API_KEY
from reactor.sandbox.listing import FIELDS, PLAIN_PARAMS


@pytest.fixture
def budget(redis_conn) -> ChargebeeRateLimit:
    return ChargebeeRateLimit(redis_conn, 1000, 60, scope="strict-test", waiting=Waiting(max_wait=5.0))


@pytest.fixture
def client(sandbox, budget) -> ChargebeeClient:
    return ChargebeeClient(sandbox.api_base, DEMO_API_KEY, timeout=5.0, rate_limit=budget)


def settings(sandbox, **values: int) -> dict:
    resp = requests.post(f"{sandbox.url}/_sandbox/settings", json=values, timeout=5)
    resp.raise_for_status()
    return resp.json()


def test_the_sweep_lists_every_unpaid_invoice_with_supported_filters_only(sandbox, client):
    sandbox.state.add_invoices(
        [{"id": f"inv_{n:03d}", "status": "not_paid", "date": 1_700_000_000 + n} for n in range(230)]
        + [{"id": "paid", "status": "paid"}, {"id": "gone", "status": "not_paid"}]
    )
    sandbox.state.delete_invoice("gone", webhooks=False)
    listed = [inv["id"] for invoices, _ in pages(client) for inv in invoices]
    assert listed == [f"inv_{n:03d}" for n in range(230)]
    calls = sandbox.state.calls(path_contains="/invoices", method="GET")
    assert [c["status"] for c in calls] == [200, 200, 200]
    supported = set(PLAIN_PARAMS) | {"sort_by[asc]", "sort_by[desc]"}
    supported |= {f"{name}[{op}]" for name, ops in FIELDS.items() for op in ops}
    for call in calls:
        assert set(call["query"]) <= supported, call["query"]
    offsets = [c["query"].get("offset") for c in calls[1:]]
    assert all(isinstance(json.loads(o), list) for o in offsets)  # Chargebee's shape, sent back verbatim
    assert set(LIST_PARAMS) <= set(calls[0]["query"])


def test_a_due_date_filter_is_refused_as_chargebee_would(client):
    with pytest.raises(RequestError) as err:
        client.list_invoices({**LIST_PARAMS, "due_date[before]": 1_700_000_000})
    assert (err.value.status, err.value.param) == (400, "due_date[before]")


def test_deleted_invoice_default_shapes_are_404(sandbox, client):
    """Default: retrieve and write_off of a deleted invoice answer 404 (UNCONFIRMED at Chargebee)."""
    sandbox.state.add_invoice(id="inv_1", status="not_paid")
    requests.post(f"{sandbox.url}/_sandbox/invoices/inv_1/delete", timeout=5).raise_for_status()
    with pytest.raises(NotFoundError):
        client.retrieve_invoice("inv_1")
    with pytest.raises(NotFoundError):
        client.write_off("inv_1", "bad debt", "key-deleted-1")
    assert sandbox.state.get_invoice("inv_1")["write_off_amount"] == 0


@pytest.mark.parametrize("write_status", [400, 409])
def test_deleted_invoice_alternative_shapes(sandbox, client, write_status):
    """Alternative shapes (UNCONFIRMED): retrieve 200 with deleted: true, write_off 400/409
    invalid_state_for_request. The caller can tell "gone" in both."""
    settings(sandbox, deleted_invoice_retrieve_status=200, deleted_invoice_write_off_status=write_status)
    sandbox.state.add_invoice(id="inv_1", status="not_paid")
    sandbox.state.delete_invoice("inv_1")
    invoice = client.retrieve_invoice("inv_1")
    assert gone_reason(invoice) is not None
    with pytest.raises(InvalidStateError) as err:
        client.write_off("inv_1", None, "key-deleted-2")
    assert err.value.status == write_status


def test_customer_and_subscription_are_fetched_through_the_shared_budget(sandbox, client, budget, redis_conn):
    sandbox.state.add_customer(id="cus_1", cf_segment="enterprise")
    sandbox.state.add_subscription(id="sub_1", customer_id="cus_1", cf_contract="annual")
    assert client.retrieve_customer("cus_1")["cf_segment"] == "enterprise"
    assert client.retrieve_subscription("sub_1")["cf_contract"] == "annual"
    sandbox.state.add_fault("customer", 429, retry_after=2, times=1)
    with pytest.raises(RateLimitedError):
        client.retrieve_customer("cus_1")
    assert 0 < budget.paused_for() <= 2  # a site-wide 429 pauses every worker
    budget.reset()
    sandbox.state.add_fault("subscription", 429, retry_after=2, times=1, api_error_code="lock_timeout")
    with pytest.raises(RateLimitedError):
        client.retrieve_subscription("sub_1")
    assert budget.paused_for() == 0  # lock_timeout: that call is retried, nobody else waits


def test_wrong_key_is_an_auth_error_from_a_body_without_type(sandbox, budget):
    client = ChargebeeClient(sandbox.api_base, "wrong", timeout=5.0, rate_limit=budget)
    with pytest.raises(AuthError) as err:
        client.retrieve_customer("cus_1")
    assert err.value.error_type is None and err.value.api_error_code == "api_authentication_failed"


def test_write_off_effects_as_chargebee_documents(sandbox, client):
    sandbox.state.add_invoice(id="inv_1", status="not_paid", dunning_status="exhausted", amount_due=1250)
    result = client.write_off("inv_1", "bad debt", "key-effects")
    invoice, credit_note = result.invoice, result.credit_note
    assert (invoice["status"], invoice["amount_due"]) == ("paid", 0)
    assert invoice["write_off_amount"] == invoice["amount_adjusted"] == 1250
    assert credit_note is not None
    assert (credit_note["type"], credit_note["create_reason_code"], credit_note["total"]) == (
        "adjustment",
        "Write Off",
        1250,
    )
    assert [cn["cn_id"] for cn in invoice["adjustment_credit_notes"]] == [credit_note["id"]]
    assert client.retrieve_invoice("inv_1") == invoice


def test_apply_payments_through_the_client_and_chargebees_refusals_as_its_errors(sandbox, client):
    sandbox.state.add_customer(id="cus_1", preferred_currency_code="USD")
    sandbox.state.add_invoice(id="inv_1", customer_id="cus_1", status="not_paid", amount_due=1250)
    _customer, txn, _ = sandbox.state.record_excess_payment("cus_1", 1000, "USD", event_type=None, webhooks=False)

    with pytest.raises(NotFoundError):
        client.apply_payments("inv_1", (("txn_unknown", None),), None, "key-unknown")
    part = client.apply_payments("inv_1", ((txn["id"], 400),), "back", "key-part")
    rest = client.apply_payments("inv_1", (), None, "key-rest")  # the customer's excess payments

    assert (part["status"], part["amount_due"]) == ("not_paid", 850)
    assert (rest["status"], rest["amount_due"], rest["amount_paid"]) == ("not_paid", 250, 1000)
    [call] = [c for c in sandbox.state.calls(path_contains="/apply_payments") if c["form"].get("comment")]
    assert call["form"] == {"transactions[id][0]": txn["id"], "transactions[amount][0]": "400", "comment": "back"}
    sandbox.state.write_off("inv_1", webhooks=False)
    with pytest.raises(InvalidStateError):
        client.apply_payments("inv_1", (), None, "key-paid")
