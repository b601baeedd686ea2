"""Every bad delivery gets a clear answer and loses nothing (real HTTP, real Redis)."""

from __future__ import annotations

import base64
import json
import socket
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from rq import Queue

from reactor.ingest.packing import MARK, unpack
from reactor.local.redis_server import EmbeddedRedis
from tests.helpers import WEBHOOK_PASSWORD, WEBHOOK_USER, WebServer
from tests.integration.helpers import make_event, post_event

pytestmark = pytest.mark.integration

INVOICE = {
    "id": "inv_web_1",
    "status": "not_paid",
    "dunning_status": "exhausted",
    "amount_due": 100,
    "currency_code": "USD",
    "customer_id": "cus_1",
}


def queued(redis_conn, settings) -> int:
    return Queue(settings.queue_name, connection=redis_conn).count


@pytest.mark.parametrize(
    "auth",
    [
        None,
        (WEBHOOK_USER, "wrong"),
        ("wrong", WEBHOOK_PASSWORD),
        (WEBHOOK_USER, WEBHOOK_PASSWORD + "x"),
        ("", ""),
    ],
    ids=["missing", "wrong-password", "wrong-user", "longer-password", "empty"],
)
def test_missing_or_wrong_credentials_get_401_with_a_challenge(web, redis_conn, settings, auth):
    response = post_event(web.webhook_url, make_event(INVOICE), auth=auth)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert response.json()["error"] == "unauthorized"
    assert queued(redis_conn, settings) == 0


@pytest.mark.parametrize(
    "template",
    ["Basic {}", "basic {}", "BASIC {}", "Basic  {}", "Basic {} "],
    ids=["canonical", "lower-case-scheme", "upper-case-scheme", "two-spaces", "trailing-space"],
)
def test_every_spelling_of_the_right_credentials_is_taken(web, redis_conn, settings, template):
    """The exact header is compared whole first; other spellings RFC 7617 allows take the long path."""
    token = base64.b64encode(f"{WEBHOOK_USER}:{WEBHOOK_PASSWORD}".encode()).decode()
    headers = {"Authorization": template.format(token)}
    response = requests.post(web.webhook_url, json=make_event(INVOICE), headers=headers, timeout=5)
    assert response.status_code == 200 and response.json()["status"] == "queued"


def test_a_header_that_is_not_ascii_gets_401_not_500(web):
    response = requests.post(
        web.webhook_url,
        data=json.dumps(make_event(INVOICE)),
        headers={"Authorization": "Basic \xe9t\xe9".encode("latin-1")},  # latin-1 bytes, as HTTP allows
        timeout=5,
    )
    assert response.status_code == 401


def test_a_non_basic_authorization_scheme_gets_401(web):
    response = requests.post(
        web.webhook_url,
        data=json.dumps(make_event(INVOICE)),
        headers={"Authorization": "Bearer abc"},
        timeout=5,
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json at all", "not valid JSON"),
        (b"", "empty body"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"event_type": "payment_failed", "content": {}}', "missing field 'id'"),
        (b'{"id": "ev_1", "content": {}}', "event_type"),
        (b'{"id": "ev_1", "event_type": "payment_failed"}', "missing field 'content'"),
        (
            b'{"id": "ev_1", "event_type": "payment_failed", "api_version": "v1", "content": {}}',
            "API version v2",
        ),
        (
            b'{"id": "ev_1", "event_type": "payment_failed", "content": {"invoice": {"total": 1}}}',
            "no string 'id'",
        ),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
    ids=[
        "not-json",
        "empty",
        "array",
        "no-id",
        "no-type",
        "no-content",
        "api-v1",
        "invoice-without-id",
        "binary",
    ],
)
def test_malformed_bodies_get_400_naming_the_problem(web, redis_conn, settings, body, message):
    response = post_event(web.webhook_url, body)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_event"
    assert message in response.json()["message"]
    assert queued(redis_conn, settings) == 0


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_not_json_and_get_400(web, redis_conn, settings, token):
    """Python's json reads them (and 1e999 as infinity); JSON has no such numbers."""
    body = json.dumps(make_event({**INVOICE, "id": "inv_nan"})).replace('"amount_due": 100', f'"amount_due": {token}')
    assert token in body
    response = post_event(web.webhook_url, body.encode())
    assert response.status_code == 400
    assert response.json()["error"] == "bad_event"
    assert queued(redis_conn, settings) == 0


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", "x-custom", "identity, gzip"])
def test_a_content_encoding_we_do_not_decode_gets_415_saying_so(web, redis_conn, settings, encoding):
    import gzip

    body = gzip.compress(json.dumps(make_event(INVOICE)).encode())
    response = post_event(web.webhook_url, body, headers={"Content-Encoding": encoding})
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert "Content-Encoding" in response.json()["message"] and "UTF-8" not in response.json()["message"]
    assert response.headers["Accept-Encoding"] == "identity"
    assert queued(redis_conn, settings) == 0


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", 'Application/JSON;charset="UTF-8"'],
)
def test_json_with_or_without_a_utf8_charset_is_taken(web, content_type):
    response = post_event(web.webhook_url, make_event(INVOICE), headers={"Content-Type": content_type})
    assert response.status_code == 200 and response.json()["status"] == "queued"


def test_identity_content_encoding_is_taken(web):
    response = post_event(web.webhook_url, make_event(INVOICE), headers={"Content-Encoding": "identity"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", "text/json"],
)
def test_other_content_types_get_415(web, redis_conn, settings, content_type):
    body = json.dumps(make_event(INVOICE)).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(
        web.webhook_url, data=body, headers=headers, auth=(WEBHOOK_USER, WEBHOOK_PASSWORD), timeout=5
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert queued(redis_conn, settings) == 0


def test_a_wrong_content_type_without_credentials_is_still_401(web):
    response = post_event(web.webhook_url, make_event(INVOICE), auth=None, headers={"Content-Type": "text/plain"})
    assert response.status_code == 401


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "chargebee"


def real(name: str) -> bytes:
    """A real Chargebee webhook body, byte for byte (tests/fixtures/chargebee/)."""
    return (FIXTURES / f"{name}.json").read_bytes()


@pytest.mark.parametrize(
    ("name", "status", "jobs"),
    [("payment_failed", "queued", 1), ("invoice_updated", "queued", 1), ("subscription_cancelled", "ignored", 0)],
)
def test_the_real_chargebee_payloads_are_taken(web, redis_conn, settings, name, status, jobs):
    body = real(name)
    response = post_event(web.webhook_url, body)
    assert response.status_code == 200 and response.json()["status"] == status
    assert queued(redis_conn, settings) == jobs
    if jobs:
        stored = redis_conn.get(f"reactor:event:{json.loads(body)['id']}")
        assert unpack(stored) == body and len(stored) < len(body) / 4, "stored packed, read back byte for byte"


def forged(path: str, value) -> bytes:
    """The real payment_failed event with one field set to `value` (path: dotted, [i] for lists)."""
    event = json.loads(real("payment_failed"))
    *parents, name = path.replace("[", ".[").split(".")
    node = event
    for part in parents:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    node[name] = value
    return json.dumps(event).encode()


def far_ahead_ms() -> int:
    return int(time.time() * 1000) + 2 * 24 * 3600 * 1000  # two days ahead of receipt


def event_keys(redis_conn) -> set[bytes]:
    """Every key an accepted event could leave. RQ's worker and scheduler bookkeeping is left out:
    a worker of an earlier test may still be stopping and write its own keys meanwhile."""
    return {key for key in redis_conn.keys("*") if not key.startswith((b"rq:scheduler", b"rq:worker"))}


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("id", "ev_1*", "'id'"),
        ("id", "ev:1", "'id'"),
        ("content.invoice.id", "..", "'content.invoice.id'"),
        ("content.invoice.id", "6/../../customers", "'content.invoice.id'"),
        ("content.invoice.id", "6?x=1", "'content.invoice.id'"),
        ("content.invoice.id", "6 ", "'content.invoice.id'"),
        ("content.invoice.customer_id", "cus\n1", "'content.invoice.customer_id'"),
        ("content.invoice.subscription_id", "x" * 51, "'content.invoice.subscription_id'"),
        ("content.customer.id", "\u202ecus", "'content.customer.id'"),
        ("content.subscription.id", "..", "'content.subscription.id'"),
        ("content.transaction.linked_invoices[0].invoice_id", "../6", "linked_invoices[0].invoice_id"),
        ("occurred_at", -1, "'occurred_at'"),
        ("content.invoice.due_date", 10**20, "'content.invoice.due_date'"),
        ("content.invoice.due_date", True, "'content.invoice.due_date' is true"),
        ("content.invoice.next_retry_at", 2**32, "'content.invoice.next_retry_at'"),
        ("content.invoice.amount_due", 2**63, "'content.invoice.amount_due'"),
        ("content.invoice.total", -(2**63) - 1, "'content.invoice.total'"),
        ("content.invoice.resource_version", 0, "'content.invoice.resource_version'"),
        ("content.invoice.resource_version", None, None),  # set below: two days ahead of receipt
        ("content.customer.resource_version", 2**63 - 1, "'content.customer.resource_version'"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_impossible_ids_and_numbers_get_400_naming_the_field_and_nothing_is_kept(
    web, redis_conn, settings, path, value, field
):
    if value is None:
        value, field = far_ahead_ms(), "ahead of the time of receipt"
    keys_before = event_keys(redis_conn)
    response = post_event(web.webhook_url, forged(path, value))
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "bad_event" and field in answer["message"] and "\n" not in answer["message"]
    # nothing stored, marked seen, counted or enqueued: only the refusal's receipt, under the body's id
    assert event_keys(redis_conn) - keys_before <= {b"reactor:receipt:ev_3Nl7oGgQqGG8UK4s"}
    assert queued(redis_conn, settings) == 0


def test_a_resource_version_an_hour_ahead_is_taken(web, redis_conn, settings):
    """Clocks differ a little: a version slightly ahead of ours is Chargebee's, not a forgery."""
    body = forged("content.invoice.resource_version", int(time.time() * 1000) + 3_600_000)
    assert post_event(web.webhook_url, body).json()["status"] == "queued"


def test_a_two_mebibyte_body_gets_413(web, redis_conn, settings):
    event = make_event(INVOICE)
    event["content"]["padding"] = "x" * (2 * 1024 * 1024)
    response = post_event(web.webhook_url, event)
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert queued(redis_conn, settings) == 0


def test_an_oversize_chunked_body_without_content_length_gets_413(web):
    def chunks():
        chunk = b"x" * 65536
        yield b'{"id": "ev_big", "event_type": "payment_failed", "content": {"pad": "'
        for _ in range(40):
            yield chunk
        yield b'"}}'

    response = requests.post(
        web.webhook_url,
        data=chunks(),
        auth=(WEBHOOK_USER, WEBHOOK_PASSWORD),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413


def test_an_event_without_an_invoice_is_acknowledged_and_counted_not_queued(web, redis_conn, settings):
    event = {
        "id": "ev_cust_1",
        "event_type": "customer_created",
        "api_version": "v2",
        "content": {"customer": {}},
    }
    response = post_event(web.webhook_url, event)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert queued(redis_conn, settings) == 0
    assert redis_conn.hget("reactor:counters:events", "ignored:customer_created") == b"1"
    metrics = requests.get(f"{web.url}/metrics", timeout=5).text
    assert 'reactor_events_received_total{event_type="customer_created",outcome="ignored",site="default"}' in metrics


def test_an_accepted_event_is_stored_packed_and_queued_once(web, redis_conn, settings):
    event = make_event(INVOICE)
    body = json.dumps(event).encode()
    assert post_event(web.webhook_url, body).json()["status"] == "queued"
    assert post_event(web.webhook_url, body).json()["status"] == "duplicate"
    stored = redis_conn.get(f"reactor:event:{event['id']}")
    assert stored.startswith(MARK) and unpack(stored) == body
    assert queued(redis_conn, settings) == 1
    ttl = redis_conn.ttl(f"reactor:event:{event['id']}")  # the stored event is the dedupe mark
    assert ttl > 3 * 24 * 3600 + 7 * 3600, "dedupe must outlive Chargebee's 3 d 7 h of retries"
    assert not redis_conn.keys("reactor:seen:*"), "no dedupe mark of its own"


def test_redis_down_answers_503_and_the_retry_after_recovery_is_queued(settings, tmp_path):
    with EmbeddedRedis(tmp_path / "redis-dies") as own_redis:
        own_settings = replace(settings, redis_url=own_redis.url)
        server = WebServer(own_settings)
        try:
            event = make_event(INVOICE)
            own_redis.stop()
            response = post_event(server.webhook_url, event)
            assert response.status_code == 503
            assert response.json()["error"] == "unavailable"
            assert response.headers["Retry-After"]
            ready = requests.get(f"{server.url}/readyz", timeout=10)
            assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("unavailable")

            own_redis.start()  # Chargebee retries the same event later: now it is taken
            response = post_event(server.webhook_url, event)
            assert response.status_code == 200 and response.json()["status"] == "queued"
            assert Queue(settings.queue_name, connection=own_redis.client()).count == 1
        finally:
            server.stop()


def test_redis_that_does_not_answer_gives_503_quickly(settings):
    """A Redis host that accepts TCP but never answers must not hang the webhook."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        port = listener.getsockname()[1]
        server = WebServer(replace(settings, redis_url=f"redis://127.0.0.1:{port}/0", redis_socket_timeout=0.5))
        try:
            response = post_event(server.webhook_url, make_event(INVOICE))
            assert response.status_code == 503
            assert response.elapsed.total_seconds() < 5
        finally:
            server.stop()
    finally:
        listener.close()


def test_health_and_readiness(web):
    assert requests.get(f"{web.url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{web.url}/readyz", timeout=5)
    assert ready.status_code == 200
    body = ready.json()
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["rules"]["version"] and body["checks"]["rules"]["errors"] == []


def test_unknown_route_answers_json_404(web):
    response = requests.get(f"{web.url}/nope", timeout=5)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
