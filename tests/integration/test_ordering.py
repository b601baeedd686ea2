"""Out-of-order deliveries: the last `resource_version` acted on per invoice decides what is stale."""

from __future__ import annotations

import copy

import pytest

from reactor.ingest.trace_list import TRACE_CAP, read_trace_list
from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.jobs.trace import TraceLog
from reactor.keys import Keys
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event

pytestmark = pytest.mark.integration

KEYS = Keys()


def version(invoice: dict, offset: int, **fields) -> dict:
    """The invoice as an event would carry it at resource_version + offset."""
    copied = copy.deepcopy(invoice)
    copied.update(fields, resource_version=invoice["resource_version"] + offset)
    return copied


def test_an_older_invoice_updated_after_a_newer_one_is_recorded_stale_and_not_acted_on(
    sandbox, web, redis_conn, start_worker
):
    invoice = exhausted_invoice(sandbox)  # Chargebee still shows it writable: acting would write it off
    newer = make_event(version(invoice, 2000, dunning_status="in_progress"), event_type="invoice_updated")
    older = make_event(version(invoice, 1000), event_type="invoice_updated")
    assert post_event(web.webhook_url, newer).status_code == 200
    start_worker()
    wait_for(lambda: outcomes(redis_conn, invoice["id"]) == ["no_match"], what="the newer event")

    assert post_event(web.webhook_url, older).status_code == 200
    wait_for(lambda: len(outcomes(redis_conn, invoice["id"])) == 2, what="the older event")
    stale = list(AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])))[-1]
    assert (stale.outcome, stale.event_id) == ("stale", older["id"])
    assert sandbox.state.calls(path_contains=invoice["id"]) == [], "a stale event must not reach Chargebee"


def test_a_newer_invoice_updated_after_an_older_one_is_acted_on(sandbox, web, redis_conn, start_worker):
    invoice = exhausted_invoice(sandbox)
    older = make_event(version(invoice, 1000, dunning_status="in_progress"), event_type="invoice_updated")
    newer = make_event(version(invoice, 2000), event_type="invoice_updated")
    assert post_event(web.webhook_url, older).status_code == 200
    start_worker()
    wait_for(lambda: outcomes(redis_conn, invoice["id"]) == ["no_match"], what="the older event")

    assert post_event(web.webhook_url, newer).status_code == 200
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), what="the newer event")
    assert len(sandbox.state.write_off_calls()) == 1


def test_the_same_event_evaluated_twice_is_not_stale(sandbox, web, redis_conn, settings):
    """A retry or a replay carries the version already recorded: equal is not older."""
    from reactor.jobs import build_context, run_evaluation

    invoice = exhausted_invoice(sandbox, dunning_status="in_progress")
    event = make_event(invoice, event_type="invoice_updated")
    assert post_event(web.webhook_url, event).status_code == 200
    context = build_context(settings, redis_conn)
    assert run_evaluation(context, event["id"])["outcome"] == "no_match"
    assert run_evaluation(context, event["id"])["outcome"] == "no_match"


def test_the_version_outlives_a_trace_filled_to_its_cap_and_past_it(sandbox, web, redis_conn, start_worker):
    """The newest version is the head of the invoice's trace list (reactor/ingest/trace_list.py): every
    writer trims the list to its cap and keeps that head, so no number of receipts, calls or decisions
    after it makes an older event look new."""
    invoice = exhausted_invoice(sandbox)
    newer = make_event(version(invoice, 2000, dunning_status="in_progress"), event_type="invoice_updated")
    assert post_event(web.webhook_url, newer).status_code == 200
    start_worker()
    wait_for(lambda: outcomes(redis_conn, invoice["id"]) == ["no_match"], what="the newer event")
    trace = KEYS.trace(invoice["id"])
    for _ in range(20):  # Chargebee's redeliveries: their receipts, trimmed by the webhook's script
        assert post_event(web.webhook_url, newer).json()["status"] == "duplicate"
    log = TraceLog(redis_conn, KEYS)
    for n in range(2 * TRACE_CAP):  # what a job records, trimmed by the trace log's script
        log.add(invoice["id"], {"kind": "call", "method": "GET", "path": f"/filler/{n}", "status": 200})
    assert redis_conn.llen(trace) == TRACE_CAP
    assert redis_conn.lindex(trace, 0) == f"version {invoice['resource_version'] + 2000}".encode()

    older = make_event(version(invoice, 1000), event_type="invoice_updated")
    assert post_event(web.webhook_url, older).status_code == 200  # its receipt trimmed by the accept script
    wait_for(lambda: len(outcomes(redis_conn, invoice["id"])) == 2, what="the older event")

    assert outcomes(redis_conn, invoice["id"]) == ["no_match", "stale"]
    assert sandbox.state.calls(path_contains=invoice["id"]) == [], "a stale event must not reach Chargebee"
    stored = redis_conn.lrange(trace, 0, -1)
    assert len(stored) == TRACE_CAP and read_trace_list(stored).version == invoice["resource_version"] + 2000
    assert stored[-1].startswith(b"audit "), "the newest entry: the stale record's id"


def test_a_version_an_earlier_release_kept_in_its_own_key_still_makes_an_older_event_stale(
    sandbox, web, redis_conn, start_worker
):
    invoice = exhausted_invoice(sandbox)  # writable: acting on the older event would write it off
    legacy = KEYS.resource_version(invoice["id"])
    redis_conn.set(legacy, invoice["resource_version"] + 2000, ex=30 * 24 * 3600)  # as releases before kept it
    start_worker()

    older = make_event(version(invoice, 1000), event_type="invoice_updated")
    assert post_event(web.webhook_url, older).status_code == 200
    wait_for(lambda: outcomes(redis_conn, invoice["id"]) == ["stale"], what="the older event")
    assert sandbox.state.calls(path_contains=invoice["id"]) == []

    newest = make_event(version(invoice, 3000), event_type="invoice_updated")
    assert post_event(web.webhook_url, newest).status_code == 200
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), what="the newest event")
    assert redis_conn.get(legacy) == str(invoice["resource_version"] + 2000).encode(), "read, never written"
    assert read_trace_list(redis_conn.lrange(KEYS.trace(invoice["id"]), 0, -1)).version == (
        invoice["resource_version"] + 3000
    )


DAY_AHEAD_MS = 23 * 3600 * 1000  # inside the webhook's one-day bound (RESOURCE_VERSION_MAX_AHEAD_MS)


@pytest.mark.parametrize("forged_occurred_at", [False, True], ids=["occurred_at-genuine", "occurred_at-forged-too"])
def test_a_version_far_ahead_of_its_event_is_decided_but_never_makes_the_next_genuine_event_stale(
    sandbox, web, redis_conn, start_worker, forged_occurred_at
):
    invoice = exhausted_invoice(sandbox)  # writable: the genuine event writes it off
    forged = make_event(version(invoice, DAY_AHEAD_MS, dunning_status="in_progress"), event_type="invoice_updated")
    if forged_occurred_at:  # then it is the worker's clock the version is too far ahead of
        forged["occurred_at"] += DAY_AHEAD_MS // 1000
    assert post_event(web.webhook_url, forged).status_code == 200
    start_worker()
    wait_for(lambda: outcomes(redis_conn, invoice["id"]) == ["no_match"], what="the forged event, decided")
    trace = KEYS.trace(invoice["id"])
    assert read_trace_list(redis_conn.lrange(trace, 0, -1)).version is None, "its version is not kept"
    (note,) = [entry for entry in TraceLog(redis_conn, KEYS).entries(invoice["id"]) if entry["kind"] == "unordered"]
    against = "this worker's clock" if forged_occurred_at else "its occurred_at"
    assert (note["event_id"], note["resource_version"]) == (forged["id"], invoice["resource_version"] + DAY_AHEAD_MS)
    assert f"ahead of {against} (at most 300 s from Chargebee)" in note["reason"]

    genuine = make_event(version(invoice, 1000), event_type="invoice_updated")
    assert post_event(web.webhook_url, genuine).status_code == 200
    wait_for(lambda: len(outcomes(redis_conn, invoice["id"])) == 2, what="the genuine event")

    assert outcomes(redis_conn, invoice["id"]) == ["no_match", "written_off"]
    assert len(sandbox.state.write_off_calls()) == 1
    assert read_trace_list(redis_conn.lrange(trace, 0, -1)).version == invoice["resource_version"] + 1000


def test_a_version_kept_far_ahead_of_the_clock_is_not_compared_but_replaced(sandbox, web, redis_conn, start_worker):
    """One kept before versions were bounded: it would have made every genuine event stale for a day."""
    invoice = exhausted_invoice(sandbox)
    trace = KEYS.trace(invoice["id"])
    redis_conn.lpush(trace, f"version {invoice['resource_version'] + DAY_AHEAD_MS}")
    start_worker()

    genuine = make_event(version(invoice, 1000), event_type="invoice_updated")
    assert post_event(web.webhook_url, genuine).status_code == 200
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), what="the genuine event")
    assert read_trace_list(redis_conn.lrange(trace, 0, -1)).version == invoice["resource_version"] + 1000
