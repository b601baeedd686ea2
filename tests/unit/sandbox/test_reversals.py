"""The sandbox's remove_credit_note as Chargebee documents it: a write-off reversed by taking its
credit note off the invoice; strict about which note (it must exist and be applied to that invoice),
and Chargebee-shaped refusals that change nothing. Over HTTP too: idempotency, the skip header."""

from __future__ import annotations

import base64
import time

import pytest

from reactor.sandbox import SandboxSettings, SandboxState
from reactor.sandbox.app import create_sandbox_app
from reactor.sandbox.errors import ApiError

KEY = "test_sandbox_reactor_demo_key"


@pytest.fixture
def state() -> SandboxState:
    return SandboxState(api_key=KEY)


def written_off(state: SandboxState, amount: int = 1250, **fields: object) -> tuple[dict, dict]:
    invoice = state.add_invoice(status="not_paid", total=amount, amount_due=amount, customer_id="cus_1", **fields)
    after, note, _ = state.write_off(invoice["id"], webhooks=False)
    return after, note


def test_removing_the_write_off_note_makes_the_invoice_unpaid_again(state):
    invoice, note = written_off(state, date=int(time.time()) - 86400)

    after, removed, events = state.remove_credit_note(invoice["id"], note["id"], webhooks=False)

    assert (after["status"], after["amount_due"], after["write_off_amount"], after["amount_adjusted"]) == (
        "not_paid",
        1250,
        0,
        0,
    )
    assert after["adjustment_credit_notes"] == [] and "paid_at" not in after
    assert after["resource_version"] > invoice["resource_version"]
    assert (removed["amount_allocated"], removed["amount_available"], removed["allocations"]) == (0, 1250, [])
    assert events == []  # webhooks skipped, as the reactor asks
    assert [e["event_type"] for e in state.events()][-1] == "invoice_updated"


def test_a_due_date_ahead_makes_it_posted(state):
    invoice, note = written_off(state, net_term_days=30)

    after, _, _ = state.remove_credit_note(invoice["id"], note["id"], webhooks=False)

    assert after["status"] == "posted"


@pytest.mark.parametrize("invalid_state_status", [409, 400])
def test_a_note_removed_already_or_voided_is_refused_without_a_change(invalid_state_status):
    state = SandboxState(defaults=SandboxSettings(invalid_state_status=invalid_state_status))
    invoice, note = written_off(state)
    state.remove_credit_note(invoice["id"], note["id"], webhooks=False)

    with pytest.raises(ApiError) as again:
        state.remove_credit_note(invoice["id"], note["id"], webhooks=False)
    assert (again.value.status, again.value.api_error_code, again.value.param) == (
        400,
        "param_wrong_value",
        "credit_note[id]",
    )

    other, other_note = written_off(state)
    state.void_credit_note(other_note["id"])
    voided_invoice = state.get_invoice(other["id"])
    assert (voided_invoice["status"], voided_invoice["amount_due"]) == ("not_paid", 1250)
    with pytest.raises(ApiError) as voided:
        state.remove_credit_note(other["id"], other_note["id"], webhooks=False)
    assert (voided.value.status, voided.value.api_error_code) == (invalid_state_status, "invalid_state_for_request")
    assert state.get_invoice(other["id"]) == voided_invoice


def test_the_note_must_exist_and_belong_to_the_invoice(state):
    first, first_note = written_off(state)
    second, _ = written_off(state)

    with pytest.raises(ApiError) as unknown:
        state.remove_credit_note(first["id"], "CN-99999", webhooks=False)
    assert (unknown.value.status, unknown.value.api_error_code) == (404, "resource_not_found")
    with pytest.raises(ApiError) as elsewhere:
        state.remove_credit_note(second["id"], first_note["id"], webhooks=False)
    assert (elsewhere.value.status, elsewhere.value.param) == (400, "credit_note[id]")
    with pytest.raises(ApiError) as blank:
        state.remove_credit_note(first["id"], None, webhooks=False)
    assert blank.value.status == 400
    assert state.get_invoice(first["id"])["status"] == state.get_invoice(second["id"])["status"] == "paid"


def test_a_voided_invoice_is_refused(state):
    invoice, note = written_off(state)
    state.update_invoice(invoice["id"], status="voided")

    with pytest.raises(ApiError) as refused:
        state.remove_credit_note(invoice["id"], note["id"], webhooks=False)

    assert refused.value.api_error_code == "invalid_state_for_request"


def test_over_http_with_chargebee_idempotency_and_error_bodies(state):
    invoice, note = written_off(state)
    client = create_sandbox_app(state).test_client()
    path = f"/api/v2/invoices/{invoice['id']}/remove_credit_note"
    headers = {"chargebee-idempotency-key": "undo-1", "chargebee-event-webhook": "all-disabled"}
    auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}

    first = client.post(path, data={"credit_note[id]": note["id"]}, headers={**headers, **auth})
    again = client.post(path, data={"credit_note[id]": note["id"]}, headers={**headers, **auth})
    other_key = client.post(
        path, data={"credit_note[id]": note["id"]}, headers={**auth, "chargebee-idempotency-key": "x"}
    )

    assert first.status_code == 200 and first.json["invoice"]["amount_due"] == 1250
    assert first.json["credit_note"]["id"] == note["id"]
    assert (again.status_code, again.headers["chargebee-idempotency-replayed"]) == (200, "true")
    assert again.json == first.json
    assert other_key.status_code == 400
    assert {"message", "type", "api_error_code", "param", "error_code"} <= set(other_key.json)
    assert other_key.json["api_error_code"] == "param_wrong_value"
    assert state.get_invoice(invoice["id"])["amount_due"] == 1250  # reversed once, not twice
    assert state.events("invoice_updated")[-1]["webhook_status"] == "skipped"


def test_faults_can_be_injected_on_the_call(state):
    invoice, note = written_off(state)
    state.add_fault("remove_credit_note", 429, retry_after=2, times=1)
    client = create_sandbox_app(state).test_client()
    auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}

    answer = client.post(
        f"/api/v2/invoices/{invoice['id']}/remove_credit_note", data={"credit_note[id]": note["id"]}, headers=auth
    )

    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "2")
    assert state.get_invoice(invoice["id"])["status"] == "paid"
