"""REACTOR_REPLICA_ACK on a real primary and replica: an accepted webhook is answered 200 only once
the replica confirmed it (WAIT), 503 when it does not, and the retry is then answered 200 once the
replica is back, with still one job for the event."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from rq import Queue

from reactor.config import REPLICA_ACK_MARGIN, Settings, load_settings
from reactor.keys import Keys
from reactor.local.redis_server import EmbeddedRedis
from tests.helpers import WebServer
from tests.integration.helpers import make_event, post_event
from tests.integration.sentinel_helpers import replicate

pytestmark = pytest.mark.integration

LONGEST = Settings.redis_socket_timeout - REPLICA_ACK_MARGIN
LONGEST_ACK = load_settings({"REACTOR_REPLICA_ACK_TIMEOUT": str(LONGEST)}, dotenv=False).replica_ack_timeout
"""The longest REACTOR_REPLICA_ACK_TIMEOUT the settings accept."""
INVOICE = {"id": "inv_ack_1", "status": "not_paid", "amount_due": 100, "currency_code": "USD", "customer_id": "c"}


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, EmbeddedRedis]]:
    binary = os.environ.get("REACTOR_REDIS_SERVER") or None
    with (
        EmbeddedRedis(tmp_path / "primary", binary=binary) as primary,
        EmbeddedRedis(tmp_path / "replica", binary=binary) as replica,
    ):
        replicate(primary, replica)
        yield primary, replica


@contextmanager
def frozen(server: EmbeddedRedis) -> Iterator[None]:
    """The server stopped (SIGSTOP): connected, but confirming nothing, until the block ends."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


@pytest.fixture
def web_on(settings) -> Iterator:
    servers: list[WebServer] = []

    def start(primary: EmbeddedRedis, **changes: object) -> WebServer:
        changes.setdefault("replica_ack_timeout", 0.2)
        servers.append(WebServer(replace(settings, redis_url=primary.url, **changes)))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_a_webhook_is_answered_200_only_once_the_replica_has_it(pair, web_on, settings):
    primary, replica = pair
    # REACTOR_REPLICA_ACK=auto: the primary has a replica, so it waits; as long as it may, since a
    # replica busy with its disk confirmed a write 200 ms late once on a loaded machine
    web = web_on(primary, replica_ack_timeout=LONGEST_ACK)
    queue = Queue(settings.queue_name, connection=primary.client())
    first, second = make_event(INVOICE), make_event(INVOICE)

    answer = post_event(web.webhook_url, first)
    assert (answer.status_code, answer.json()["status"]) == (200, "queued")
    assert replica.client().exists(Keys(settings.key_prefix).event(first["id"])) == 1

    with frozen(replica):
        refused = post_event(web.webhook_url, second)
    assert refused.status_code == 503
    assert refused.json()["error"] == "unavailable"

    retried = post_event(web.webhook_url, second)  # Chargebee's retry, the replica back
    assert (retried.status_code, retried.json()["status"]) == (200, "duplicate")
    assert replica.client().exists(Keys(settings.key_prefix).event(second["id"])) == 1
    inbox = primary.client().lrange(Keys(settings.key_prefix).inbox(), 0, -1)
    assert inbox == [first["id"].encode(), second["id"].encode()]  # the refused delivery's kept, not doubled
    assert queue.count == 1  # the triage job the first event woke


def test_off_answers_without_waiting_for_the_replica(pair, web_on):
    primary, replica = pair
    web = web_on(primary, replica_ack="off")

    with frozen(replica):
        answer = post_event(web.webhook_url, make_event(INVOICE))

    assert answer.status_code == 200


def test_on_answers_503_when_there_is_no_replica(redis_server, web_on):
    web = web_on(redis_server, replica_ack="on")

    answer = post_event(web.webhook_url, make_event(INVOICE))

    assert answer.status_code == 503


def test_auto_does_not_wait_on_a_redis_without_replicas(redis_server, web_on):
    web = web_on(redis_server)

    assert post_event(web.webhook_url, make_event(INVOICE)).status_code == 200


def test_the_longest_timeout_allowed_still_ends_in_a_wait_answered_not_a_socket_timeout(pair, web_on, caplog):
    """At the longest REACTOR_REPLICA_ACK_TIMEOUT the settings accept, an unconfirmed accept is
    still the WAIT's own answer (503 `not replicated`), not the web's Redis socket timeout (503
    `unavailable` after the client sent the whole accept twice)."""
    primary, replica = pair
    web = web_on(primary, replica_ack_timeout=LONGEST_ACK)

    with frozen(replica):
        refused = post_event(web.webhook_url, make_event(INVOICE))

    assert refused.status_code == 503
    assert refused.json()["message"] == "storage is not replicated; retry later"
