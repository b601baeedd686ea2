"""How `reactor run` starts: "Ready." only once the web accepts connections, and `--fresh`, which
starts the embedded Redis empty and never touches a configured one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from reactor.config import EX_CONFIG
from reactor.local.redis_server import free_port
from tests.helpers import log_records, wait_for
from tests.integration.ops_helpers import kill_run, reactor_run, run_env

pytestmark = pytest.mark.integration


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    assert proc.wait(60) == 0


def test_ready_is_said_once_the_web_accepts_connections(tmp_path: Path):
    port = free_port()
    proc = reactor_run(tmp_path, port, free_port(), "run")
    log = tmp_path / "run.log"
    try:
        wait_for(lambda: "Ready." in log.read_text(), timeout=60, interval=0.01, what="`reactor run` to say Ready")
        # At once, as a user who read "Ready." would, and only once: no retry.
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        messages = [record["msg"] for record in log_records(log.read_text().rsplit("\n", 1)[0])]
        assert messages.count("Ready. Ctrl-C stops everything.") == 1
        stop(proc)
    finally:
        kill_run(proc)


def embedded(tmp_path: Path) -> redis.Redis:
    return redis.Redis.from_url((tmp_path / "var-shared" / "redis.url").read_text().strip())


def started(tmp_path: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    proc = reactor_run(tmp_path, free_port(), free_port(), name, *args, var="shared")
    wait_for(lambda: "Ready." in (tmp_path / f"{name}.log").read_text(), timeout=60, what=f"{name} to say Ready")
    return proc


def test_fresh_starts_the_embedded_redis_empty_and_a_plain_run_keeps_its_data(tmp_path: Path):
    first = started(tmp_path, "first")
    try:
        embedded(tmp_path).set("reactor:left-by-the-first-run", "1")
        stop(first)
    finally:
        kill_run(first)

    again = started(tmp_path, "again")
    try:
        assert embedded(tmp_path).get("reactor:left-by-the-first-run") == b"1", "kept in var/redis/ between runs"
        stop(again)
    finally:
        kill_run(again)

    fresh = started(tmp_path, "fresh", "--fresh")
    try:
        assert embedded(tmp_path).get("reactor:left-by-the-first-run") is None
        assert "--fresh: deleted" in (tmp_path / "fresh.log").read_text()
        stop(fresh)
    finally:
        kill_run(fresh)


def test_fresh_is_refused_with_a_configured_redis_and_flushes_nothing(tmp_path: Path, settings, redis_conn):
    redis_conn.set("reactor:configured-data", "keep me")
    env = {**run_env(tmp_path, "refused"), "REDIS_URL": settings.redis_url}
    done = subprocess.run(
        [sys.executable, "-m", "reactor", "run", "--fresh", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == EX_CONFIG
    [refusal] = log_records(done.stderr + done.stdout, what="the refusal")
    assert refusal["level"] == "critical" and "REDIS_URL is set" in refusal["msg"]
    assert "never flushed" in refusal["msg"]
    assert redis_conn.get("reactor:configured-data") == b"keep me"
    assert not (tmp_path / "var-refused" / "redis").exists()
