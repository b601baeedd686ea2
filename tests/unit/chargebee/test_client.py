"""ChargebeeClient against every plausible answer, without a network.

Two transports stand in for Chargebee: the sandbox app called in-process through a requests adapter
(its WSGI test client), for answers the sandbox gives; and canned responses, for answers it does
not (HTML from a proxy, odd JSON). Where Chargebee's real behaviour is UNCONFIRMED, the test says so
and covers each plausible shape.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from reactor.chargebee import (
    AuthError,
    ChargebeeClient,
    InvalidIdError,
    InvalidStateError,
    NotFoundError,
    RateLimitedError,
    RequestError,
    RetryableError,
)
from reactor.jobs.sweep import LIST_PARAMS
from reactor.rules.safety import gone_reason
from reactor.sandbox import DEMO_API_KEY, SandboxState, create_sandbox_app

BASE = "http://chargebee.test/api/v2"


class AppAdapter(BaseAdapter):
    """Send requests to a WSGI app in-process (Flask's test client): real HTTP semantics, no socket."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.client = app.test_client()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        path = request.path_url
        answer = self.client.open(path, method=request.method, headers=dict(request.headers), data=request.body)
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.get_data()
        response.headers.update(answer.headers)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


class CannedAdapter(BaseAdapter):
    """Answer every request with one fixed response, and remember the requests."""

    def __init__(self, status: int, body: Any = None, *, raw: bytes | None = None, headers: dict | None = None):
        super().__init__()
        self.status, self.raw, self.headers = status, raw, headers or {}
        self.body = body
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.requests.append(request)
        response = requests.Response()
        response.status_code = self.status
        response._content = self.raw if self.raw is not None else json.dumps(self.body).encode()
        response.headers.update(self.headers)
        response.request = request
        return response

    def close(self) -> None:
        pass


class FakeRateLimit:
    def __init__(self) -> None:
        self.acquired = 0
        self.pauses: list[float | None] = []

    def acquire(self) -> None:
        self.acquired += 1

    def pause(self, seconds: float | None) -> None:
        self.pauses.append(seconds)


def client_for(adapter: BaseAdapter, rate_limit: FakeRateLimit | None = None) -> ChargebeeClient:
    client = ChargebeeClient(BASE, DEMO_API_KEY, rate_limit=rate_limit)  # type: ignore[arg-type]
    client.session.mount("http://", adapter)
    return client


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
def client(state: SandboxState) -> ChargebeeClient:
    return client_for(AppAdapter(create_sandbox_app(state)))


# -- customers and subscriptions ---------------------------------------------------------------


def test_retrieve_customer_returns_custom_fields_and_goes_through_the_rate_limit(state):
    limit = FakeRateLimit()
    client = client_for(AppAdapter(create_sandbox_app(state)), limit)
    state.add_customer(id="cus_1", cf_segment="enterprise", company="Acme")
    customer = client.retrieve_customer("cus_1")
    assert (customer["id"], customer["cf_segment"], customer["object"]) == ("cus_1", "enterprise", "customer")
    assert limit.acquired == 1
    assert state.calls()[0]["path"] == "/api/v2/customers/cus_1"


def test_retrieve_subscription_returns_chargebee_shape(client, state):
    state.add_subscription(id="sub_1", customer_id="cus_1", cf_plan_tier="gold", status="cancelled")
    sub = client.retrieve_subscription("sub_1")
    assert (sub["id"], sub["customer_id"], sub["status"], sub["cf_plan_tier"]) == (
        "sub_1",
        "cus_1",
        "cancelled",
        "gold",
    )
    assert sub["object"] == "subscription" and "cancelled_at" in sub


@pytest.mark.parametrize("method", ["retrieve_customer", "retrieve_subscription"])
def test_unknown_customer_or_subscription_is_not_found(client, method):
    with pytest.raises(NotFoundError) as err:
        getattr(client, method)("nope")
    assert err.value.api_error_code == "resource_not_found"


def test_ids_are_quoted_into_the_path(client, state):
    canned = CannedAdapter(200, {"customer": {"id": "Customer [Dotcom] 1"}})
    assert client_for(canned).retrieve_customer("Customer [Dotcom] 1")["id"] == "Customer [Dotcom] 1"
    assert canned.requests[0].path_url == "/api/v2/customers/Customer%20%5BDotcom%5D%201"
    state.add_customer(id="cus 1")
    assert client.retrieve_customer("cus 1")["id"] == "cus 1"


CALLS_BY_ID = {
    "retrieve_invoice": lambda c, i: c.retrieve_invoice(i),
    "retrieve_event": lambda c, i: c.retrieve_event(i),
    "retrieve_customer": lambda c, i: c.retrieve_customer(i),
    "retrieve_subscription": lambda c, i: c.retrieve_subscription(i),
    "write_off": lambda c, i: c.write_off(i, "comment", "key-1"),
    "apply_credits": lambda c, i: c.apply_credits(i, None, "key-1"),
    "remove_credit_note": lambda c, i: c.remove_credit_note(i, "cn_1", "key-1"),
}


@pytest.mark.parametrize("call", list(CALLS_BY_ID))
@pytest.mark.parametrize("bad_id", ["..", ".", "", "inv/../x", "cus/1", " inv_1", "inv_1\n", "a%2F..%2Fb"])
def test_an_id_that_would_name_another_path_is_refused_before_anything_is_sent(call, bad_id):
    """`/invoices/..` is `/api/v2/` to requests and to any server: such an id never reaches Chargebee."""
    canned = CannedAdapter(200, {"invoice": {"id": "x"}})
    with pytest.raises(InvalidIdError) as err:
        CALLS_BY_ID[call](client_for(canned), bad_id)
    assert "is not a Chargebee" in str(err.value) or "holds a '/'" in str(err.value)
    assert isinstance(err.value, RequestError) and canned.requests == []


@pytest.mark.parametrize(
    ("kind", "method"), [("customer", "retrieve_customer"), ("subscription", "retrieve_subscription")]
)
def test_customer_and_subscription_faults_reach_the_client(client, state, kind, method):
    state.add_customer(id="cus_1")
    state.add_subscription(id="sub_1", customer_id="cus_1")
    state.add_fault(kind, 503, times=1)
    with pytest.raises(RetryableError):
        getattr(client, method)("cus_1" if kind == "customer" else "sub_1")
    assert getattr(client, method)("cus_1" if kind == "customer" else "sub_1")["object"] == kind


# -- deleted invoices: every plausible answer (Chargebee's real behaviour is UNCONFIRMED) --------


def test_retrieve_deleted_invoice_shape_404_is_not_found(client, state):
    """Shape: retrieve of a deleted invoice -> 404 resource_not_found (the sandbox default; UNCONFIRMED)."""
    state.add_invoice(id="inv_1")
    state.delete_invoice("inv_1")
    with pytest.raises(NotFoundError):
        client.retrieve_invoice("inv_1")


def test_retrieve_deleted_invoice_shape_200_deleted_true_is_recognisable(client, state):
    """Shape: retrieve of a deleted invoice -> 200 with deleted: true (UNCONFIRMED)."""
    state.configure(deleted_invoice_retrieve_status=200)
    state.add_invoice(id="inv_1")
    state.delete_invoice("inv_1")
    invoice = client.retrieve_invoice("inv_1")
    assert invoice["deleted"] is True and gone_reason(invoice) is not None


def test_a_deleted_invoice_is_gone_and_only_then():
    assert gone_reason({"deleted": True}) == "the invoice is deleted in Chargebee"
    assert gone_reason({"deleted": False}) is None and gone_reason({}) is None
    assert gone_reason({"deleted": "false"}) is not None  # not Chargebee's shape: not ours to write off


def test_write_off_deleted_invoice_shape_404_is_not_found(client, state):
    """Shape: write_off of a deleted invoice -> 404 resource_not_found (the sandbox default; UNCONFIRMED)."""
    state.add_invoice(id="inv_1")
    state.delete_invoice("inv_1")
    with pytest.raises(NotFoundError):
        client.write_off("inv_1", "bad debt", "key-1")
    assert state.get_invoice("inv_1")["status"] == "payment_due"


@pytest.mark.parametrize("status", [400, 409])
def test_write_off_deleted_invoice_shape_invalid_state_is_invalid_state(client, state, status):
    """Shape: write_off of a deleted invoice -> 400 or 409 invalid_state_for_request (UNCONFIRMED)."""
    state.configure(deleted_invoice_write_off_status=status)
    state.add_invoice(id="inv_1")
    state.delete_invoice("inv_1")
    with pytest.raises(InvalidStateError) as err:
        client.write_off("inv_1", None, "key-1")
    assert err.value.status == status


# -- write-off answers --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 409])
def test_write_off_of_a_paid_invoice_is_invalid_state_on_400_and_409(client, state, status):
    """Chargebee documents 409 for invalid_state_for_request; older docs say 4xx are mostly 400."""
    state.configure(invalid_state_status=status)
    state.add_invoice(id="inv_1", status="paid")
    with pytest.raises(InvalidStateError) as err:
        client.write_off("inv_1", None, "key-1")
    assert (err.value.status, err.value.api_error_code) == (status, "invalid_state_for_request")


def test_write_off_result_carries_the_adjustment_credit_note_and_replay_flag(client, state):
    state.add_invoice(id="inv_1", status="not_paid", amount_due=1250)
    first = client.write_off("inv_1", "x" * 400, "key-1")
    again = client.write_off("inv_1", "x" * 400, "key-1")
    assert (first.replayed, again.replayed) == (False, True)
    assert first.invoice["amount_adjusted"] == first.invoice["write_off_amount"] == 1250
    assert first.credit_note is not None and first.credit_note["create_reason_code"] == "Write Off"
    call = state.write_off_calls()[0]
    assert len(call["form"]["comment"]) == 300 and call["headers"]["chargebee-event-webhook"] == "all-disabled"


# -- listing --------------------------------------------------------------------------------------


def test_list_passes_chargebees_json_array_offset_back_verbatim(client, state):
    state.add_invoices([{"id": f"inv_{n}", "status": "not_paid"} for n in range(5)])
    params = {**LIST_PARAMS, "limit": 2}
    seen, offsets, offset = [], [], None
    while True:
        page, offset = client.list_invoices({**params, **({"offset": offset} if offset else {})})
        seen += [inv["id"] for inv in page]
        if offset is None:
            break
        offsets.append(offset)
        assert isinstance(offset, str) and isinstance(json.loads(offset), list)
    assert seen == [f"inv_{n}" for n in range(5)]
    sent = [c["query"].get("offset") for c in state.calls(path_contains="/invoices")]
    assert sent == [None, *offsets]


def test_the_sweeps_list_params_are_all_supported_filters(client, state):
    state.add_invoice(id="inv_1", status="not_paid")
    assert [inv["id"] for inv in client.list_invoices(dict(LIST_PARAMS))[0]] == ["inv_1"]


def test_unsupported_filter_is_a_request_error_naming_the_param(client):
    with pytest.raises(RequestError) as err:
        client.list_invoices({"due_date[before]": 1})
    assert (err.value.status, err.value.param, err.value.api_error_code) == (
        400,
        "due_date[before]",
        "param_wrong_value",
    )


def test_deleted_invoices_are_listed_only_with_include_deleted(client, state):
    state.add_invoices([{"id": "inv_1"}, {"id": "inv_2"}])
    state.delete_invoice("inv_1")
    assert [i["id"] for i in client.list_invoices({})[0]] == ["inv_2"]
    listed = client.list_invoices({"include_deleted": "true"})[0]
    assert [(i["id"], gone_reason(i) is not None) for i in listed] == [("inv_1", True), ("inv_2", False)]


@pytest.mark.parametrize(
    "body",
    [{"list": "nope"}, {"list": [], "next_offset": ["1", "2"]}, {"list": [], "next_offset": 7}],
    ids=["list-not-array", "offset-array", "offset-number"],
)
def test_a_list_answer_that_would_end_a_sweep_early_is_retryable(body):
    with pytest.raises(RetryableError):
        client_for(CannedAdapter(200, body)).list_invoices({})


def test_list_skips_malformed_entries_and_treats_empty_offset_as_last_page():
    body = {"list": [{"invoice": {"id": "a"}}, "junk", {"customer": {}}, {"invoice": None}], "next_offset": ""}
    assert client_for(CannedAdapter(200, body)).list_invoices({}) == ([{"id": "a"}], None)


# -- error bodies of every plausible shape ---------------------------------------------------------


def test_real_error_body_with_differing_legacy_code_uses_api_error_code():
    """A real pair from a Chargebee error body: api_error_code duplicate_entry, error_code param_not_unique."""
    body = {
        "message": "id : is already present",
        "type": "invalid_request",
        "api_error_code": "duplicate_entry",
        "param": "id",
        "error_code": "param_not_unique",
        "error_msg": "id : is already present",
        "error_param": "id",
        "http_status_code": 400,
    }
    with pytest.raises(RequestError) as err:
        client_for(CannedAdapter(400, body)).retrieve_invoice("inv_1")
    assert (err.value.api_error_code, err.value.param, err.value.message) == ("duplicate_entry", "id", body["message"])


def test_legacy_error_code_is_ignored_when_api_error_code_is_present():
    """A legacy error_code saying invalid_state_for_request must not turn another api_error_code into it."""
    body = {"api_error_code": "param_wrong_value", "error_code": "invalid_state_for_request", "message": "m"}
    with pytest.raises(RequestError):
        client_for(CannedAdapter(400, body)).write_off("inv_1", None, "k")


def test_sandbox_404_body_maps_to_not_found_despite_its_legacy_code(client):
    with pytest.raises(NotFoundError) as err:
        client.retrieve_invoice("inv_missing")
    assert err.value.api_error_code == "resource_not_found"


def test_401_without_type_is_auth_error():
    """Real 401 bodies carry no `type`."""
    body = {"message": "Sorry, authentication failed", "api_error_code": "api_authentication_failed",
            "error_code": "api_authentication_invalid_key", "http_status_code": 401}  # fmt: skip
    with pytest.raises(AuthError) as err:
        client_for(CannedAdapter(401, body)).retrieve_invoice("inv_1")
    assert err.value.error_type is None


def test_429_without_type_pauses_the_shared_budget_with_retry_after(state):
    limit = FakeRateLimit()
    body = {"message": "limit", "api_error_code": "api_request_limit_exceeded", "http_status_code": 429}
    client = client_for(CannedAdapter(429, body, headers={"Retry-After": "12"}), limit)
    with pytest.raises(RateLimitedError) as err:
        client.retrieve_invoice("inv_1")
    assert (err.value.retry_after, err.value.error_type, limit.pauses) == (12.0, None, [12.0])


def test_429_lock_timeout_is_retried_without_pausing_every_worker():
    """lock_timeout concerns concurrent requests on one resource, not the site budget."""
    limit = FakeRateLimit()
    body = {"message": "locked", "api_error_code": "lock_timeout", "http_status_code": 429}
    with pytest.raises(RateLimitedError):
        client_for(CannedAdapter(429, body), limit).write_off("inv_1", None, "k")
    assert limit.pauses == []


def test_sandbox_429_reaches_the_client_as_rate_limited(client, state):
    state.add_invoice(id="inv_1")
    state.add_fault("retrieve", 429, retry_after=3, times=1)
    with pytest.raises(RateLimitedError) as err:
        client.retrieve_invoice("inv_1")
    assert err.value.retry_after == 3.0


@pytest.mark.parametrize(
    ("status", "cls"),
    [(502, RetryableError), (503, RetryableError), (404, NotFoundError), (401, AuthError), (400, RequestError)],
)
def test_non_json_bodies_are_classified_by_status(status, cls):
    with pytest.raises(cls) as err:
        client_for(CannedAdapter(status, raw=b"<html><h1>Bad gateway</h1></html>")).retrieve_invoice("inv_1")
    assert type(err.value) is cls and err.value.api_error_code is None


@pytest.mark.parametrize("body", [[1, 2], "text", None, {"api_error_code": 42}, {"api_error_code": None}])
def test_odd_json_error_bodies_are_classified_by_status(body):
    with pytest.raises(NotFoundError):
        client_for(CannedAdapter(404, body)).retrieve_invoice("inv_1")


def test_409_other_than_invalid_state_is_retryable():
    """A 409 "previous request still in progress" (idempotent replay in flight) is reported by a
    third party only (UNCONFIRMED); retrying with the same key is right, "settled" would not be."""
    body = {"message": "The previous request is still in progress", "http_status_code": 409}
    with pytest.raises(RetryableError) as err:
        client_for(CannedAdapter(409, body)).write_off("inv_1", None, "k")
    assert not isinstance(err.value, InvalidStateError)


def test_200_with_a_non_json_body_is_retryable():
    with pytest.raises(RetryableError):
        client_for(CannedAdapter(200, raw=b"<html>maintenance</html>")).retrieve_customer("cus_1")


@pytest.mark.parametrize("method", ["retrieve_invoice", "retrieve_customer", "retrieve_subscription", "retrieve_event"])
def test_a_200_without_the_resource_object_is_retryable(method):
    with pytest.raises(RetryableError):
        getattr(client_for(CannedAdapter(200, {"something": {}})), method)("x")
