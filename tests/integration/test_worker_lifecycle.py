"""A worker stops when its process manager says so, and only then."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reactor.config import Settings
from tests.helpers import REPO, group_members, wait_for, wait_until, worker_env

pytestmark = pytest.mark.integration

SIGTERM_AT = """
import functools, importlib, os, signal, sys
from reactor.cli import main

where, when, *args = sys.argv[1:]
module, _, path = where.partition(":")
*outer, name = path.split(".")
owner = importlib.import_module(module)
for part in outer:
    owner = getattr(owner, part)
original = getattr(owner, name)

@functools.wraps(original)
def signalled(*a, **kw):
    if when == "before":
        os.kill(os.getpid(), signal.SIGTERM)
    try:
        return original(*a, **kw)
    finally:
        if when == "after":
            os.kill(os.getpid(), signal.SIGTERM)

setattr(owner, name, signalled)
main(args, prog_name="reactor")
"""
"""`reactor ARGS` with a SIGTERM from the process to itself right before or after a function runs
(`module:Qualified.name`), so that it lands at that moment each time."""


def test_sigterm_stops_an_idle_worker_promptly_instead_of_restarting_it(start_worker, redis_conn):
    worker = start_worker()
    # Registered and past start-up.
    wait_for(lambda: "cleaning registries" in worker.output(), timeout=30, what="the worker past its start-up")
    assert redis_conn.smembers("rq:workers"), worker.output()
    worker.proc.send_signal(signal.SIGTERM)
    # Promptly: an idle worker stops at once; the bound only keeps a busy machine from failing it.
    assert worker.proc.wait(20) == 0, worker.output()
    assert "restarting the worker" not in worker.output()
    assert not redis_conn.smembers("rq:workers")


def sigterm_at(where: str, when: str, settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", SIGTERM_AT, where, when, "worker"],
            env=worker_env(settings),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.parametrize(
    "where",
    [
        "reactor.cli.processes:connect",  # Redis answered; nothing of the worker started yet
        "reactor.jobs.worker:ReactorWorker.bootstrap",  # registered, "Listening on" said
        "reactor.jobs.worker:ReactorScheduler.start",  # the scheduler forked
    ],
)
def test_sigterm_while_the_worker_starts_stops_it_cleanly(where, settings, redis_conn, tmp_path):
    """RQ handles SIGTERM only once its work loop begins, after it has said "Listening on" and forked
    its scheduler: a SIGTERM before that ended the worker by the signal (status -15), its death
    unrecorded and its scheduler left running with the scheduler's lock."""
    log = tmp_path / "worker.log"
    worker = sigterm_at(where, "after", settings, log)
    try:
        assert worker.wait(60) == 0, log.read_text()[-3000:]
        assert wait_until(lambda: not group_members(worker.pid), timeout=10), "the scheduler outlived the worker"
        assert "Traceback" not in log.read_text()
        assert redis_conn.smembers("rq:workers") == set()
        assert redis_conn.keys("rq:scheduler-lock:*") == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def test_the_scheduler_signalled_before_it_has_its_handlers_stops_cleanly(settings, redis_conn, tmp_path):
    """A SIGTERM to the scheduler process between its fork and the handlers it installs (its worker
    stopping at once, or a stop sent to the whole process group) releases its lock and ends it,
    rather than killing it with the lock held, or reaching the worker's handlers copied into it."""
    log = tmp_path / "worker.log"
    worker = sigterm_at("reactor.jobs.worker:_run_scheduler", "before", settings, log)
    try:
        wait_for(lambda: "has stopped" in log.read_text(), timeout=60, what="the scheduler to stop")
        assert redis_conn.keys("rq:scheduler-lock:*") == []
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def test_sigterm_while_the_worker_waits_for_redis_stops_it_at_once(late_settings, start_worker):
    worker = start_worker(late_settings)
    wait_for(lambda: "waiting for Redis at" in worker.output(), timeout=30, what="the worker to wait for Redis")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(20) == 0, worker.output()
    assert "stopped on SIGTERM before the worker started" in worker.output()
