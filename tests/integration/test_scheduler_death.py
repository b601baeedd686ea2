"""RQ's scheduler process, forked by the worker, dies when Redis goes away; it says so in one log
line (RQ's, with the traceback in it), without multiprocessing's plain-text traceback after it, so
that the worker's output stays one JSON object a line."""

from __future__ import annotations

import pytest

from tests.helpers import group_members, log_records, wait_for
from tests.integration.ops_helpers import alive

pytestmark = pytest.mark.integration


def test_the_scheduler_dying_with_redis_says_so_in_one_json_line(late_redis, late_settings, start_worker):
    late_redis.start()
    worker = start_worker(late_settings)
    members = wait_for(
        lambda: [pid for pid in group_members(worker.proc.pid) if pid != worker.proc.pid],
        timeout=30,
        what="RQ's scheduler beside the worker",
    )
    late_redis.kill()
    wait_for(lambda: not any(alive(pid) for pid in members), timeout=30, what="the scheduler to die")
    messages = [record["msg"] for record in log_records(worker.output(), "the worker's output")]
    assert any(message.startswith("Scheduler [PID") and "raised an exception" in message for message in messages)
