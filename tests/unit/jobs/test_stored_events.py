"""The events a job holds as dicts, read through Event (reactor/jobs/stored_events.py)."""

from __future__ import annotations

import json

import pytest

from reactor.ingest.envelope import parse_event
from reactor.jobs.stored_events import as_event, with_invoice

STORED = {
    "id": "ev_1",
    "event_type": "payment_failed",
    "api_version": "v2",
    "content": {"invoice": {"id": "inv_1", "amount_due": 1250}, "customer": {"id": "cus_1"}},
}


def test_a_stored_event_reads_as_the_webhook_parsed_it():
    raw = json.dumps(STORED).encode()

    seen, parsed = as_event(STORED), parse_event(raw)

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
    seen = as_event(data)

    assert seen.invoice_id is None
    assert isinstance(seen.id, str) and isinstance(seen.event_type, str) and isinstance(seen.content, dict)


def test_with_invoice_is_a_copy_with_the_fresh_invoice_in_its_place():
    fresh = with_invoice(STORED, {"id": "inv_1", "status": "paid"})

    assert fresh["content"]["invoice"] == {"id": "inv_1", "status": "paid"}
    assert list(fresh["content"]) == ["invoice", "customer"]
    assert STORED["content"]["invoice"] == {"id": "inv_1", "amount_due": 1250}  # the original is untouched
    fresh["content"]["customer"]["id"] = "cus_2"
    assert STORED["content"]["customer"]["id"] == "cus_1"
    assert with_invoice({"id": "ev_4"}, {"id": "inv_4"})["content"] == {"invoice": {"id": "inv_4"}}
