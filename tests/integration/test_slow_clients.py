"""Slow clients cannot starve the webhook: real gunicorn, started as `reactor web` starts it (the
Procfile's command), on a free port on 127.0.0.1, while 200 connections from one address send their
request headers at one byte per second (slowloris). docs/security.md, "Hostile clients"."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from reactor.local.redis_server import free_port
from tests.helpers import REPO, WEBHOOK_PASSWORD, WEBHOOK_USER, wait_for, worker_env
from tests.integration.helpers import make_event

pytestmark = pytest.mark.integration

SLOW_CONNECTIONS = 200
ATTACK_SECONDS = 45  # the attack stops by itself after this, whatever the test does
DELIVERY_TIMEOUT = 5
HEAD = b"POST /webhooks/chargebee HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


class Slowloris:
    """SLOW_CONNECTIONS connections, each sending one more header byte per second and never ending
    its headers; a connection the server closes is opened again, as an attacker would."""

    def __init__(self, port: int):
        self.port = port
        self.stop = threading.Event()
        self.sockets: dict[int, tuple[socket.socket, int]] = {}  # slot -> (socket, bytes sent)
        self.opened = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def open_count(self) -> int:
        return len(self.sockets)

    def _connect(self, slot: int) -> None:
        sock = socket.socket()
        sock.settimeout(1)
        try:
            sock.connect(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            return
        self.sockets[slot] = (sock, 0)
        self.opened += 1

    def _byte(self, sent: int) -> bytes:
        if sent < len(HEAD):
            return HEAD[sent : sent + 1]
        filler = b"X-Slow: a\r\n"  # a header field at a time, never the blank line that ends them
        return filler[(sent - len(HEAD)) % len(filler) : (sent - len(HEAD)) % len(filler) + 1]

    def _run(self) -> None:
        deadline = time.monotonic() + ATTACK_SECONDS
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                for slot in range(SLOW_CONNECTIONS):
                    if slot not in self.sockets:
                        self._connect(slot)
                        continue
                    sock, sent = self.sockets[slot]
                    try:
                        sock.send(self._byte(sent))
                        self.sockets[slot] = (sock, sent + 1)
                    except OSError:  # closed by the server: open it again next round
                        sock.close()
                        del self.sockets[slot]
                self.stop.wait(1.0)
        finally:
            for sock, _ in list(self.sockets.values()):
                sock.close()
            self.sockets.clear()

    def __enter__(self) -> Slowloris:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def gunicorn_web(settings, tmp_path: Path) -> Iterator[str]:
    """`reactor web` on a free port of 127.0.0.1: it execs gunicorn as the Procfile's web line does."""
    port = free_port()
    env = worker_env(settings)
    env.update(REACTOR_WEBHOOK_USER=WEBHOOK_USER, REACTOR_WEBHOOK_PASSWORD=WEBHOOK_PASSWORD)
    for name in ("PROMETHEUS_MULTIPROC_DIR", "WEB_CONCURRENCY", "WEB_CONNECTIONS"):
        env.pop(name, None)
    log = (tmp_path / "web.log").open("wb")
    command = [sys.executable, "-m", "reactor", "web", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/readyz", timeout=3).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(ready, timeout=30, what="gunicorn to answer /readyz")
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(25)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        log.close()


def timed_delivery(url: str) -> tuple[float, int | str]:
    started = time.monotonic()
    try:
        response = requests.post(
            f"{url}/webhooks/chargebee",
            json=make_event({"id": f"inv_slow_{time.time_ns()}", "status": "not_paid"}),
            auth=(WEBHOOK_USER, WEBHOOK_PASSWORD),
            timeout=DELIVERY_TIMEOUT,
        )
        outcome: int | str = response.status_code
    except requests.RequestException as exc:
        outcome = exc.__class__.__name__
    return time.monotonic() - started, outcome


def test_a_webhook_during_200_slow_connections_is_answered_within_2_seconds(gunicorn_web):
    results = []
    with Slowloris(int(gunicorn_web.rsplit(":", 1)[1])) as attack:
        # Deliveries across the attack: once all slow connections are open, then after each time
        # the server has cut them off (headers not ended within 5 s, gunicorn_conf: keepalive) and
        # the attacker has opened them again. Each waits for that state, not for a time.
        for generation in range(3):

            def attacking(generation: int = generation) -> bool:
                reopened = attack.opened - SLOW_CONNECTIONS
                return reopened >= generation * SLOW_CONNECTIONS * 0.9 and attack.open_count() >= SLOW_CONNECTIONS * 0.9

            wait_for(attacking, timeout=15, what=f"the slow connections to be open (round {generation})")
            open_now = attack.open_count()
            elapsed, outcome = timed_delivery(gunicorn_web)
            results.append((round(elapsed, 2), outcome, open_now))
        still_attacking = attack.thread.is_alive()
        reopened = attack.opened - SLOW_CONNECTIONS
    # (seconds to the answer, status or error, slow connections open when it was sent)
    assert all(outcome == 200 and elapsed < 2.0 for elapsed, outcome, _ in results), results
    assert still_attacking, "the attack ended before the last delivery"
    # The server cut off connections whose headers had not ended, twice over, and the attacker
    # had to open them again.
    assert reopened >= 2 * SLOW_CONNECTIONS * 0.9, reopened
    print(f"deliveries (s, status, slow connections open): {results}; slow connections reopened: {reopened}")
    with contextlib.suppress(requests.RequestException):  # and the server is still healthy after it
        assert requests.get(f"{gunicorn_web}/healthz", timeout=5).status_code == 200
