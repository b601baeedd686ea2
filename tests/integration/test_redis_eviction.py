"""A Redis whose `maxmemory-policy` may evict keys (the marks, the stored events, RQ's jobs, the
audit) is a bad configuration: `reactor worker`, `cron`, `web` and `reactor run` stop at once with
one line that names the policy and the fix (and not the password) and exit EX_CONFIG (78), and
`reactor run` stops everything when one of its processes is refused so later. With `noeviction`
(the embedded Redis's, Redis's default) they start as before: every other test."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from rq import Worker

from reactor.config import EX_CONFIG
from reactor.local.redis_server import EmbeddedRedis, free_port
from tests.helpers import log_records, wait_for, worker_env
from tests.integration.ops_helpers import child, kill_run, listening, run_env
from tests.integration.test_redis_password import only_line, run_command, web_env

pytestmark = pytest.mark.integration

PASSWORD = "evicted-lantern-8c2d"
FIX = "set maxmemory-policy noeviction (redis-cli CONFIG SET maxmemory-policy noeviction, or your provider's setting)"


class Evicting:
    """A redis-server of the test's own on a free port, with a password, under `policy`."""

    def __init__(self, data_dir: Path, policy: str):
        self.server = EmbeddedRedis(data_dir, appendonly=False, maxmemory_policy=policy).start()
        self.server.client().config_set("requirepass", PASSWORD)
        self.client = redis.Redis(port=self.server.port, password=PASSWORD, socket_timeout=5)
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.server.port}/0"

    def refusal(self, policy: str) -> str:
        return (
            f"refused to start: Redis at 127.0.0.1:{self.server.port}/0 has maxmemory-policy {policy}, which may "
            "evict keys with a lifetime (the marks, the stored events, RQ's jobs, the audit) when it is full: " + FIX
        )

    def stop(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture
def evicting(tmp_path: Path) -> Iterator[Callable[[str], Evicting]]:
    servers: list[Evicting] = []

    def start(policy: str) -> Evicting:
        servers.append(Evicting(tmp_path / f"redis-{len(servers)}", policy))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
def test_a_worker_on_a_redis_that_may_evict_exits_at_once_with_one_line(policy, evicting, settings, start_worker):
    server = evicting(policy)
    worker = start_worker(replace(settings, redis_url=server.url))
    assert worker.proc.wait(30) == EX_CONFIG, worker.output()
    line = only_line(worker.output())
    assert line["level"] == "critical" and line["msg"] == server.refusal(policy)
    assert PASSWORD not in worker.output()


def test_cron_on_a_redis_that_may_evict_exits_at_once_with_one_line(evicting, settings, start_reactor):
    server = evicting("volatile-lru")
    cron = start_reactor(worker_env(replace(settings, redis_url=server.url)), "cron")
    assert cron.proc.wait(30) == EX_CONFIG, cron.output()
    assert only_line(cron.output())["msg"] == server.refusal("volatile-lru")
    assert PASSWORD not in cron.output()


def test_the_web_on_a_redis_that_may_evict_exits_at_once_with_one_line(evicting, settings, start_reactor):
    server = evicting("allkeys-lfu")
    env = web_env(replace(settings, redis_url=server.url))
    web = start_reactor(env, "web", "--host", "127.0.0.1", "--port", str(free_port()), "--workers", "1")
    assert web.proc.wait(30) == EX_CONFIG, web.output()
    assert only_line(web.output())["msg"] == server.refusal("allkeys-lfu")
    assert PASSWORD not in web.output()


def test_the_web_given_a_deadline_exits_78_once_a_late_evicting_redis_answers(late_redis, settings, start_reactor):
    """Redis answers after gunicorn started: the master's wait (REACTOR_REDIS_WAIT) refuses it then."""
    late_redis.maxmemory_policy = "allkeys-random"
    port = free_port()
    env = web_env(replace(settings, redis_url=late_redis.url, redis_wait=60.0))
    web = start_reactor(env, "web", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
    wait_for(lambda: "waiting for Redis at" in web.output(), timeout=30, what="the web to say it waits for Redis")
    late_redis.start()
    assert web.proc.wait(60) == EX_CONFIG, web.output()
    messages = [record["msg"] for record in log_records(web.output())]
    refusal = f"Redis at 127.0.0.1:{late_redis.port}/0 has maxmemory-policy allkeys-random, which may evict"
    assert [m for m in messages if m.startswith(f"refused to start: {refusal}")], messages
    assert "Traceback" not in web.output()


def test_reactor_run_on_a_redis_that_may_evict_exits_at_once_with_one_line(evicting, tmp_path: Path):
    server = evicting("allkeys-lru")
    env = {**run_env(tmp_path, "evicting"), "REDIS_URL": server.url}
    started = time.monotonic()
    done = subprocess.run(run_command(), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == EX_CONFIG, done.stderr
    assert time.monotonic() - started < 20  # no wait, no restarts
    assert only_line(done.stdout + done.stderr)["msg"] == server.refusal("allkeys-lru")
    assert PASSWORD not in done.stdout + done.stderr


def test_reactor_run_stops_everything_when_a_restarted_process_finds_the_policy_changed(evicting, tmp_path: Path):
    server = evicting("noeviction")
    log, port = tmp_path / "changed.log", free_port()
    env = {**run_env(tmp_path, "changed"), "REDIS_URL": server.url}
    with log.open("wb") as out:
        proc = subprocess.Popen(run_command(port), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Ready." in log.read_text(), timeout=60, what="`reactor run` to say Ready")
        cron = wait_for(lambda: child(proc.pid, "cron"), timeout=30, what="cron")
        wait_for(lambda: listening(port), timeout=30, what="gunicorn to listen")
        wait_for(lambda: "sweeping unpaid invoices" in log.read_text(), timeout=30, what="cron to start")
        # the worker too past its own check (registered with RQ), or on a busy machine it may be the
        # one that meets the changed policy first
        wait_for(lambda: Worker.all(connection=server.client), timeout=60, what="the worker to register")
        server.client.config_set("maxmemory-policy", "volatile-lfu")
        os.kill(cron, signal.SIGKILL)
        assert proc.wait(60) == EX_CONFIG, log.read_text()[-3000:]
        messages = [record["msg"] for record in log_records(log.read_text())]
        assert server.refusal("volatile-lfu") in messages
        assert "cron refused to start on a bad configuration (its line above says why); stopping everything" in (
            messages
        )
        assert PASSWORD not in log.read_text()
    finally:
        kill_run(proc)
