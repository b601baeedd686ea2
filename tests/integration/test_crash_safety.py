"""A worker killed with SIGKILL in the middle of a write_off: the job is recovered by another worker
within a bounded time, and the invoice is written off, and recorded, exactly once."""

from __future__ import annotations

import os
import signal
import time

import pytest
from rq.job import Job

from reactor.ingest.events import evaluation_job_id
from reactor.jobs.audit import AuditFilter, AuditLog
from tests.helpers import WebServer, descendants, wait_for, wait_settled
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event

pytestmark = pytest.mark.integration

# Short enough for a test, in the relations production uses: invoice lock TTL = ceil(3 + 1) + 5 = 9 s,
# a job is abandoned after 3 s without a heartbeat, and workers look for abandoned jobs every second.
CRASH = {
    "http_timeout": 3.0,
    "rate_limit_max_wait": 1.0,
    "abandoned_after": 3,
    "maintenance_interval": 1,
    "job_timeout": 30,
}
LOCK_TTL = 9
MARGIN = 10
# How soon a killed worker's job runs again: its heartbeats (sent by the worker while its horse runs
# the job, or by a thread while the job runs in the worker process) stop with it, so its job is
# abandoned 3 s after the kill. The write waits for the dead holder's lock.
RECOVERY_BOUND = max(LOCK_TTL, CRASH["abandoned_after"]) + CRASH["maintenance_interval"] + MARGIN


@pytest.fixture(params=["fork", "simple"])
def crash(request, short_settings):
    """Settings for workers that die, and a web process enqueueing with the same job timeout."""
    crash_settings = short_settings(**CRASH, worker_class=request.param)
    server = WebServer(crash_settings)
    yield crash_settings, server, RECOVERY_BOUND
    server.stop()


def kill_worker_holding_its_write_off(sandbox, web, start_worker, crash_settings, invoice) -> str:
    sandbox.state.hold("write_off")
    event = make_event(invoice)
    assert post_event(web.webhook_url, event).status_code == 200
    doomed = start_worker(crash_settings)
    assert sandbox.state.wait_held(1, timeout=30) == 1, doomed.output()
    doomed.kill()  # SIGKILL the worker, its scheduler and its work horse at once
    return event["id"]


def test_worker_killed_while_chargebee_completes_its_write_off_is_recovered_without_a_second_call(
    sandbox, redis_conn, start_worker, crash
):
    crash_settings, web, bound = crash
    invoice = exhausted_invoice(sandbox)
    event_id = kill_worker_holding_its_write_off(sandbox, web, start_worker, crash_settings, invoice)
    killed_at = time.monotonic()
    sandbox.state.release_held()  # Chargebee finishes the call; nobody is listening any more
    wait_for(lambda: sandbox.state.get_invoice(invoice["id"])["status"] == "paid", what="the held write_off")

    start_worker(crash_settings)
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=bound + 15, what="recovery")
    recovered_in = time.monotonic() - killed_at
    wait_settled(redis_conn)  # no job left that could double anything

    calls = sandbox.state.write_off_calls()
    assert [c["status"] for c in calls] == [200]
    assert sandbox.state.get_invoice(invoice["id"])["write_off_amount"] == 1250
    records = [
        r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])) if r.outcome == "written_off"
    ]
    assert len(records) == 1
    assert (records[0].rule, records[0].event_id) == ("dunning-exhausted-small-balance", event_id)
    assert "recovered=true" in (records[0].detail or "")
    assert records[0].rules_version, "a recovered write-off still names the rules in force"
    killed = [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])) if r.outcome == "killed"]
    assert [r.event_id for r in killed] == [event_id], "the killed attempt leaves an audit record of its own"
    # The recovered job succeeded: deleted as it ended (result_ttl 0), not left failed.
    job_key = Job.key_for(evaluation_job_id(event_id))
    wait_for(lambda: not redis_conn.exists(job_key), what="the recovered job to finish")
    assert recovered_in < bound, f"recovery took {recovered_in:.1f}s"


def test_worker_killed_before_chargebee_applied_its_write_off_sends_it_again_with_the_same_key(
    sandbox, redis_conn, start_worker, crash
):
    crash_settings, web, bound = crash
    invoice = exhausted_invoice(sandbox)
    kill_worker_holding_its_write_off(sandbox, web, start_worker, crash_settings, invoice)
    # The held request fails at Chargebee (nobody hears the 503): nothing was written off.
    sandbox.state.add_fault(match="write_off", status=503, times=1)
    sandbox.state.release_held()
    wait_for(lambda: len(sandbox.state.write_off_calls()) == 1, what="the held call to end")
    assert sandbox.state.get_invoice(invoice["id"])["status"] == "not_paid"

    start_worker(crash_settings)
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=bound + 15, what="recovery")
    wait_settled(redis_conn)

    calls = sandbox.state.write_off_calls()
    assert [c["status"] for c in calls] == [503, 200]
    assert calls[0]["headers"]["chargebee-idempotency-key"] == calls[1]["headers"]["chargebee-idempotency-key"]
    assert calls[0]["form"] == calls[1]["form"]
    assert sandbox.state.get_invoice(invoice["id"])["write_off_amount"] == 1250
    assert outcomes(redis_conn, invoice["id"]).count("written_off") == 1


def test_a_second_job_for_a_locked_invoice_waits_for_the_dead_holders_lock_then_sees_it_written_off(
    sandbox, web, redis_conn, start_worker, short_settings
):
    """Another event for the same invoice arrives while the killed worker's lock is still alive."""
    crash_settings = short_settings(**CRASH, worker_class="fork")
    bound = RECOVERY_BOUND
    invoice = exhausted_invoice(sandbox)
    kill_worker_holding_its_write_off(sandbox, web, start_worker, crash_settings, invoice)
    sandbox.state.release_held()
    wait_for(lambda: sandbox.state.get_invoice(invoice["id"])["status"] == "paid", what="the held write_off")
    assert redis_conn.exists(f"reactor:lock:invoice:{invoice['id']}"), "the dead worker's lock should still be held"
    assert post_event(web.webhook_url, make_event(invoice, event_type="invoice_updated")).status_code == 200

    start_worker(crash_settings)
    wait_for(
        lambda: {"written_off", "already_written_off"} <= set(outcomes(redis_conn, invoice["id"])),
        timeout=bound + 15,
        what="both jobs",
    )
    wait_settled(redis_conn)
    assert len(sandbox.state.write_off_calls()) == 1
    assert outcomes(redis_conn, invoice["id"]).count("written_off") == 1
    # the killed attempt has its own record, then its retry and the second job each have theirs
    assert sorted(outcomes(redis_conn, invoice["id"])) == ["already_written_off", "killed", "written_off"]


def test_a_work_horse_killed_mid_job_leaves_an_audit_record_and_the_job_runs_again(
    sandbox, web, redis_conn, start_worker, short_settings
):
    """Only the work horse dies (OOM killer, a kill -9 by hand); its worker lives on and records it."""
    crash_settings = short_settings(**CRASH, worker_class="fork")
    invoice = exhausted_invoice(sandbox)
    sandbox.state.hold("write_off")
    event = make_event(invoice)
    assert post_event(web.webhook_url, event).status_code == 200
    worker = start_worker(crash_settings)
    assert sandbox.state.wait_held(1, timeout=30) == 1, worker.output()
    # RQ's work horse is the worker's descendant that leads its own process group (setpgrp)
    horses = [pid for pid in descendants(worker.proc.pid) if os.getpgid(pid) == pid]
    assert len(horses) == 1, horses
    os.kill(horses[0], signal.SIGKILL)
    sandbox.state.release_held()

    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=60, what="the retried job")
    killed = [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])) if r.outcome == "killed"]
    assert len(killed) == 1 and killed[0].event_id == event["id"]
    assert "signal 9" in (killed[0].reason or "") and "RQ will run it again" in (killed[0].reason or "")
    assert outcomes(redis_conn, invoice["id"]).count("written_off") == 1
    assert len([c for c in sandbox.state.write_off_calls() if c["status"] == 200]) == 1
