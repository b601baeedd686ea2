"""`reactor run` starts again a process of its own that dies, says so (and that one keeps dying),
still stops everything once on Ctrl-C, and refuses a broken rules file before it starts anything."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from reactor.config import EX_CONFIG
from reactor.local.redis_server import free_port
from reactor.local.supervisor import DEV_WEBHOOK_PASSWORD, DEV_WEBHOOK_USER
from reactor.sandbox import DEMO_API_KEY
from tests.helpers import REPO, descendants, group_members, log_records, wait_for, wait_until
from tests.integration.ops_helpers import alive, child, kill_run, listening, printed_sandbox, reactor_run, run_env

pytestmark = pytest.mark.integration


def started_run(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, int, str]:
    """`reactor run` with nothing configured, once it is ready: the process, its log, its web port
    and its sandbox's API base."""
    port, sandbox_port = free_port(), free_port()
    proc = reactor_run(tmp_path, port, sandbox_port, "run")
    log = tmp_path / "run.log"
    wait_for(lambda: "Ready." in log.read_text(), timeout=60, what="`reactor run` to say Ready")
    wait_for(lambda: listening(port), timeout=30, what="gunicorn to listen")
    return proc, log, port, printed_sandbox(log.read_text())


def stopped(proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> int:
    """Its exit status once it has stopped; one still running after `timeout` fails the test with the
    end of its log, where a SIGABRT has just had Python write its stacks (PYTHONFAULTHANDLER)."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGABRT)
        proc.wait(30)
        pytest.fail(f"reactor run still running {timeout:.0f} s after it was told to stop:\n{log.read_text()[-6000:]}")


def ctrl_c(proc: subprocess.Popen[bytes], log: Path) -> str:
    os.killpg(proc.pid, signal.SIGINT)
    assert stopped(proc, log) == 0, log.read_text()[-3000:]
    return log.read_text()


def test_a_worker_killed_under_reactor_run_is_replaced_and_the_next_event_is_written_off(tmp_path: Path):
    proc, log, port, sandbox = started_run(tmp_path)
    try:
        first = wait_for(lambda: child(proc.pid, "worker"), timeout=30, what="the worker")
        wait_for(lambda: len(group_members(first)) > 1, timeout=30, what="RQ's scheduler beside the worker")
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: "worker was killed by SIGKILL; restarting it in 1 s" in log.read_text(), what="the line")
        wait_for(lambda: child(proc.pid, "worker") not in (None, first), timeout=30, what="a new worker")
        # What the dead worker left in its group (RQ's scheduler) was told to stop with it.
        wait_for(lambda: not group_members(first), timeout=30, what="the dead worker's scheduler to stop")

        assert post_demo_event(port).json()["status"] == "queued"
        invoice_url = f"{sandbox}/invoices/inv_demo_1001"

        def status() -> str:
            return requests.get(invoice_url, auth=(DEMO_API_KEY, ""), timeout=5).json()["invoice"]["status"]

        wait_for(lambda: status() == "paid", timeout=60, what="the new worker to write the demo invoice off")
        output = ctrl_c(proc, log)
        assert "stopping the rest" not in output and "keeps dying" not in output
    finally:
        kill_run(proc)


def test_a_process_that_keeps_dying_under_reactor_run_is_reported_and_ctrl_c_still_stops_all(tmp_path: Path):
    proc, log, _port, _sandbox = started_run(tmp_path)
    try:
        for _ in range(3):
            cron = wait_for(lambda: child(proc.pid, "cron"), timeout=30, what="cron")
            os.kill(cron, signal.SIGKILL)
            wait_for(lambda c=cron: child(proc.pid, "cron") not in (None, c), timeout=30, what="cron started again")
        output = log.read_text()
        assert "cron was killed by SIGKILL; restarting it in 1 s" in output
        assert "cron was killed by SIGKILL; restarting it in 2 s" in output
        assert (
            "cron keeps dying: 3 exits in a row, each within 60 s of its start (this one was killed by SIGKILL)"
            in output
        )
        assert "restarting it in 4 s" in output
        running = [child(proc.pid, name) for name in ("worker", "cron")]
        assert all(running)
        ctrl_c(proc, log)
        assert [pid for pid in running if group_members(pid)] == []  # each group stopped, none restarted
    finally:
        kill_run(proc)


def test_reactor_run_refuses_a_broken_rules_file_before_starting_anything(tmp_path: Path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nmode: live\nrules:\n  - name: x\n    action: explode\n")
    env = {**run_env(tmp_path, "broken"), "REACTOR_RULES": str(rules)}
    command = [sys.executable, "-m", "reactor", "run", "--port", str(free_port()), "--sandbox-port", str(free_port())]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == EX_CONFIG
    assert f"{rules}:5:13: unknown action 'explode'" in done.stderr
    assert "Redis:" not in done.stdout and not (tmp_path / "var-broken" / "redis").exists()


def embedded_redis(run_pid: int) -> int | None:
    """The pid of the redis-server that `reactor run` (run_pid) started, once it runs."""
    for pid in descendants(run_pid):
        with contextlib.suppress(OSError):
            if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    return None


def test_sigterm_while_reactor_run_starts_stops_the_redis_it_started(tmp_path: Path):
    """A process manager's SIGTERM to `reactor run` before it is ready (the embedded Redis started,
    the sandbox and the processes not yet) stops that Redis too: it runs in a session of its own,
    and a second `reactor run` would start another redis-server on the same data directory."""
    proc = reactor_run(tmp_path, free_port(), free_port(), "term")
    redis_pid = 0
    try:
        redis_pid = wait_for(lambda: embedded_redis(proc.pid), timeout=60, what="the embedded redis-server")
        os.kill(proc.pid, signal.SIGTERM)
        stopped(proc, tmp_path / "term.log")
        assert wait_until(lambda: not alive(redis_pid), timeout=30), (tmp_path / "term.log").read_text()[-3000:]
        assert not (tmp_path / "var-term" / "redis.url").exists()
    finally:
        kill_run(proc)
        if redis_pid and alive(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)


def test_the_embedded_redis_killed_under_reactor_run_is_started_again_and_the_next_event_is_written_off(tmp_path: Path):
    proc, log, port, sandbox = started_run(tmp_path)
    try:
        first = wait_for(lambda: embedded_redis(proc.pid), timeout=30, what="the embedded redis-server")
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: "redis-server was killed by SIGKILL; restarting it in 1 s" in log.read_text(), what="the line")
        wait_for(lambda: "embedded redis-server started again at" in log.read_text(), timeout=30, what="the restart")
        assert embedded_redis(proc.pid) not in (None, first)

        def delivered() -> bool:  # as Chargebee redelivers: the web may answer 503 once, on a dropped connection
            return post_demo_event(port).status_code == 200

        wait_for(delivered, timeout=30, interval=1, what="the webhook to be accepted")
        invoice_url = f"{sandbox}/invoices/inv_demo_1001"

        def status() -> str:
            return requests.get(invoice_url, auth=(DEMO_API_KEY, ""), timeout=5).json()["invoice"]["status"]

        wait_for(lambda: status() == "paid", timeout=90, what="the worker to write the demo invoice off")
        # One JSON object a line: an RQ scheduler that died with Redis says so in its line only.
        log_records(ctrl_c(proc, log), "the output of `reactor run`")
    finally:
        kill_run(proc)


def post_demo_event(port: int) -> requests.Response:
    """The demo's exhausted-dunning payment_failed (examples/), posted to `reactor run`'s web."""
    return requests.post(
        f"http://127.0.0.1:{port}/webhooks/chargebee",
        data=(REPO / "examples" / "payment_failed_exhausted.json").read_bytes(),
        headers={"Content-Type": "application/json"},
        auth=(DEV_WEBHOOK_USER, DEV_WEBHOOK_PASSWORD),
        timeout=10,
    )
