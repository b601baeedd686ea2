"""Stored events and trace entries are packed (reactor/ingest/packing.py); what a release before
packing stored (raw JSON, still in a deployer's Redis for up to 30 days) keeps working: decided,
replayed by id and by selection, traced, shown in the dead letters, all on real workers."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from reactor.ingest.packing import MARK, unpack
from reactor.ingest.receipts import receipt
from reactor.ingest.trace_list import read_trace_list
from reactor.keys import Keys
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event
from tests.integration.ops_helpers import make_dead_letter, reactor

pytestmark = pytest.mark.integration

KEYS = Keys()


def store_as_before(redis_conn, event: dict) -> None:
    """The event and its receipt as a release before packing stored them: JSON as received."""
    redis_conn.set(KEYS.event(event["id"]), json.dumps(event).encode(), ex=30 * 24 * 3600)
    invoice = event["content"]["invoice"]
    at = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
    redis_conn.rpush(KEYS.trace(invoice["id"]), receipt(event["id"], event["event_type"], invoice, "queued", at))


def traced(settings, some_id: str) -> str:
    result = reactor(settings, "trace", some_id)
    assert result.exit_code == 0, result.output
    return result.output


def test_an_event_stored_unpacked_by_an_earlier_release_is_replayed_by_id_and_traced(
    sandbox, settings, redis_conn, start_worker
):
    invoice = exhausted_invoice(sandbox)
    event = make_event(invoice)
    store_as_before(redis_conn, event)
    assert not redis_conn.get(KEYS.event(event["id"])).startswith(MARK)
    start_worker()
    replayed = reactor(settings, "events", "replay", event["id"])
    assert replayed.exit_code == 0, replayed.output
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="written_off")
    assert sandbox.state.get_invoice(invoice["id"])["status"] == "paid"
    # The old receipt (JSON) and the new decision (packed) share the list; the trace reads both,
    # and finds the invoice from the event id through the unpacked body.
    stored = read_trace_list(redis_conn.lrange(KEYS.trace(invoice["id"]), 0, -1)).entries
    assert not stored[0].startswith(MARK) and any(entry.startswith(MARK) for entry in stored[1:])
    text = traced(settings, event["id"])
    assert f"event {event['id']} payment_failed received: queued" in text
    assert "decision (event as received): write_off by rule dunning-exhausted-small-balance" in text
    assert "outcome written_off, 12.50 USD" in text


def test_old_and_new_stored_events_in_the_dead_letters_and_in_a_replay_by_selection(
    sandbox, web, settings, redis_conn, start_worker
):
    old_invoice, new_invoice = exhausted_invoice(sandbox), exhausted_invoice(sandbox, customer_id="cus_packed")
    old_event, new_event = make_event(old_invoice), make_event(new_invoice)
    letter = make_dead_letter(redis_conn, settings, old_event)  # stores the event as JSON, as before
    assert not redis_conn.get(KEYS.event(old_event["id"])).startswith(MARK)
    assert post_event(web.webhook_url, new_event).json()["status"] == "queued"
    packed = redis_conn.get(KEYS.event(new_event["id"]))
    assert packed.startswith(MARK) and json.loads(unpack(packed)) == new_event

    shown = reactor(settings, "dlq", "show", letter.id)
    assert shown.exit_code == 0, shown.output
    assert old_invoice["id"] in shown.output and "dunning_status" in shown.output
    selected = reactor(settings, "events", "replay", "--event-type", "payment_failed", "--dry-run")
    assert selected.exit_code == 0, selected.output

    start_worker()
    wait_for(lambda: "written_off" in outcomes(redis_conn, new_invoice["id"]), timeout=30, what="new written_off")
    requeued = reactor(settings, "dlq", "replay", letter.id)
    assert requeued.exit_code == 0, requeued.output
    wait_for(lambda: "written_off" in outcomes(redis_conn, old_invoice["id"]), timeout=30, what="old written_off")
    # By selection (the audit names the packed event now): decided again, not written off again.
    before = len(outcomes(redis_conn, new_invoice["id"]))
    by_selection = reactor(settings, "events", "replay", "--invoice", new_invoice["id"], "--yes")
    assert by_selection.exit_code == 0 and "1 event" in by_selection.output, by_selection.output
    wait_for(lambda: len(outcomes(redis_conn, new_invoice["id"])) > before, timeout=30, what="the replay decided")
    assert outcomes(redis_conn, new_invoice["id"]).count("written_off") == 1
    assert traced(settings, new_event["id"]).count("outcome written_off") == 1
