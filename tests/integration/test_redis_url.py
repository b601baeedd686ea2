"""REDIS_URL mistakes end in one line, at once: a `rediss://` URL for a Redis without TLS (which
reads the TLS ClientHello as the start of a command and waits for the rest, so that the handshake
hung the command for ever), and a password whose `@` or `/` was not percent-encoded (its tail was
taken for the host and looked up in DNS)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from reactor.local.redis_server import EmbeddedRedis, find_redis_server, free_port
from reactor.redis_connect import connect
from reactor.redis_wait import explain
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

COMMAND_TIMEOUT = 120.0
"""Seconds the test gives a command before calling it hung. A liveness bound, not a speed one: the
messages below say which timeout fired (3 s, 1 s), and a loaded machine may take long to start Python."""


def reactor(tmp_path: Path, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`reactor ARGS...` as a user runs it, with REDIS_URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACTOR_", "CHARGEBEE_", "REDIS_"))}
    env.update(REDIS_URL=redis_url, REACTOR_VAR_DIR=str(tmp_path / "var"))
    return subprocess.run(
        [sys.executable, "-m", "reactor", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )


@pytest.mark.parametrize("command", [("held", "list"), ("dlq", "list")])
def test_a_rediss_url_for_a_redis_without_tls_stops_a_command_in_one_line(redis_server, tmp_path, command):
    done = reactor(tmp_path, f"rediss://127.0.0.1:{redis_server.port}/0", *command)

    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: cannot reach Redis at 127.0.0.1:{redis_server.port}/0: no TLS handshake within 3 s "
        "(a Redis without TLS behind a rediss:// URL?)"
    ]


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ("rediss://127.0.0.1:{port}/0", "no TLS handshake within 1 s"),
        # redis-py names only the class of each sentinel's error (reactor/redis_wait.py's `explain`).
        ("rediss+sentinel://127.0.0.1:{port}/mymaster", "(the sentinels: network:TimeoutError)"),
    ],
)
def test_a_tls_connection_to_a_redis_without_tls_fails_within_the_connect_timeout(
    redis_server: EmbeddedRedis, form: str, says: str
):
    """No socket_timeout, as the worker's connection has none (its BLPOP waits longer)."""
    connection = connect(form.format(port=redis_server.port), socket_connect_timeout=1)
    outcome: list[BaseException | None] = []

    def ping() -> None:
        try:
            connection.ping()
            outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=ping, daemon=True)  # a hung handshake must not hang the run
    thread.start()
    thread.join(COMMAND_TIMEOUT)

    assert outcome, f"the ping still hangs after {COMMAND_TIMEOUT:g} s"
    assert isinstance(outcome[0], redis.RedisError), outcome
    assert says in explain(outcome[0])


def test_a_password_with_an_unencoded_at_and_slash_is_refused_without_a_lookup_or_a_trace_of_it(tmp_path):
    url = "redis://:hunter2@evilhost/tail@real-redis.invalid:6379/0"

    done = reactor(tmp_path, url, "held", "list")

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: REDIS_URL is malformed (an @ after the host"), lines
    assert "percent-encode" in lines[0]
    assert not any(part in done.stderr + done.stdout for part in ("hunter2", "evilhost", "tail", "real-redis"))
    assert "connecting to" not in done.stderr  # no connection tried, so no name looked up


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server that speaks TLS only, with a certificate of its own for 127.0.0.1; its port."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make the test certificate with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    request += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(request, check=True, capture_output=True)
    port = free_port()
    binary = find_redis_server(os.environ.get("REACTOR_REDIS_SERVER") or None)
    args = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    args += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    server = subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = redis.Redis("127.0.0.1", port, ssl=True, ssl_ca_certs=str(cert), socket_timeout=2)
        wait_for(lambda: server.poll() is not None or _answers(client), timeout=15, what="the TLS redis-server")
        if server.poll() is not None:
            pytest.skip(f"this redis-server has no TLS: {server.stdout.read()[-300:] if server.stdout else ''}")
        client.close()
        yield port
    finally:
        server.terminate()
        server.wait(15)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_a_tls_connection_is_bounded_by_the_connect_timeout_only_while_it_shakes_hands(tls_redis, tmp_path):
    """The worker's connection has no read timeout: its BLPOP waits longer than it takes to connect."""
    url = f"rediss://127.0.0.1:{tls_redis}/0?ssl_ca_certs={tmp_path / 'cert.pem'}"
    connection = connect(url, socket_connect_timeout=0.5)

    assert connection.ping()
    started = time.monotonic()
    assert connection.blpop(["reactor-test:nothing"], timeout=2) is None  # not cut off after 0.5 s
    assert time.monotonic() - started >= 1.9
    connection.close()
