"""Sentinels that accept connections and never answer (stopped processes, a partition that drops
packets): a worker started behind them says at once that it waits, and gives up at REACTOR_REDIS_WAIT,
not when a try that may never end ends."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from reactor.local.redis_server import free_port
from tests.helpers import log_records, worker_env
from tests.integration.sentinel_helpers import SERVICE, SentinelProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def hung_sentinels(tmp_path: Path) -> Iterator[list[SentinelProcess]]:
    binary = os.environ.get("REACTOR_REDIS_SERVER") or None
    sentinels = [SentinelProcess(tmp_path / f"sentinel{i}", free_port(), binary).start() for i in range(2)]
    for sentinel in sentinels:
        os.kill(sentinel.process.pid, signal.SIGSTOP)  # type: ignore[union-attr]
    yield sentinels
    for sentinel in sentinels:
        os.kill(sentinel.process.pid, signal.SIGCONT)  # type: ignore[union-attr]
        sentinel.stop()


def test_a_worker_behind_hung_sentinels_says_it_waits_and_keeps_its_deadline(hung_sentinels, settings, start_reactor):
    nodes = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in hung_sentinels)
    url = f"redis+sentinel://{nodes}/{SERVICE}"
    worker = start_reactor(worker_env(replace(settings, redis_url=url, redis_wait=3.0)), "worker")
    assert worker.proc.wait(60) == 1, worker.output()
    waiting, refused = log_records(worker.output())
    assert waiting["msg"] == (
        f"waiting for Redis at sentinel service {SERVICE} at {nodes}/0 (no answer within 1 s); "
        "trying again for up to 3 s (REACTOR_REDIS_WAIT), with pauses up to 30 s"
    )
    assert refused["msg"] == (
        f"refused to start: cannot reach Redis at sentinel service {SERVICE} at {nodes}/0 after 3 s: no answer "
        "(REACTOR_REDIS_WAIT=3)"
    )
    # The deadline counts from the first try, which the waiting line follows by 1 s.
    took = datetime.fromisoformat(refused["ts"]) - datetime.fromisoformat(waiting["ts"])
    assert 1.5 <= took.total_seconds() <= 3.0, (waiting, refused)
