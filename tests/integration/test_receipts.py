"""Every delivery that reaches the webhook can be traced by its event id: one answered `ignored` (no
invoice) or refused with 400 (API version v1, a body that is not an event) leaves a bounded receipt
that `reactor trace` and the dashboard show (reactor/ingest/receipts.py), against gunicorn as the
Procfile runs it and a real Redis."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from reactor.keys import Keys
from reactor.local.redis_server import EmbeddedRedis, free_port
from tests.helpers import WEBHOOK_PASSWORD, WEBHOOK_USER, WebServer, wait_for, worker_env
from tests.integration.helpers import ADMIN_PASSWORD, ADMIN_USER, log_in, make_event, post_event
from tests.integration.ops_helpers import reactor

pytestmark = pytest.mark.integration

IGNORED = {
    "id": "ev_customer_changed_7",
    "event_type": "customer_changed",
    "api_version": "v2",
    "content": {"customer": {"id": "cus_7"}},
}
V1 = {
    "id": "ev_v1_payment_failed_7",
    "event_type": "payment_failed",
    "api_version": "v1",
    "content": {"invoice": {"id": "inv_v1_7", "status": "not_paid", "amount_due": 1250, "currency_code": "USD"}},
}


@pytest.fixture
def gunicorn(settings, start_reactor) -> SimpleNamespace:
    """`reactor web` (gunicorn, one worker) with the webhook's and the dashboard's logins."""
    port = free_port()
    env = worker_env(settings)
    env.update(
        REACTOR_WEBHOOK_USER=WEBHOOK_USER,
        REACTOR_WEBHOOK_PASSWORD=WEBHOOK_PASSWORD,
        REACTOR_ADMIN_USER=ADMIN_USER,
        REACTOR_ADMIN_PASSWORD=ADMIN_PASSWORD,
        REACTOR_ADMIN_INSECURE_COOKIE="1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    web = start_reactor(env, "web", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/readyz", timeout=3).status_code == 200
        except requests.RequestException:
            return False

    wait_for(ready, timeout=30, what=f"gunicorn to answer /readyz:\n{web.output()[-2000:]}")
    return SimpleNamespace(url=url, webhook_url=f"{url}/webhooks/chargebee")


def test_ignored_and_v1_events_are_traced_by_id_and_an_unknown_id_is_not(gunicorn, settings):
    ignored = post_event(gunicorn.webhook_url, IGNORED)
    refused = post_event(gunicorn.webhook_url, V1)
    assert (ignored.status_code, ignored.json()["status"]) == (200, "ignored")
    assert refused.status_code == 400 and "api_version is 'v1'" in refused.json()["message"]

    shown = reactor(settings, "trace", IGNORED["id"])
    assert shown.exit_code == 0, shown.output
    assert "event ev_customer_changed_7: 1 step (times in UTC)" in shown.output
    assert "receipt      event ev_customer_changed_7 customer_changed received: ignored (200)" in shown.output
    assert "why: the event carries no invoice" in shown.output

    shown = reactor(settings, "trace", V1["id"])
    assert shown.exit_code == 0, shown.output
    assert "event ev_v1_payment_failed_7 payment_failed received: refused (400): nothing taken" in shown.output
    assert "why: api_version is 'v1'; configure the Chargebee webhook with API version v2" in shown.output

    as_json = json.loads(reactor(settings, "trace", V1["id"], "--format", "json").output)
    assert as_json["invoice_id"] is None and as_json["asked"] == V1["id"]
    [step] = as_json["steps"]
    assert step["kind"] == "receipt"
    assert (step["data"]["status"], step["data"]["event_type"]) == ("rejected", "payment_failed")

    never = reactor(settings, "trace", "ev_never_received")
    assert never.exit_code == 1
    assert "nothing kept about 'ev_never_received'" in never.output and "mistyped?" in never.output

    browser, answer = log_in(gunicorn)
    assert answer.status_code == 200, answer.text
    for event, answer_text in ((IGNORED, "received: ignored (200)"), (V1, "received: refused (400)")):
        page = browser.get(f"{gunicorn.url}/admin/invoices/{event['id']}", timeout=10)
        assert page.status_code == 200, page.text
        assert f"Event <code>{event['id']}</code>" in page.text and answer_text in page.text
    missing = browser.get(f"{gunicorn.url}/admin/invoices/ev_never_received", timeout=10)
    assert missing.status_code == 404 and "nothing kept about this id" in missing.text


def test_a_receipt_is_bounded_and_kept_as_long_as_a_stored_event(web, redis_conn, settings):
    huge = {**V1, "id": "ev_huge_version", "api_version": "v" + "9" * 100_000}
    assert post_event(web.webhook_url, huge).status_code == 400
    assert post_event(web.webhook_url, IGNORED).status_code == 200

    for event_id in ("ev_huge_version", IGNORED["id"]):
        key = Keys().receipt(event_id)
        assert len(redis_conn.get(key)) < 600
        assert settings.event_ttl - 60 < redis_conn.ttl(key) <= settings.event_ttl


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        json.dumps({"event_type": "payment_failed", "content": {}}).encode(),  # no id
        json.dumps({**V1, "id": "ev_" + "x" * 60}).encode(),  # longer than any event id
        json.dumps({**V1, "id": "ev/../../x"}).encode(),  # not an event id's alphabet
    ],
)
def test_a_body_without_a_usable_event_id_leaves_no_receipt(web, redis_conn, body):
    response = requests.post(
        web.webhook_url,
        data=body,
        auth=(WEBHOOK_USER, WEBHOOK_PASSWORD),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert not redis_conn.keys("reactor:receipt:*")


def test_redis_down_answers_503_to_an_ignored_or_refused_event_and_the_retry_leaves_its_receipt(
    settings, tmp_path: Path
):
    with EmbeddedRedis(tmp_path / "redis-dies") as own_redis:
        server = WebServer(replace(settings, redis_url=own_redis.url))
        try:
            own_redis.stop()
            for event in (IGNORED, V1):
                response = post_event(server.webhook_url, event)
                assert response.status_code == 503 and response.json()["error"] == "unavailable"
            own_redis.start()  # Chargebee retries both later
            assert post_event(server.webhook_url, IGNORED).status_code == 200
            assert post_event(server.webhook_url, V1).status_code == 400
            assert own_redis.client().exists(Keys().receipt(IGNORED["id"]), Keys().receipt(V1["id"])) == 2
        finally:
            server.stop()


def test_an_event_about_an_invoice_leaves_no_receipt_of_its_own(web, redis_conn):
    event = make_event({"id": "inv_receipts_1", "status": "not_paid", "amount_due": 100, "currency_code": "USD"})
    assert post_event(web.webhook_url, event).json()["status"] == "queued"
    assert not redis_conn.exists(Keys().receipt(event["id"]))  # its invoice's trace has the receipt
