"""An event stored or handed on as a dict, read as an Event (reactor/ingest/envelope.py `Event.from_data`)."""

from __future__ import annotations

import json

import pytest

from reactor.ingest.envelope import Event, parse_event

STORED = {
    "id": "ev_1",
    "event_type": "payment_failed",
    "api_version": "v2",
    "content": {"invoice": {"id": "inv_1", "amount_due": 1250}, "customer": {"id": "cus_1"}},
}


def test_a_stored_event_reads_as_the_webhook_parsed_it():
    raw = json.dumps(STORED).encode()

    seen, parsed = Event.from_data(STORED), parse_event(raw)

    assert seen == parsed  # id, type, content and the raw body alike
    assert seen.invoice == {"id": "inv_1", "amount_due": 1250} and seen.invoice_id == "inv_1"


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"id": 7, "event_type": None, "content": "not an object"},
        {"id": "ev_2", "content": {"invoice": ["not", "an", "object"]}},
        {"id": "ev_3", "content": {"invoice": {"id": ""}}},
    ],
)
def test_a_malformed_stored_event_reads_as_one_without_an_invoice(data):
    seen = Event.from_data(data)

    assert seen.invoice_id is None
    assert isinstance(seen.id, str) and isinstance(seen.event_type, str) and isinstance(seen.content, dict)


def test_with_invoice_is_a_copy_with_the_fresh_invoice_in_its_place():
    fresh = Event.from_data(STORED).with_invoice({"id": "inv_1", "status": "paid"})

    assert fresh.invoice == {"id": "inv_1", "status": "paid"} and fresh.id == "ev_1"
    assert list(fresh.content) == ["invoice", "customer"]
    assert fresh.data["api_version"] == "v2" and json.loads(fresh.raw) == fresh.data
    assert STORED["content"]["invoice"] == {"id": "inv_1", "amount_due": 1250}  # the original is untouched
    fresh.content["customer"]["id"] = "cus_2"
    assert STORED["content"]["customer"]["id"] == "cus_1"
    assert Event.from_data({"id": "ev_4"}).with_invoice({"id": "inv_4"}).content == {"invoice": {"id": "inv_4"}}


def test_a_parsed_event_keeps_its_body_as_data():
    raw = json.dumps(STORED).encode()

    assert parse_event(raw).data == STORED
    assert Event(id="ev_1", event_type="payment_failed", content={}, raw=raw).data == STORED
