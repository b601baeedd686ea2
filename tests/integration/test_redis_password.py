"""A Redis with a password (`requirepass`): the right one works end to end; a wrong or missing one
is a bad configuration, which no process waits for or restarts: `reactor worker`, `cron`, `web` and
`reactor run` stop at once with one line that names the problem (and not the password) and exit
EX_CONFIG (78), and `reactor run` stops everything when one of its processes refuses so later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from reactor.config import EX_CONFIG, Settings
from reactor.local.redis_server import find_redis_server, free_port
from tests.helpers import WEBHOOK_PASSWORD, WEBHOOK_USER, WebServer, group_members, log_records, wait_for, worker_env
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event
from tests.integration.ops_helpers import child, kill_run, listening, run_env

pytestmark = pytest.mark.integration

PASSWORD = "right-horse-battery-7f3a"
WRONG = "wrong-staple-1c9e"
REFUSED = "refused us: invalid username-password pair or user is disabled."


class LockedRedis:
    """A redis-server of the test's own on a free port that asks for PASSWORD."""

    def __init__(self, data_dir: Path):
        self.port = free_port()
        data_dir.mkdir()
        binary = find_redis_server(os.environ.get("REACTOR_REDIS_SERVER") or None)
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", PASSWORD]
        args += ["--dir", str(data_dir), "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, start_new_session=True)
        self.client = redis.Redis(port=self.port, password=PASSWORD, socket_timeout=5)
        wait_for(self.answers, timeout=15, what="the redis-server with a password")

    def answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.ConnectionError:
            return False

    def url(self, password: str | None = PASSWORD) -> str:
        return f"redis://{f':{password}@' if password else ''}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(15)


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[LockedRedis]:
    server = LockedRedis(tmp_path / "locked-redis")
    yield server
    server.stop()


def only_line(output: str) -> dict:
    """The one line a refusal prints, which must also be the only one."""
    records = log_records(output)
    assert len(records) == 1, output
    return records[0]


def test_the_right_password_works_end_to_end(locked_redis, settings, sandbox, start_worker):
    with_password = replace(settings, redis_url=locked_redis.url())
    start_worker(with_password)
    web = WebServer(with_password)
    try:
        invoice = exhausted_invoice(sandbox)
        assert post_event(web.webhook_url, make_event(invoice)).json()["status"] == "queued"
        written = lambda: "written_off" in outcomes(locked_redis.client, invoice["id"])  # noqa: E731
        wait_for(written, timeout=60, what="the write-off")
    finally:
        web.stop()
    assert len(sandbox.state.write_off_calls()) == 1


def test_a_worker_given_a_wrong_password_exits_at_once_with_one_line(locked_redis, settings, start_worker):
    worker = start_worker(replace(settings, redis_url=locked_redis.url(WRONG)))
    assert worker.proc.wait(30) == EX_CONFIG, worker.output()
    line = only_line(worker.output())
    assert line["level"] == "critical"
    assert line["msg"] == f"refused to start: Redis at 127.0.0.1:{locked_redis.port}/0 {REFUSED}"
    assert WRONG not in worker.output() and PASSWORD not in worker.output()


def test_cron_without_the_password_exits_at_once_with_one_line(locked_redis, settings, start_reactor):
    cron = start_reactor(worker_env(replace(settings, redis_url=locked_redis.url(None))), "cron")
    assert cron.proc.wait(30) == EX_CONFIG, cron.output()
    line = only_line(cron.output())
    address = f"127.0.0.1:{locked_redis.port}/0"
    assert line["msg"] == f"refused to start: Redis at {address} refused us: Authentication required."


def web_env(settings: Settings) -> dict[str, str]:
    env = {**worker_env(settings), "REACTOR_WEBHOOK_USER": WEBHOOK_USER, "REACTOR_WEBHOOK_PASSWORD": WEBHOOK_PASSWORD}
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def test_the_web_given_a_wrong_password_exits_at_once_with_one_line(locked_redis, settings, start_reactor):
    env = web_env(replace(settings, redis_url=locked_redis.url(WRONG)))
    web = start_reactor(env, "web", "--host", "127.0.0.1", "--port", str(free_port()), "--workers", "1")
    assert web.proc.wait(30) == EX_CONFIG, web.output()
    line = only_line(web.output())
    assert line["msg"] == f"refused to start: Redis at 127.0.0.1:{locked_redis.port}/0 {REFUSED}"
    assert WRONG not in web.output()


def run_command(port: int | None = None) -> list[str]:
    port = port or free_port()
    return [sys.executable, "-m", "reactor", "run", "--port", str(port), "--sandbox-port", str(free_port())]


def test_reactor_run_given_a_wrong_password_exits_at_once_with_one_line(locked_redis, tmp_path: Path):
    env = {**run_env(tmp_path, "wrong"), "REDIS_URL": locked_redis.url(WRONG)}
    started = time.monotonic()
    done = subprocess.run(run_command(), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == EX_CONFIG, done.stderr
    assert time.monotonic() - started < 20  # no wait, no restarts
    line = only_line(done.stdout + done.stderr)
    assert line["msg"] == f"refused to start: Redis at 127.0.0.1:{locked_redis.port}/0 {REFUSED}"
    assert WRONG not in done.stdout + done.stderr


def test_reactor_run_stops_everything_when_a_restarted_process_is_refused(locked_redis, tmp_path: Path):
    """The password is changed while `reactor run` runs: the worker started again after it died is
    refused, and `reactor run` stops everything with its line instead of starting it again and again."""
    log, port = tmp_path / "rotated.log", free_port()
    env = {**run_env(tmp_path, "rotated"), "REDIS_URL": locked_redis.url()}
    with log.open("wb") as out:
        proc = subprocess.Popen(run_command(port), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Ready." in log.read_text(), timeout=60, what="`reactor run` to say Ready")
        worker = wait_for(lambda: child(proc.pid, "worker"), timeout=30, what="the worker")
        cron = wait_for(lambda: child(proc.pid, "cron"), timeout=30, what="cron")
        # Each is past its look at Redis: the web listens, the worker forked RQ's scheduler, cron says what it does.
        # (cron's scheduler may still be opening a connection: see below.)
        wait_for(lambda: listening(port), timeout=30, what="gunicorn to listen")
        wait_for(lambda: len(group_members(worker)) > 1, timeout=30, what="RQ's scheduler beside the worker")
        wait_for(lambda: "sweeping unpaid invoices" in log.read_text(), timeout=30, what="cron to start")
        locked_redis.client.config_set("requirepass", "rotated-password-5d2b")
        os.kill(worker, signal.SIGKILL)
        assert proc.wait(60) == EX_CONFIG, log.read_text()[-3000:]
        # Every line JSON: the killed worker's RQ scheduler, refused too, says so in one line.
        messages = [record["msg"] for record in log_records(log.read_text())]
        assert f"refused to start: Redis at 127.0.0.1:{locked_redis.port}/0 {REFUSED}" in messages
        # cron may notice the new password too, when it next opens a connection (its archive thread
        # and its scheduler share a pool): it then dies once and its restart is refused like the
        # worker's. Whichever restart is refused first stops everything; nothing is restarted twice.
        stops = [m for m in messages if m.endswith("stopping everything")]
        refused = "refused to start on a bad configuration (its line above says why); stopping everything"
        assert stops in ([f"worker {refused}"], [f"cron {refused}"]), stops
        restarts = [m for m in messages if "restarting it" in m]
        assert "worker was killed by SIGKILL; restarting it in 1 s" in restarts
        assert set(restarts) <= {
            "worker was killed by SIGKILL; restarting it in 1 s",
            "cron exited with status 1; restarting it in 1 s",
        }, restarts
        assert len(restarts) == len(set(restarts)), restarts
        assert not group_members(cron)
    finally:
        kill_run(proc)
