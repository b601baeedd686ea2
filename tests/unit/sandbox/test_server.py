"""The sandbox behaves like Chargebee where the reactor depends on it (real HTTP, free ports)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from reactor.sandbox import DEMO_API_KEY, SandboxServer, SandboxState, demo_payment_failed_event, seed_demo
from tests.helpers import wait_for

AUTH = (DEMO_API_KEY, "")
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "payment_failed_exhausted.json"


@pytest.fixture
def receiver():
    """A tiny webhook endpoint standing in for the reactor, recording what the sandbox POSTs."""
    received: list[dict[str, Any]] = []

    @Request.application
    def app(request: Request) -> Response:
        auth = request.authorization
        received.append(
            {
                "json": json.loads(request.get_data()),
                "user": auth.username if auth else None,
                "password": auth.password if auth else None,
                "content_type": request.content_type,
            }
        )
        return Response("ok")

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}/webhooks/chargebee", received
    srv.shutdown()
    srv.server_close()


def write_off(sb: SandboxServer, invoice_id: str, headers: dict[str, str] | None = None, **form: str):
    return requests.post(f"{sb.api_base}/invoices/{invoice_id}/write_off", data=form, headers=headers, auth=AUTH)


def test_write_off_marks_invoice_paid_and_creates_adjustment_credit_note(sb):
    before = sb.state.add_invoice(id="inv_1", status="not_paid", dunning_status="exhausted", amount_due=1250)
    resp = write_off(sb, "inv_1", comment="bad debt")
    assert resp.status_code == 200
    invoice, cn = resp.json()["invoice"], resp.json()["credit_note"]
    assert (invoice["status"], invoice["amount_due"], invoice["write_off_amount"]) == ("paid", 0, 1250)
    assert invoice["amount_adjusted"] == 1250
    assert invoice["dunning_status"] == "exhausted"
    assert invoice["resource_version"] > before["resource_version"]
    assert cn["type"] == "adjustment" and cn["reason_code"] == "write_off"
    assert cn["create_reason_code"] == "Write Off"
    assert (cn["total"], cn["reference_invoice_id"], cn["currency_code"]) == (1250, "inv_1", "USD")
    assert invoice["adjustment_credit_notes"] == [
        {
            "cn_id": cn["id"],
            "cn_reason_code": "write_off",
            "cn_create_reason_code": "Write Off",
            "cn_date": cn["date"],
            "cn_total": 1250,
            "cn_status": "adjusted",
        }
    ]
    stored = requests.get(f"{sb.api_base}/invoices/inv_1", auth=AUTH).json()["invoice"]
    assert stored == invoice


def test_write_off_records_retrievable_events_with_full_envelope(sb):
    sb.state.add_invoice(id="inv_1", amount_due=500)
    write_off(sb, "inv_1")
    events = sb.state.events()
    assert [e["event_type"] for e in events] == ["invoice_updated", "credit_note_created"]
    assert events[0]["content"]["invoice"]["status"] == "paid"
    assert events[1]["content"]["credit_note"]["total"] == 500
    for event in events:
        assert event["id"].startswith("ev_") and event["source"] == "api"
        assert (event["object"], event["api_version"], event["webhook_status"]) == (
            "event",
            "v2",
            "not_configured",
        )
        fetched = requests.get(f"{sb.api_base}/events/{event['id']}", auth=AUTH)
        assert fetched.json()["event"] == event
    listed = requests.get(f"{sb.api_base}/events", params={"event_type[is]": "credit_note_created"}, auth=AUTH)
    assert [e["event"]["id"] for e in listed.json()["list"]] == [events[1]["id"]]
    assert requests.get(f"{sb.api_base}/events/ev_nope", auth=AUTH).status_code == 404


@pytest.mark.parametrize("auth", [None, ("wrong_key", ""), ("", DEMO_API_KEY)])
def test_missing_or_wrong_api_key_is_rejected_with_401(sb, auth):
    sb.state.add_invoice(id="inv_1")
    resp = requests.post(f"{sb.api_base}/invoices/inv_1/write_off", auth=auth)
    assert resp.status_code == 401
    body = resp.json()
    assert body["api_error_code"] == "api_authentication_failed" and body["http_status_code"] == 401
    assert "message" in body and "type" not in body  # real 401 bodies carry no type
    assert body["error_code"] != body["api_error_code"]  # the legacy code is another vocabulary
    assert sb.state.get_invoice("inv_1")["status"] == "payment_due"


def test_unknown_invoice_and_unknown_route_answer_chargebee_404_json(sb):
    resp = requests.get(f"{sb.api_base}/invoices/inv_missing", auth=AUTH)
    assert resp.status_code == 404 and resp.json()["api_error_code"] == "resource_not_found"
    assert write_off(sb, "inv_missing").json()["api_error_code"] == "resource_not_found"
    route = requests.get(f"{sb.url}/api/v2/nothing/here", auth=AUTH)
    assert route.status_code == 404 and route.headers["content-type"].startswith("application/json")
    assert route.json()["type"] == "invalid_request"
    method = requests.delete(f"{sb.api_base}/invoices/inv_missing", auth=AUTH)
    assert method.status_code == 405 and method.json()["api_error_code"] == "http_method_not_supported"


def test_writing_off_a_paid_invoice_is_invalid_state_409_and_changes_nothing(sb):
    before = sb.state.add_invoice(id="inv_1", status="paid")
    resp = write_off(sb, "inv_1")
    assert resp.status_code == 409
    assert resp.json()["api_error_code"] == "invalid_state_for_request"
    assert resp.json()["type"] == "invalid_request"
    assert sb.state.get_invoice("inv_1") == before
    assert sb.state.events() == []


def test_in_progress_payment_blocks_write_off(sb):
    sb.state.add_invoice(id="inv_1", linked_payments=[{"txn_id": "txn_1", "txn_status": "in_progress"}])
    resp = write_off(sb, "inv_1")
    assert resp.status_code == 409 and resp.json()["api_error_code"] == "invalid_state_for_request"
    assert sb.state.get_invoice("inv_1")["status"] == "payment_due"


def test_invalid_state_status_can_be_switched_to_400(sb):
    requests.post(f"{sb.url}/_sandbox/settings", json={"invalid_state_status": 400}).raise_for_status()
    sb.state.add_invoice(id="inv_1", status="voided")
    resp = write_off(sb, "inv_1")
    assert resp.status_code == 400 and resp.json()["api_error_code"] == "invalid_state_for_request"


def test_invoice_paid_behind_the_reactors_back_cannot_be_written_off(sb):
    first = sb.state.add_invoice(id="inv_1", status="not_paid", amount_due=700)
    updated = requests.patch(f"{sb.url}/_sandbox/invoices/inv_1", json={"status": "paid"}).json()["invoice"]
    assert (updated["amount_due"], updated["amount_paid"]) == (0, 700)
    assert updated["resource_version"] > first["resource_version"]
    assert write_off(sb, "inv_1").status_code == 409


def test_comment_longer_than_300_chars_is_param_wrong_value(sb):
    sb.state.add_invoice(id="inv_1")
    resp = write_off(sb, "inv_1", comment="x" * 301)
    assert resp.status_code == 400
    assert (resp.json()["api_error_code"], resp.json()["param"]) == ("param_wrong_value", "comment")
    assert write_off(sb, "inv_1", comment="x" * 300).status_code == 200


def test_idempotent_retry_replays_the_first_response_and_writes_off_once(sb):
    sb.state.add_invoice(id="inv_1", amount_due=900)
    headers = {"chargebee-idempotency-key": "key-1"}
    first = write_off(sb, "inv_1", headers, comment="dunning exhausted")
    second = write_off(sb, "inv_1", headers, comment="dunning exhausted")
    assert first.status_code == second.status_code == 200
    assert first.headers["chargebee-idempotency-replayed"] == "false"
    assert second.headers["chargebee-idempotency-replayed"] == "true"
    assert second.json() == first.json()
    assert sb.state.get_invoice("inv_1")["write_off_amount"] == 900
    assert len(sb.state.get_invoice("inv_1")["adjustment_credit_notes"]) == 1
    assert len(sb.state.events()) == 2
    assert [c["replayed"] for c in sb.state.write_off_calls()] == [False, True]


def test_without_idempotency_key_a_second_write_off_is_refused(sb):
    sb.state.add_invoice(id="inv_1")
    assert write_off(sb, "inv_1").status_code == 200
    second = write_off(sb, "inv_1")
    assert second.status_code == 409 and "chargebee-idempotency-replayed" not in second.headers


def test_reusing_an_idempotency_key_for_another_request_is_422(sb):
    sb.state.add_invoices([{"id": "inv_1"}, {"id": "inv_2"}])
    headers = {"chargebee-idempotency-key": "key-1"}
    assert write_off(sb, "inv_1", headers, comment="a").status_code == 200
    other_body = write_off(sb, "inv_1", headers, comment="b")
    other_path = write_off(sb, "inv_2", headers, comment="a")
    for resp in (other_body, other_path):
        assert resp.status_code == 422 and resp.json()["api_error_code"] == "unable_to_process_request"
    assert sb.state.get_invoice("inv_2")["status"] == "payment_due"


def test_idempotency_key_over_100_chars_is_rejected(sb):
    sb.state.add_invoice(id="inv_1")
    resp = write_off(sb, "inv_1", {"chargebee-idempotency-key": "k" * 101})
    assert resp.status_code == 400
    assert sb.state.get_invoice("inv_1")["status"] == "payment_due"


def test_concurrent_requests_with_one_key_write_off_once(sb):
    sb.state.add_invoice(id="inv_1", amount_due=300)
    results: list[int] = []

    def call() -> None:
        results.append(write_off(sb, "inv_1", {"chargebee-idempotency-key": "same"}).status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 8
    assert sb.state.get_invoice("inv_1")["write_off_amount"] == 300


def test_webhook_skip_header_records_skipped_events_and_posts_nothing(sb, receiver):
    url, received = receiver
    sb.state.set_webhook_target(url, "hook", "secret")
    sb.state.add_invoice(id="inv_1")
    assert write_off(sb, "inv_1", {"chargebee-event-webhook": "all-disabled"}).status_code == 200
    assert {e["webhook_status"] for e in sb.state.events()} == {"skipped"}
    # A write-off without the header, after it: once its two events are delivered, any posting of
    # the skipped ones, which would have started first, has shown too.
    sb.state.add_invoice(id="inv_2")
    assert write_off(sb, "inv_2").status_code == 200
    deliveries = sb.state.wait_for_deliveries(2, timeout=15)
    posted = {e["id"] for e in sb.state.events() if e["webhook_status"] != "skipped"}
    assert len(posted) == 2 and {d["event_id"] for d in deliveries} == posted
    assert {r["json"]["id"] for r in received} == posted


def test_follow_up_events_are_posted_to_the_webhook_with_basic_auth(sb, receiver):
    url, received = receiver
    requests.post(f"{sb.url}/_sandbox/webhook", json={"url": url, "user": "hook", "password": "secret"})
    sb.state.add_invoice(id="inv_1")
    write_off(sb, "inv_1")
    deliveries = sb.state.wait_for_deliveries(2)
    assert [(d["event_type"], d["status_code"]) for d in deliveries] == [
        ("invoice_updated", 200),
        ("credit_note_created", 200),
    ]
    assert [r["json"]["id"] for r in received] == [d["event_id"] for d in deliveries]
    assert all((r["user"], r["password"]) == ("hook", "secret") for r in received)
    assert received[0]["content_type"] == "application/json"
    assert received[0]["json"]["content"]["invoice"]["status"] == "paid"
    assert {e["webhook_status"] for e in sb.state.events()} == {"succeeded"}
    assert len(requests.get(f"{sb.url}/_sandbox/deliveries").json()["deliveries"]) == 2


def test_unreachable_webhook_is_recorded_as_failed_delivery(sb):
    sb.state.set_webhook_target("http://127.0.0.1:9/nowhere")
    sb.state.add_invoice(id="inv_1")
    write_off(sb, "inv_1")
    deliveries = sb.state.wait_for_deliveries(2)
    assert len(deliveries) == 2 and all(d["error"] and d["status_code"] is None for d in deliveries)
    assert {e["webhook_status"] for e in sb.state.events()} == {"failed"}


def test_429_fault_carries_retry_after_and_leaves_the_invoice_alone(sb):
    sb.state.add_invoice(id="inv_1")
    requests.post(
        f"{sb.url}/_sandbox/faults", json={"match": "write_off", "status": 429, "retry_after": 7, "times": 1}
    ).raise_for_status()
    headers = {"chargebee-idempotency-key": "retry-me"}
    limited = write_off(sb, "inv_1", headers)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert limited.json()["api_error_code"] == "api_request_limit_exceeded"
    assert "type" not in limited.json()  # real 429 bodies carry no type
    assert sb.state.get_invoice("inv_1")["status"] == "payment_due"
    retried = write_off(sb, "inv_1", headers)
    assert retried.status_code == 200 and retried.headers["chargebee-idempotency-replayed"] == "false"
    assert [c["status"] for c in sb.state.write_off_calls()] == [429, 200]


def test_500_fault_without_times_fails_every_matching_request(sb):
    sb.state.add_invoice(id="inv_1")
    sb.state.add_fault("write_off", 500)
    assert [write_off(sb, "inv_1").status_code for _ in range(3)] == [500, 500, 500]
    assert requests.get(f"{sb.api_base}/invoices/inv_1", auth=AUTH).status_code == 200
    assert sb.state.get_invoice("inv_1")["status"] == "payment_due"
    requests.delete(f"{sb.url}/_sandbox/faults").raise_for_status()
    assert write_off(sb, "inv_1").status_code == 200


def test_slow_write_off_does_not_delay_a_concurrent_get(sb):
    sb.state.add_invoice(id="inv_1")
    sb.state.add_fault("write_off", latency_ms=1500, times=1)
    slow: list[requests.Response] = []
    thread = threading.Thread(target=lambda: slow.append(write_off(sb, "inv_1")))
    started = time.monotonic()
    thread.start()
    wait_for(lambda: sb.state.faults() == [], what="the write-off to take its latency")
    assert requests.get(f"{sb.api_base}/invoices/inv_1", auth=AUTH).status_code == 200
    assert slow == [] and sb.state.write_off_calls() == [], "the GET waited for the write-off to be answered"
    thread.join()
    assert time.monotonic() - started >= 1.5 and slow[0].status_code == 200


def test_calls_per_minute_limit_answers_429_with_retry_after(sb):
    sb.state.calls_per_minute = 3
    sb.state.add_invoice(id="inv_1")
    codes = [requests.get(f"{sb.api_base}/invoices/inv_1", auth=AUTH) for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    assert 1 <= int(codes[-1].headers["Retry-After"]) <= 60


def test_calls_log_records_requests_and_redacts_authorization(sb):
    sb.state.add_invoice(id="inv_1")
    write_off(sb, "inv_1", {"chargebee-idempotency-key": "k1"}, comment="why")
    calls = requests.get(f"{sb.url}/_sandbox/calls", params={"path_contains": "write_off"}).json()["calls"]
    assert len(calls) == 1
    call = calls[0]
    assert (call["method"], call["path"], call["status"]) == ("POST", "/api/v2/invoices/inv_1/write_off", 200)
    assert call["form"] == {"comment": "why"} and call["headers"]["chargebee-idempotency-key"] == "k1"
    assert call["headers"]["authorization"] == "<redacted>"
    assert DEMO_API_KEY not in json.dumps(calls)


def test_control_api_fills_realistic_invoice_defaults(sb):
    resp = requests.post(f"{sb.url}/_sandbox/invoices", json={"id": "inv_x", "total": 2000, "amount_paid": 500})
    invoice = resp.json()["invoice"]
    assert resp.status_code == 201 and invoice["amount_due"] == 1500
    assert (invoice["object"], invoice["status"], invoice["currency_code"]) == (
        "invoice",
        "payment_due",
        "USD",
    )
    assert invoice["linked_payments"] == [] and invoice["deleted"] is False
    many = requests.post(f"{sb.url}/_sandbox/invoices", json=[{}, {"status": "paid"}]).json()["invoices"]
    assert many[0]["id"] != many[1]["id"] and many[1]["amount_due"] == 0
    assert requests.post(f"{sb.url}/_sandbox/invoices", json={"id": "inv_x"}).status_code == 400


def test_reset_forgets_invoices_calls_faults_and_idempotency(sb):
    sb.state.add_invoice(id="inv_1")
    sb.state.add_fault("any", 503)
    write_off(sb, "inv_1", {"chargebee-idempotency-key": "k"})
    sb.state.set_webhook_target("http://127.0.0.1:9/hook")
    sb.state.calls_per_minute = 1
    requests.post(f"{sb.url}/_sandbox/reset", json={"keep_webhook_target": True}).raise_for_status()
    assert sb.state.invoices() == [] and sb.state.calls() == [] and sb.state.faults() == []
    assert sb.state.events() == [] and sb.state.calls_per_minute is None
    assert sb.state.webhook_target() == {"url": "http://127.0.0.1:9/hook", "user": "", "password": ""}
    sb.state.reset()
    assert sb.state.webhook_target() is None
    sb.state.add_invoice(id="inv_1")
    assert write_off(sb, "inv_1", {"chargebee-idempotency-key": "k"}).status_code == 200


def test_the_demo_site_has_the_customers_and_subscriptions_of_its_invoices(sb):
    """A rule reading the customer (the shipped protect-enterprise) gets the customer the demo event
    carries, not a 404 that blocks every demo invoice as facts_missing in a sweep or a rules diff."""
    invoices = seed_demo(sb.state)
    for invoice in invoices:
        customer = requests.get(f"{sb.api_base}/customers/{invoice['customer_id']}", auth=AUTH)
        assert customer.status_code == 200, invoice["customer_id"]
        event = demo_payment_failed_event(invoice)
        assert customer.json()["customer"]["email"] == event["content"]["customer"]["email"]
        subscription = requests.get(f"{sb.api_base}/subscriptions/{invoice['subscription_id']}", auth=AUTH)
        assert (
            subscription.status_code == 200
            and subscription.json()["subscription"]["customer_id"] == (invoice["customer_id"])
        )
    seed_demo(sb.state)  # seeding twice adds nothing
    assert len(sb.state.customers()) == len({i["customer_id"] for i in invoices})


def test_demo_seed_and_example_event_match(sb):
    seeded = {inv["id"]: inv for inv in seed_demo(sb.state)}
    ada = seeded["inv_demo_1001"]
    assert (ada["customer_id"], ada["status"], ada["dunning_status"]) == (
        "cus_demo_ada",
        "not_paid",
        "exhausted",
    )
    assert ada["amount_due"] == ada["total"] == 1250 and ada["due_date"] < time.time() - 39 * 86400
    assert any(i["currency_code"] == "JPY" for i in seeded.values())
    assert any(i["customer_id"] == "ent_acme" for i in seeded.values())
    assert len(seed_demo(sb.state)) == len(seeded)  # seeding twice adds nothing
    example = json.loads(EXAMPLE.read_text())
    built = demo_payment_failed_event(ada)
    assert example.keys() == built.keys() and example["content"].keys() == built["content"].keys()
    assert (example["id"], example["event_type"], example["api_version"]) == (
        "ev_demo_payment_failed_1001",
        "payment_failed",
        "v2",
    )
    assert example["content"]["invoice"]["id"] == "inv_demo_1001"
    assert example["content"]["invoice"]["dunning_status"] == "exhausted"
    assert example["content"]["transaction"]["status"] == "failure"


def test_state_works_without_a_server():
    state = SandboxState(api_key="k")
    state.add_invoice(id="inv_1", amount_due=10)
    invoice, credit_note, to_post = state.write_off("inv_1")
    assert invoice["status"] == "paid" and credit_note["total"] == 10 and to_post == []


def test_resource_versions_strictly_increase_even_within_one_millisecond():
    state = SandboxState()
    state.add_invoice(id="inv_1")
    versions = [state.update_invoice("inv_1", dunning_status="stopped")["resource_version"] for _ in range(50)]
    assert versions == sorted(set(versions))


def test_dunning_only_changes_leave_updated_at_alone_like_chargebee():
    state = SandboxState()
    before = state.add_invoice(id="inv_1", updated_at=1000)
    after = state.update_invoice("inv_1", dunning_status="exhausted", next_retry_at=None)
    assert after["updated_at"] == before["updated_at"] == 1000
    assert state.update_invoice("inv_1", status="not_paid")["updated_at"] > 1000


def test_invoices_get_no_invented_subscription_id():
    """Real invoices always have customer_id; subscription_id is absent on non-recurring invoices."""
    state = SandboxState()
    one_off = state.add_invoice(id="inv_1")
    assert one_off["customer_id"] and "subscription_id" not in one_off and one_off["recurring"] is False
    assert all("subscription_id" not in item for item in one_off["line_items"])
    recurring = state.add_invoice(id="inv_2", subscription_id="sub_9", customer_id="cus_9")
    assert (recurring["subscription_id"], recurring["recurring"]) == ("sub_9", True)
    assert recurring["line_items"][0]["subscription_id"] == "sub_9"
    consolidated = state.add_invoice(id="inv_3", subscription_id=None, recurring=True)
    assert consolidated["subscription_id"] is None and consolidated["recurring"] is True
    _, credit_note, _ = state.write_off("inv_1")
    assert "subscription_id" not in credit_note


def test_error_bodies_carry_legacy_fields_that_differ_from_api_error_code(sb):
    resp = requests.get(f"{sb.api_base}/invoices/inv_missing", auth=AUTH)
    body = resp.json()
    assert body["api_error_code"] == "resource_not_found" and body["type"] == "invalid_request"
    assert body["error_code"] == "referenced_resource_not_found"
    assert (body["error_msg"], body["http_status_code"]) == (body["message"], 404)
    sb.state.add_invoice(id="inv_1")
    long = write_off(sb, "inv_1", comment="x" * 301).json()
    assert (long["param"], long["error_param"], long["error_code"]) == ("comment", "comment", "param_invalid_value")


def test_deleting_an_invoice_keeps_it_with_deleted_true_and_records_invoice_deleted(sb, receiver):
    url, received = receiver
    sb.state.set_webhook_target(url)
    before = sb.state.add_invoice(id="inv_1")
    resp = requests.post(f"{sb.url}/_sandbox/invoices/inv_1/delete")
    assert resp.status_code == 200 and resp.json()["invoice"]["deleted"] is True
    assert resp.json()["invoice"]["resource_version"] > before["resource_version"]
    deliveries = sb.state.wait_for_deliveries(1)
    assert [d["event_type"] for d in deliveries] == ["invoice_deleted"]
    assert received[0]["json"]["content"]["invoice"]["deleted"] is True
    again = requests.post(f"{sb.url}/_sandbox/invoices/inv_1/delete")
    assert again.status_code == 400
    sb.state.add_invoice(id="inv_2")
    requests.post(f"{sb.url}/_sandbox/invoices/inv_2/delete", json={"webhook": False}).raise_for_status()
    assert sb.state.events("invoice_deleted")[-1]["webhook_status"] == "skipped"
    assert requests.post(f"{sb.url}/_sandbox/invoices/nope/delete").status_code == 404


def test_deleted_invoice_defaults_retrieve_and_write_off_404(sb):
    """Chargebee's answers are UNCONFIRMED; the default is 404 for both (the delete doc says a deleted
    invoice can only be retrieved through list invoices with include_deleted=true)."""
    sb.state.add_invoice(id="inv_1")
    sb.state.delete_invoice("inv_1")
    got = requests.get(f"{sb.api_base}/invoices/inv_1", auth=AUTH)
    assert got.status_code == 404 and got.json()["api_error_code"] == "resource_not_found"
    refused = write_off(sb, "inv_1", {"chargebee-idempotency-key": "k"})
    assert refused.status_code == 404 and refused.json()["api_error_code"] == "resource_not_found"
    assert sb.state.get_invoice("inv_1")["deleted"] is True  # the control view still has it


@pytest.mark.parametrize(
    ("retrieve", "write", "write_code"),
    [
        (200, 400, "invalid_state_for_request"),
        (200, 409, "invalid_state_for_request"),
        (404, 409, "invalid_state_for_request"),
        (200, 404, "resource_not_found"),
    ],
)
def test_deleted_invoice_answers_are_settings(sb, retrieve, write, write_code):
    settings = {"deleted_invoice_retrieve_status": retrieve, "deleted_invoice_write_off_status": write}
    answer = requests.post(f"{sb.url}/_sandbox/settings", json=settings)
    assert answer.status_code == 200 and answer.json()["deleted_invoice_write_off_status"] == write
    sb.state.add_invoice(id="inv_1")
    sb.state.delete_invoice("inv_1")
    got = requests.get(f"{sb.api_base}/invoices/inv_1", auth=AUTH)
    assert got.status_code == retrieve
    if retrieve == 200:
        assert got.json()["invoice"]["deleted"] is True
    refused = write_off(sb, "inv_1")
    assert (refused.status_code, refused.json()["api_error_code"]) == (write, write_code)
    assert sb.state.get_invoice("inv_1")["status"] == "payment_due"
    sb.state.reset()
    assert sb.state.settings()["deleted_invoice_retrieve_status"] == 404


@pytest.mark.parametrize(
    "body",
    [
        {"deleted_invoice_retrieve_status": 410},
        {"deleted_invoice_write_off_status": 200},
        {"invalid_state_status": 422},
        {"calls_per_minute": "many"},
        {"no_such_setting": 1},
        [],
    ],
)
def test_bad_settings_are_400_and_change_nothing(sb, body):
    before = requests.get(f"{sb.url}/_sandbox/settings").json()
    assert requests.post(f"{sb.url}/_sandbox/settings", json=body).status_code == 400
    assert requests.get(f"{sb.url}/_sandbox/settings").json() == before


def test_customers_and_subscriptions_via_control_api_and_chargebee_api(sb):
    added = requests.post(f"{sb.url}/_sandbox/customers", json={"id": "cus_1", "cf_segment": "smb"})
    assert added.status_code == 201 and added.json()["customer"]["object"] == "customer"
    many = requests.post(f"{sb.url}/_sandbox/customers", json=[{"id": "cus_2"}, {}]).json()["customers"]
    assert many[0]["id"] == "cus_2" and many[1]["id"] != "cus_2"
    assert requests.post(f"{sb.url}/_sandbox/customers", json={"id": "cus_1"}).status_code == 400
    sub = requests.post(f"{sb.url}/_sandbox/subscriptions", json={"id": "sub_1", "customer_id": "cus_1"})
    assert sub.status_code == 201 and sub.json()["subscription"]["status"] == "active"
    assert requests.post(f"{sb.url}/_sandbox/subscriptions", json={"id": "sub_2"}).status_code == 400
    assert (
        requests.post(f"{sb.url}/_sandbox/subscriptions", json={"customer_id": "c", "status": "x"}).status_code == 400
    )

    patched = requests.patch(f"{sb.url}/_sandbox/customers/cus_1", json={"cf_segment": "enterprise"}).json()
    assert patched["customer"]["resource_version"] > added.json()["customer"]["resource_version"]
    requests.patch(f"{sb.url}/_sandbox/subscriptions/sub_1", json={"status": "cancelled"}).raise_for_status()
    assert requests.patch(f"{sb.url}/_sandbox/customers/nope", json={}).status_code == 404

    customer = requests.get(f"{sb.api_base}/customers/cus_1", auth=AUTH)
    assert customer.status_code == 200 and customer.json() == {"customer": patched["customer"]}
    subscription = requests.get(f"{sb.api_base}/subscriptions/sub_1", auth=AUTH).json()["subscription"]
    assert (subscription["customer_id"], subscription["status"]) == ("cus_1", "cancelled")
    for path in ("customers/nope", "subscriptions/nope"):
        missing = requests.get(f"{sb.api_base}/{path}", auth=AUTH)
        assert missing.status_code == 404 and missing.json()["api_error_code"] == "resource_not_found"
    assert len(requests.get(f"{sb.url}/_sandbox/customers").json()["customers"]) == 3
    assert len(requests.get(f"{sb.url}/_sandbox/subscriptions").json()["subscriptions"]) == 1
    sb.state.reset()
    assert sb.state.customers() == [] and sb.state.subscriptions() == []


def test_customer_and_subscription_endpoints_pass_the_same_gate(sb):
    sb.state.add_customer(id="cus_1")
    sb.state.add_subscription(id="sub_1", customer_id="cus_1")
    assert requests.get(f"{sb.api_base}/customers/cus_1").status_code == 401
    assert "type" not in requests.get(f"{sb.api_base}/subscriptions/sub_1").json()
    sb.state.add_fault("customer", 500, times=1)
    sb.state.add_fault("subscription", 503, times=1, retry_after=2)
    assert requests.get(f"{sb.api_base}/subscriptions/sub_1", auth=AUTH).headers["Retry-After"] == "2"
    assert requests.get(f"{sb.api_base}/customers/cus_1", auth=AUTH).status_code == 500
    assert requests.get(f"{sb.api_base}/invoices/x", auth=AUTH).json()["api_error_code"] == "resource_not_found"
    assert requests.get(f"{sb.api_base}/customers/cus_1", auth=AUTH).status_code == 200
    sb.state.calls_per_minute = 1
    assert requests.get(f"{sb.api_base}/customers/cus_1", auth=AUTH).status_code == 200
    limited = requests.get(f"{sb.api_base}/subscriptions/sub_1", auth=AUTH)
    assert limited.status_code == 429 and "type" not in limited.json()
    assert [c["path"] for c in sb.state.calls(path_contains="/customers/")][-1] == "/api/v2/customers/cus_1"


def test_a_port_in_use_is_an_oserror_and_reactor_run_takes_another(tmp_path: Path) -> None:
    """werkzeug ends the process when it cannot bind; the sandbox says OSError instead, so that
    `reactor run` (two sandbox sites on consecutive ports, or 8001 taken) falls back to a free port."""
    from contextlib import ExitStack

    from reactor.config import load_settings
    from reactor.local.supervisor import _start_sandbox

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(OSError):
            SandboxServer(port=busy).start()

        settings = load_settings({"REACTOR_VAR_DIR": str(tmp_path)})
        with ExitStack() as stack:
            api_base, _key = _start_sandbox(settings, busy, "http://127.0.0.1:1/hook", "u", "p", stack, record=False)
            assert f":{busy}/" not in api_base
            assert requests.get(f"{api_base}/invoices", auth=AUTH, timeout=5).status_code == 200
