"""A worker stops when its process manager says so, and only then."""

from __future__ import annotations

import signal

import pytest

from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def test_sigterm_stops_an_idle_worker_promptly_instead_of_restarting_it(start_worker, redis_conn):
    worker = start_worker()
    # Registered and past start-up (signal handlers are in place once it cleans its registries).
    wait_for(lambda: "cleaning registries" in worker.output(), timeout=30, what="the worker past its start-up")
    assert redis_conn.smembers("rq:workers"), worker.output()
    worker.proc.send_signal(signal.SIGTERM)
    # Promptly: an idle worker stops at once; the bound only keeps a busy machine from failing it.
    assert worker.proc.wait(20) == 0, worker.output()
    assert "restarting the worker" not in worker.output()
    assert not redis_conn.smembers("rq:workers")
