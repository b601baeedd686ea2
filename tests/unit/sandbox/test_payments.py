"""The sandbox's excess payments and apply_payments as Chargebee documents them: a payment with no
invoice raises the customer's excess_payments; apply_payments takes the named payments (or the
customer's, oldest first) up to the amount due, only on payment_due, posted or not_paid invoices;
Chargebee-shaped refusals change nothing. Over HTTP too: the parameters chargebee-python sends."""

from __future__ import annotations

import pytest
import requests

from reactor.sandbox import DEMO_API_KEY, SandboxState
from reactor.sandbox.errors import ApiError


@pytest.fixture
def state() -> SandboxState:
    site = SandboxState()
    site.add_customer(id="cus_1", preferred_currency_code="GBP")
    site.add_customer(id="cus_2", preferred_currency_code="GBP")
    return site


def unpaid(state: SandboxState, amount: int = 1200, **fields: object) -> dict:
    values = {"status": "not_paid", "total": amount, "amount_due": amount, "customer_id": "cus_1"}
    values.update(currency_code="GBP", **fields)
    return state.add_invoice(**values)


def pay(state: SandboxState, amount: int, customer: str = "cus_1") -> dict:
    return state.record_excess_payment(customer, amount, "GBP", event_type=None, webhooks=False)[1]


def test_a_payment_with_no_invoice_is_the_customers_excess_payment(state):
    customer, txn, events = state.record_excess_payment("cus_1", 1200, "GBP", webhooks=False)

    assert customer["excess_payments"] == 1200 == txn["amount_unused"] == txn["amount"]
    assert (txn["type"], txn["status"], txn["linked_invoices"]) == ("payment", "success", [])
    assert events == [] and state.events("payment_succeeded")[0]["content"]["transaction"]["id"] == txn["id"]


def test_named_payments_apply_up_to_what_they_have_and_the_rest_stays_due(state):
    txn = pay(state, 500)
    invoice = unpaid(state)

    after, _ = state.apply_payments(invoice["id"], [(txn["id"], None)], webhooks=False)

    assert (after["status"], after["amount_due"], after["amount_paid"]) == ("not_paid", 700, 500)
    assert [(p["txn_id"], p["applied_amount"]) for p in after["linked_payments"]] == [(txn["id"], 500)]
    assert state.get_customer("cus_1")["excess_payments"] == 0


def test_without_names_the_customers_payments_pay_it_whole_oldest_first_and_keep_the_rest(state):
    first, second = pay(state, 1000), pay(state, 1000)
    invoice = unpaid(state)

    after, _ = state.apply_payments(invoice["id"], [], webhooks=False)

    assert (after["status"], after["amount_due"]) == ("paid", 0)
    assert [(p["txn_id"], p["applied_amount"]) for p in after["linked_payments"]] == [
        (first["id"], 1000),
        (second["id"], 200),
    ]
    assert state.get_customer("cus_1")["excess_payments"] == 800


def test_an_amount_caps_what_one_payment_gives(state):
    txn = pay(state, 1200)
    invoice = unpaid(state)

    after, _ = state.apply_payments(invoice["id"], [(txn["id"], 300)], webhooks=False)

    assert after["amount_due"] == 900 and state.get_customer("cus_1")["excess_payments"] == 900


@pytest.mark.parametrize("status", [400, 409])
def test_a_paid_invoice_is_refused_with_the_sites_invalid_state_status(state, status):
    state.configure(invalid_state_status=status)
    txn = pay(state, 1200)
    invoice = unpaid(state)
    state.write_off(invoice["id"], webhooks=False)

    with pytest.raises(ApiError) as refused:
        state.apply_payments(invoice["id"], [(txn["id"], None)], webhooks=False)

    assert (refused.value.status, refused.value.api_error_code) == (status, "invalid_state_for_request")
    assert state.get_customer("cus_1")["excess_payments"] == 1200


def test_refusals_change_nothing(state):
    other = pay(state, 1200, "cus_2")
    invoice = unpaid(state)

    with pytest.raises(ApiError) as unknown:
        state.apply_payments(invoice["id"], [("txn_nope", None)], webhooks=False)
    with pytest.raises(ApiError) as not_theirs:
        state.apply_payments(invoice["id"], [(other["id"], None)], webhooks=False)
    with pytest.raises(ApiError) as nothing:
        state.apply_payments(invoice["id"], [], webhooks=False)

    assert (unknown.value.status, not_theirs.value.status, nothing.value.status) == (404, 400, 400)
    assert state.get_invoice(invoice["id"])["amount_due"] == 1200


def test_over_http_the_parameters_chargebee_python_sends(sb):
    sb.state.add_customer(id="cus_1", preferred_currency_code="GBP")
    invoice = unpaid(sb.state)
    auth = (DEMO_API_KEY, "")
    recorded = requests.post(
        f"{sb.api_base}/customers/cus_1/record_excess_payment",
        data={"transaction[amount]": "1200", "transaction[date]": "1700000000", "transaction[payment_method]": "cash"},
        auth=auth,
        timeout=5,
    )
    assert recorded.status_code == 200, recorded.text
    txn_id = recorded.json()["transaction"]["id"]

    wrong = requests.post(
        f"{sb.api_base}/invoices/{invoice['id']}/apply_payments",
        data={"transactions[ids][0]": txn_id},
        auth=auth,
        timeout=5,
    )
    applied = requests.post(
        f"{sb.api_base}/invoices/{invoice['id']}/apply_payments",
        data={"transactions[id][0]": txn_id, "transactions[amount][0]": "1200", "comment": "back"},
        auth=auth,
        timeout=5,
    )

    assert wrong.status_code == 400 and wrong.json()["api_error_code"] == "param_wrong_value"
    assert applied.status_code == 200 and applied.json()["invoice"]["status"] == "paid"
