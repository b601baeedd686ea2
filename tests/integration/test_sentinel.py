"""REDIS_URL as a Sentinel URL, against real processes: a primary, a replica and three sentinels
(tests/integration/sentinel_helpers.py). The clients reactor/redis_connect.py makes find the
primary through the sentinels and follow it when the sentinels move it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from reactor.chargebee.ratelimit import ChargebeeRateLimit
from reactor.config import Settings
from reactor.redis_connect import connect, describe
from reactor.redis_wait import RedisUnreachable, wait_for_redis
from tests.helpers import REPO, wait_for, worker_env
from tests.integration.sentinel_helpers import SERVICE, SentinelSet


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    with SentinelSet(tmp_path / "sentinel-set") as started:
        yield started


def lands_on(connection: redis.Redis, target: redis.Redis, key: str) -> bool:
    """Write `key` through `connection`; whether it is on `target` (a write refused by a primary
    that is being demoted, or made before the move, is tried again by the caller)."""
    try:
        connection.set(key, "1")
    except redis.RedisError:
        return False
    return target.exists(key) == 1


def failover(sentinels: SentinelSet) -> None:
    """Move the primary to the replica, as the sentinels do when the primary dies, and wait until
    they name the replica."""
    sentinels.sentinels[0].client().sentinel_failover(SERVICE)
    wait_for(lambda: sentinels.primary_port() == sentinels.replica.port, timeout=30, what="the promotion")
    wait_for(lambda: sentinels.replica.client().info("replication")["role"] == "master", what="the new primary")


def test_a_sentinel_url_finds_the_primary_and_follows_it_to_the_replica(sentinels):
    connection = connect(sentinels.url, socket_timeout=2, socket_connect_timeout=2)
    limit = ChargebeeRateLimit(connection, calls=100, window=60, key_prefix="t", scope="before")
    limit_after = ChargebeeRateLimit(connection, calls=100, window=60, key_prefix="t", scope="after")

    assert lands_on(connection, sentinels.primary.client(), "before")
    limit.acquire()
    assert describe(connection).startswith(f"sentinel service {SERVICE} at 127.0.0.1:")

    failover(sentinels)

    wait_for(lambda: lands_on(connection, sentinels.replica.client(), "after"), what="a write on the new primary")
    limit_after.acquire()  # the `limits` storage runs on the client's pool: it follows too
    assert [key for key in sentinels.replica.client().keys("t:rl:*") if b"after" in key]


def test_the_cli_reaches_the_primary_the_sentinels_name(sentinels, tmp_path):
    failover(sentinels)
    sentinels.primary.stop()  # the old primary, now a replica: only the sentinels lead to Redis now
    env = {
        **worker_env(Settings(rules_path=tmp_path / "rules.yaml", var_dir=tmp_path / "var")),
        "REDIS_URL": sentinels.url,
    }

    done = subprocess.run(
        [sys.executable, "-m", "reactor", "held", "list"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no held write-offs"


def test_a_wrong_sentinel_password_is_refused_at_once_not_waited_for(sentinels):
    """The sentinels have no password: one given in the URL is refused by each of them, which
    redis-py reports as no primary found. That is a configuration to fix, not a Redis to wait for."""
    connection = connect(f"{sentinels.url}?sentinel_password=wrong", socket_timeout=2, socket_connect_timeout=2)

    with pytest.raises(redis.ConnectionError) as raised:
        wait_for_redis(connection, deadline=30)

    assert not isinstance(raised.value, RedisUnreachable)
    assert "AuthenticationError" in str(raised.value)


def test_an_idle_worker_on_a_sentinel_url_stops_cleanly_on_sigterm(sentinels, settings, tmp_path):
    """RQ's stop request is an exception raised in the middle of the worker's blocking BLPOP. A
    plain connection cut off that way is closed; redis-py's Sentinel connection was kept with the
    BLPOP's answer unread, the worker's last writes then read that answer as theirs, and it exited 1
    with a traceback once the BLPOP timed out, its death unrecorded."""
    env = worker_env(replace(settings, redis_url=sentinels.url))
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "reactor", "worker"], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: "Listening on" in log.read_text(), timeout=60, what="the worker to listen")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text()
        assert sentinels.primary.client().smembers("rq:workers") == set()  # its death recorded
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
