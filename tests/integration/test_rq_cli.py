"""RQ's own command line follows the reactor's REDIS_URL through reactor.rq_settings, behind
Sentinel too, where `rq info -u` cannot read the URL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq import Queue

from reactor.redis_connect import connect
from tests.helpers import REPO
from tests.integration.sentinel_helpers import SentinelSet

pytestmark = pytest.mark.integration


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    with SentinelSet(tmp_path / "sentinel-set") as started:
        yield started


def rq_info(url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "RQ_"))}
    env["REDIS_URL"] = url
    rq = [sys.executable, "-c", "from rq.cli import main; main()"]
    return subprocess.run(
        [*rq, "info", "-c", "reactor.rq_settings", "--only-queues", "--raw"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_rq_info_reads_the_queues_behind_sentinel(sentinels):
    queue = Queue("rq-cli-test", connection=connect(sentinels.url))
    queue.enqueue("builtins.print", "never run")
    done = rq_info(sentinels.url)
    assert done.returncode == 0, done.stderr
    assert "queue rq-cli-test 1" in done.stdout, done.stdout


def test_rq_info_reads_a_plain_url(redis_server, redis_conn):
    Queue("rq-cli-plain", connection=redis_conn).enqueue("builtins.print", "never run")
    done = rq_info(redis_server.url)
    assert done.returncode == 0, done.stderr
    assert "queue rq-cli-plain 1" in done.stdout, done.stdout
