"""The controls in front of the webhook, over real HTTP with a real Redis: the source-network
allow-list (403), the failed-auth flood limit (429), and whose address counts (X-Forwarded-For only
behind trusted proxies)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import redis

from reactor.config import Settings
from reactor.keys import Keys
from tests.helpers import WEBHOOK_USER, WebServer, wait_for
from tests.integration.helpers import make_event, post_event

pytestmark = pytest.mark.integration

CHARGEBEE = "203.0.113.10"  # documentation ranges (RFC 5737): stand-ins for Chargebee and an attacker
ATTACKER = "198.51.100.7"
BAD = (WEBHOOK_USER, "guessed-wrong")


@pytest.fixture
def serve(settings: Settings, redis_conn: redis.Redis) -> Iterator[Callable[..., WebServer]]:
    servers: list[WebServer] = []

    def start(**changes: object) -> WebServer:
        server = WebServer(replace(settings, **changes))  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def from_(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def invoice_event() -> dict:
    return make_event({"id": f"inv_{time.time_ns()}", "status": "not_paid"})


def test_a_flood_of_bad_credentials_gets_429_while_good_deliveries_from_another_address_keep_getting_200(
    serve, redis_conn
) -> None:
    web = serve(trusted_proxies=1, auth_failure_limit="5/minute")
    bad, good = [], []
    for _ in range(20):
        bad.append(post_event(web.webhook_url, invoice_event(), auth=BAD, headers=from_(ATTACKER)))
        good.append(post_event(web.webhook_url, invoice_event(), headers=from_(CHARGEBEE)))
    assert [r.status_code for r in bad] == [401] * 5 + [429] * 15
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in bad[5:])
    assert {r.json()["error"] for r in bad[5:]} == {"too_many_failures"}
    assert [(r.status_code, r.json()["status"]) for r in good] == [(200, "queued")] * 20


def test_an_address_over_the_limit_is_refused_before_its_credentials_are_checked(serve) -> None:
    web = serve(trusted_proxies=1, auth_failure_limit="3/minute")
    for _ in range(3):
        assert post_event(web.webhook_url, invoice_event(), auth=BAD, headers=from_(ATTACKER)).status_code == 401
    # Even the right password is not tried from there: that is what stops guessing.
    assert post_event(web.webhook_url, invoice_event(), headers=from_(ATTACKER)).status_code == 429


def test_good_deliveries_do_not_use_up_the_failure_budget(serve) -> None:
    web = serve(trusted_proxies=1, auth_failure_limit="3/minute")
    for _ in range(10):
        assert post_event(web.webhook_url, invoice_event(), headers=from_(CHARGEBEE)).status_code == 200
    assert post_event(web.webhook_url, invoice_event(), auth=BAD, headers=from_(CHARGEBEE)).status_code == 401


def test_the_address_may_try_again_once_its_failures_leave_the_window(serve) -> None:
    web = serve(trusted_proxies=1, auth_failure_limit="2 per 2 seconds")
    for _ in range(2):
        post_event(web.webhook_url, invoice_event(), auth=BAD, headers=from_(ATTACKER))
    assert post_event(web.webhook_url, invoice_event(), headers=from_(ATTACKER)).status_code == 429
    # Asked again until the window lets it through: the refusals in between are not failures of
    # its own (its credentials are never checked), so they do not keep it locked out.
    wait_for(
        lambda: post_event(web.webhook_url, invoice_event(), headers=from_(ATTACKER)).status_code == 200,
        timeout=30,
        interval=0.25,
        what="the failures to leave the 2-second window",
    )


def test_every_web_process_shares_the_failure_count(serve) -> None:
    first = serve(trusted_proxies=1, auth_failure_limit="4/minute")
    second = serve(trusted_proxies=1, auth_failure_limit="4/minute")
    for web in (first, second, first, second):
        assert post_event(web.webhook_url, invoice_event(), auth=BAD, headers=from_(ATTACKER)).status_code == 401
    assert post_event(first.webhook_url, invoice_event(), auth=BAD, headers=from_(ATTACKER)).status_code == 429


def test_an_address_outside_the_allow_list_gets_403_and_nothing_is_stored(serve, redis_conn) -> None:
    web = serve(trusted_proxies=1, webhook_allow=("203.0.113.0/24",))
    event = invoice_event()
    refused = post_event(web.webhook_url, event, headers=from_(ATTACKER))
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert redis_conn.get(Keys().event(event["id"])) is None
    assert post_event(web.webhook_url, event, headers=from_(CHARGEBEE)).json()["status"] == "queued"


def test_the_allow_list_refuses_before_credentials_and_counts_no_failure(serve) -> None:
    web = serve(trusted_proxies=1, webhook_allow=("203.0.113.0/24",), auth_failure_limit="1/minute")
    for _ in range(3):
        assert post_event(web.webhook_url, invoice_event(), auth=BAD, headers=from_(ATTACKER)).status_code == 403


def test_x_forwarded_for_is_ignored_without_trusted_proxies(serve) -> None:
    web = serve(webhook_allow=("203.0.113.0/24",))
    assert post_event(web.webhook_url, invoice_event(), headers=from_(CHARGEBEE)).status_code == 403


def test_a_client_cannot_dodge_the_limit_by_writing_its_own_x_forwarded_for(serve) -> None:
    web = serve(trusted_proxies=1, auth_failure_limit="3/minute")
    statuses = [
        post_event(web.webhook_url, invoice_event(), auth=BAD, headers=from_(f"10.0.0.{n}, {ATTACKER}")).status_code
        for n in range(6)
    ]
    assert statuses == [401] * 3 + [429] * 3  # only the entry our proxy wrote (the last) counts


def test_with_redis_down_the_limiter_fails_open_and_credentials_are_still_checked(settings: Settings) -> None:
    web = WebServer(replace(settings, auth_failure_limit="1/minute", redis_url="redis://127.0.0.1:1/0"))
    try:
        statuses = [post_event(web.webhook_url, invoice_event(), auth=BAD).status_code for _ in range(3)]
        stored = post_event(web.webhook_url, invoice_event())
    finally:
        web.stop()
    assert statuses == [401, 401, 401]
    assert stored.status_code == 503  # storage is down; the event is refused, not lost
