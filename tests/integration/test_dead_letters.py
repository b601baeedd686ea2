"""`reactor dlq ...` and `reactor events replay`, driven as on-call would, against real Redis, real
`reactor worker` processes and the sandbox over HTTP."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.keys import Keys
from tests.helpers import wait_for, wait_settled
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event
from tests.integration.ops_helpers import make_dead_letter, reactor, store_event

pytestmark = pytest.mark.integration


def registry(settings, redis_conn) -> FailedJobRegistry:
    return FailedJobRegistry(settings.queue_name, connection=redis_conn)


def test_replaying_a_dead_letter_after_the_fault_is_gone_writes_the_invoice_off_once(
    failed_by_server_errors, sandbox, redis_conn, settings
):
    _event, invoice, job_id = failed_by_server_errors
    sandbox.state.clear_faults()

    result = reactor(settings, "dlq", "replay", job_id)

    assert result.exit_code == 0, result.output
    assert f"requeued {job_id}" in result.output
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="written_off")
    wait_settled(redis_conn)  # no job left that could make a second write-off
    accepted = [c for c in sandbox.state.write_off_calls() if c["status"] == 200]
    assert len(accepted) == 1
    trail = outcomes(redis_conn, invoice["id"])
    assert trail.count("written_off") == 1
    assert trail.count("replayed") == 1
    assert trail.index("replayed") < trail.index("written_off")
    assert sandbox.state.get_invoice(invoice["id"])["status"] == "paid"
    assert registry(settings, redis_conn).count == 0


def test_dlq_list_shows_job_event_invoice_last_error_and_every_attempt(failed_by_server_errors, settings):
    event, invoice, job_id = failed_by_server_errors

    result = reactor(settings, "dlq", "list")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if job_id in line)
    assert event["id"] in row and invoice["id"] in row and "payment_failed" in row
    assert "500" in row
    assert "1 dead letter" in result.output
    listed = json.loads(reactor(settings, "dlq", "list", "--format", "json").output)
    assert [(d["job_id"], d["attempts"]) for d in listed] == [(job_id, 1 + len(settings.retry_intervals))]


def test_a_request_chargebee_refuses_outright_counts_one_attempt(sandbox, web, redis_conn, start_worker, settings):
    invoice = exhausted_invoice(sandbox)
    sandbox.state.add_fault(match="write_off", status=401, times=None)
    assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
    start_worker()
    wait_for(lambda: registry(settings, redis_conn).count == 1, timeout=30, what="the job in the dead letters")

    listed = json.loads(reactor(settings, "dlq", "list", "--format", "json").output)

    assert len(sandbox.state.write_off_calls()) == 1
    assert listed[0]["attempts"] == 1


def test_dlq_show_by_event_id_prints_the_event_without_payment_details_the_trail_and_the_traceback(
    failed_by_server_errors, settings
):
    event, invoice, job_id = failed_by_server_errors

    result = reactor(settings, "dlq", "show", event["id"])

    assert result.exit_code == 0, result.output
    out = result.output
    assert f"job:        {job_id}" in out
    assert f'"id": "{invoice["id"]}"' in out and '"dunning_status": "exhausted"' in out
    assert "4242" not in out and "gw_secret_77" not in out and "[redacted]" in out
    trail = out.split("-- decision trail --")[1].split("-- traceback --")[0]
    assert trail.count("retrying") == len(settings.retry_intervals) and "failed" in trail
    assert "Traceback (most recent call last)" in out.split("-- traceback --")[1]


def test_dlq_list_with_nothing_failed_says_so(redis_conn, settings):
    result = reactor(settings, "dlq", "list")

    assert result.exit_code == 0
    assert "no dead letters" in result.output


def test_dlq_list_filters_by_event_type_and_failure_time_newest_first(redis_conn, settings, sandbox):
    invoice = exhausted_invoice(sandbox)
    old = make_dead_letter(redis_conn, settings, make_event(invoice), failed_ago=timedelta(hours=5))
    new = make_dead_letter(redis_conn, settings, make_event(invoice, event_type="invoice_updated"))

    everything = json.loads(reactor(settings, "dlq", "list", "--format", "json").output)
    by_type = reactor(settings, "dlq", "list", "--event-type", "payment_failed").output
    recent = json.loads(reactor(settings, "dlq", "list", "--since", "1h", "--format", "json").output)
    none = reactor(settings, "dlq", "list", "--event-type", "subscription_cancelled").output

    assert [d["job_id"] for d in everything] == [new.id, old.id]
    assert old.id in by_type and new.id not in by_type and "1 of 2 dead letters" in by_type
    assert [d["job_id"] for d in recent] == [new.id]
    assert "no dead letters match (2 dead letters in all)" in none


def test_replaying_an_unknown_job_exits_1_and_says_why(redis_conn, settings):
    result = reactor(settings, "dlq", "replay", "evaluate-ev_nobody_knows")

    assert result.exit_code == 1
    assert "evaluate-ev_nobody_knows: no such job" in result.output


def test_replaying_a_job_that_is_not_a_dead_letter_is_refused(redis_conn, settings, sandbox):
    event = make_event(exhausted_invoice(sandbox))
    store_event(redis_conn, event)
    queue = Queue(settings.queue_name, connection=redis_conn)
    job = queue.enqueue("reactor.jobs.evaluate", event["id"], job_id=f"evaluate-{event['id']}")

    result = reactor(settings, "dlq", "replay", job.id)

    assert result.exit_code == 1
    assert "not in the dead letters (status queued)" in result.output
    assert queue.count == 1


def test_replaying_a_dead_letter_whose_event_expired_says_so_and_keeps_it(redis_conn, settings, sandbox):
    job = make_dead_letter(redis_conn, settings, make_event(exhausted_invoice(sandbox)), store=False)

    result = reactor(settings, "dlq", "replay", job.id)

    assert result.exit_code == 1
    assert "has expired" in result.output and "nothing to re-decide" in result.output
    assert registry(settings, redis_conn).get_job_ids() == [job.id]


def test_bulk_replay_dry_run_lists_and_changes_nothing(redis_conn, settings, sandbox):
    jobs = [make_dead_letter(redis_conn, settings, make_event(exhausted_invoice(sandbox))) for _ in range(2)]

    result = reactor(settings, "dlq", "replay", "--all", "--dry-run")

    assert result.exit_code == 0
    assert all(job.id in result.output for job in jobs)
    assert "2 dead letters would be replayed" in result.output
    assert registry(settings, redis_conn).count == 2
    assert Queue(settings.queue_name, connection=redis_conn).count == 0


def test_bulk_replay_without_a_terminal_needs_yes(redis_conn, settings, sandbox):
    for _ in range(2):
        make_dead_letter(redis_conn, settings, make_event(exhausted_invoice(sandbox)))

    refused = reactor(settings, "dlq", "replay", "--all")
    assert refused.exit_code == 1 and "add --yes" in refused.output
    assert registry(settings, redis_conn).count == 2

    done = reactor(settings, "dlq", "replay", "--all", "--yes")
    assert done.exit_code == 0, done.output
    assert "2 dead letters requeued" in done.output
    assert registry(settings, redis_conn).count == 0
    assert Queue(settings.queue_name, connection=redis_conn).count == 2


def test_replay_resets_retries_and_records_the_operator(redis_conn, settings, sandbox):
    job = make_dead_letter(redis_conn, settings, make_event(exhausted_invoice(sandbox)))

    assert reactor(settings, "dlq", "replay", job.id).exit_code == 0

    requeued = Job.fetch(job.id, connection=redis_conn)
    assert requeued.retries_left == len(settings.retry_intervals)
    assert requeued.meta["replays"] == 1
    record = next(r for r in AuditLog(redis_conn).query(AuditFilter(outcomes=["replayed"])))
    assert record.job_id == job.id and record.detail.startswith("by ") and record.rules_version


def test_purge_deletes_only_dead_letters_older_than_asked(redis_conn, settings, sandbox):
    old = make_dead_letter(redis_conn, settings, make_event(exhausted_invoice(sandbox)), failed_ago=timedelta(days=40))
    new = make_dead_letter(redis_conn, settings, make_event(exhausted_invoice(sandbox)), failed_ago=timedelta(days=2))

    result = reactor(settings, "dlq", "purge", "--older-than", "30d", "--yes")

    assert result.exit_code == 0, result.output
    assert "purged 1 dead letter" in result.output
    assert registry(settings, redis_conn).get_job_ids() == [new.id]
    assert not Job.exists(old.id, connection=redis_conn)
    purged = list(AuditLog(redis_conn).query(AuditFilter(outcomes=["purged"])))
    assert [r.job_id for r in purged] == [old.id]


def test_purge_without_a_terminal_needs_yes(redis_conn, settings, sandbox):
    make_dead_letter(redis_conn, settings, make_event(exhausted_invoice(sandbox)), failed_ago=timedelta(days=40))

    result = reactor(settings, "dlq", "purge", "--older-than", "30d")

    assert result.exit_code == 1 and "add --yes" in result.output
    assert registry(settings, redis_conn).count == 1


def test_events_replay_of_a_processed_event_does_not_write_off_twice(sandbox, web, redis_conn, start_worker, settings):
    invoice = exhausted_invoice(sandbox)
    event = make_event(invoice)
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="written_off")

    result = reactor(settings, "events", "replay", event["id"])

    assert result.exit_code == 0, result.output
    replay_id = result.output.split()[1]
    assert replay_id.startswith(f"replay-{event['id']}-")
    settled = {"already_written_off", "changed"}
    wait_for(
        lambda: any(r.outcome in settled for r in AuditLog(redis_conn).query(AuditFilter(job_id=replay_id))),
        timeout=30,
        what="the replay's decision",
    )
    assert len(sandbox.state.write_off_calls()) == 1
    trail = outcomes(redis_conn, invoice["id"])
    assert trail.count("written_off") == 1 and trail.count("replayed") == 1


def test_events_replay_of_an_unknown_event_exits_1(redis_conn, settings):
    result = reactor(settings, "events", "replay", "ev_never_seen")

    assert result.exit_code == 1
    assert "no stored event 'ev_never_seen'" in result.output
    assert not redis_conn.exists(Keys().event("ev_never_seen"))
