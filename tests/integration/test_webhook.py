"""Every bad delivery gets a clear answer and loses nothing (real HTTP, real Redis)."""

from __future__ import annotations

import base64
import json
import socket
from dataclasses import replace

import pytest
import requests
from rq import Queue

from reactor.redis_server import EmbeddedRedis
from tests.conftest import WEBHOOK_PASSWORD, WEBHOOK_USER, WebServer
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
    assert 'reactor_events_received_total{event_type="customer_created",outcome="ignored"}' in metrics


def test_an_accepted_event_is_stored_raw_and_queued_once(web, redis_conn, settings):
    event = make_event(INVOICE)
    body = json.dumps(event).encode()
    assert post_event(web.webhook_url, body).json()["status"] == "queued"
    assert post_event(web.webhook_url, body).json()["status"] == "duplicate"
    assert redis_conn.get(f"reactor:event:{event['id']}") == body
    assert queued(redis_conn, settings) == 1
    ttl = redis_conn.ttl(f"reactor:seen:{event['id']}")
    assert ttl > 3 * 24 * 3600 + 7 * 3600, "dedupe must outlive Chargebee's 3 d 7 h of retries"


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
