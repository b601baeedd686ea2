"""A worker told to stop twice with SIGTERM (someone's SIGTERM, then `reactor run`'s on Ctrl-C, or a
process manager's to the whole group) still finishes its running job: RQ's cold shutdown on the
second signal would kill the work horse in the middle of a write-off."""

from __future__ import annotations

import signal
import time

import pytest

from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event

pytestmark = pytest.mark.integration


def test_a_second_sigterm_lets_the_running_job_finish(sandbox, settings, web, redis_conn, start_worker):
    sandbox.state.hold("write_off")  # the write-off stays in flight until released
    worker = start_worker()
    invoice = exhausted_invoice(sandbox)
    assert post_event(web.webhook_url, make_event(invoice)).json()["status"] == "queued"
    assert sandbox.state.wait_held(1, timeout=30) == 1, worker.output()

    worker.proc.send_signal(signal.SIGTERM)
    first = time.monotonic()
    # RQ itself ignores a second signal within 1 s of the first: this one comes later.
    wait_for(lambda: time.monotonic() - first > 1.5, timeout=5, what="1.5 s after the first SIGTERM")
    worker.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "SIGTERM again ignored" in worker.output(), timeout=10, what="the worker to say so")
    assert worker.proc.poll() is None, worker.output()  # the job is still in its write-off
    sandbox.state.release_held()

    assert worker.proc.wait(30) == 0, worker.output()
    assert "written_off" in outcomes(redis_conn, invoice["id"]), worker.output()
    assert len(sandbox.state.write_off_calls()) == 1
    assert "cold shut down" not in worker.output(), worker.output()
