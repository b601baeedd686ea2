"""The sandbox's apply_credits as Chargebee documents it: refundable credit notes, oldest first, up to
the amount due; paid when covered; Chargebee-shaped refusals that change nothing."""

from __future__ import annotations

import pytest

from reactor.sandbox import SandboxState
from reactor.sandbox.errors import ApiError


@pytest.fixture
def state() -> SandboxState:
    site = SandboxState()
    site.add_customer(id="cus_1")
    site.add_customer(id="cus_2")
    return site


def unpaid(state: SandboxState, amount: int = 1250, **fields: object) -> dict:
    return state.add_invoice(status="not_paid", total=amount, amount_due=amount, customer_id="cus_1", **fields)


def test_credits_covering_the_invoice_mark_it_paid_and_use_up_the_oldest_notes_first(state):
    first = state.add_credit_note(customer_id="cus_1", total=1000)
    second = state.add_credit_note(customer_id="cus_1", total=1000)
    invoice = unpaid(state)
    assert state.get_customer("cus_1")["refundable_credits"] == 2000

    after, _events = state.apply_credits(invoice["id"], [], webhooks=False)

    assert (after["status"], after["amount_due"], after["credits_applied"]) == ("paid", 0, 1250)
    assert [c["applied_amount"] for c in after["applied_credits"]] == [1000, 250]
    notes = {n["id"]: n for n in state.credit_notes()}
    assert (notes[first["id"]]["status"], notes[first["id"]]["amount_available"]) == ("refunded", 0)
    assert (notes[second["id"]]["status"], notes[second["id"]]["amount_available"]) == ("refund_due", 750)
    assert state.get_customer("cus_1")["refundable_credits"] == 750


def test_partial_credits_lower_the_amount_due_and_leave_the_status(state):
    state.add_credit_note(customer_id="cus_1", total=500)
    invoice = unpaid(state)

    after, _ = state.apply_credits(invoice["id"], [], webhooks=False)

    assert (after["status"], after["amount_due"], after["amount_to_collect"]) == ("not_paid", 750, 750)
    assert state.get_customer("cus_1")["refundable_credits"] == 0


def test_no_credits_is_refused_without_a_change(state):
    state.add_credit_note(customer_id="cus_2", total=500)  # another customer's
    state.add_credit_note(customer_id="cus_1", total=500, currency_code="EUR")  # another currency
    invoice = unpaid(state)

    with pytest.raises(ApiError) as refused:
        state.apply_credits(invoice["id"], [], webhooks=False)

    assert (refused.value.status, refused.value.api_error_code) == (400, "invalid_request")
    assert state.get_invoice(invoice["id"])["amount_due"] == 1250


@pytest.mark.parametrize("status", ["paid", "voided"])
def test_a_settled_invoice_is_invalid_state(state, status):
    state.add_credit_note(customer_id="cus_1", total=500)
    invoice = state.add_invoice(status=status, customer_id="cus_1")

    with pytest.raises(ApiError) as refused:
        state.apply_credits(invoice["id"], [], webhooks=False)

    assert refused.value.api_error_code == "invalid_state_for_request"
    assert refused.value.status == 409


def test_named_credit_notes_must_exist_and_be_the_invoice_customers(state):
    other = state.add_credit_note(customer_id="cus_2", total=500)
    invoice = unpaid(state)

    with pytest.raises(ApiError) as unknown:
        state.apply_credits(invoice["id"], ["CN-nope"], webhooks=False)
    with pytest.raises(ApiError) as foreign:
        state.apply_credits(invoice["id"], [other["id"]], webhooks=False)

    assert unknown.value.status == 404
    assert (foreign.value.status, foreign.value.param) == (400, "credit_notes[id][0]")


def test_a_credit_note_needs_a_known_customer_and_a_positive_total(state):
    with pytest.raises(ValueError, match="add the customer first"):
        state.add_credit_note(customer_id="cus_nobody", total=100)
    with pytest.raises(ValueError, match="positive whole total"):
        state.add_credit_note(customer_id="cus_1", total=0)
