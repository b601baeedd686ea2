"""A worker stops when its process manager says so, and only then."""

from __future__ import annotations

import signal
import time

import pytest

pytestmark = pytest.mark.integration


def test_sigterm_stops_an_idle_worker_promptly_instead_of_restarting_it(start_worker, redis_conn):
    worker = start_worker()
    deadline = time.monotonic() + 15
    # Registered and past start-up (signal handlers are in place once it cleans its registries).
    while "cleaning registries" not in worker.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_conn.smembers("rq:workers"), worker.output()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(8) == 0, worker.output()
    assert "restarting the worker" not in worker.output()
    assert not redis_conn.smembers("rq:workers")
