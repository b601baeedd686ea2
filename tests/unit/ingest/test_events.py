"""The envelope parser: what is accepted, and the sentence for what is not."""

import json

import pytest

from reactor.ingest.envelope import EnvelopeError, parse_event


def body(**fields):
    event = {
        "id": "ev_1",
        "event_type": "payment_failed",
        "api_version": "v2",
        "content": {"invoice": {"id": "i1"}},
    }
    event.update(fields)
    return json.dumps({k: v for k, v in event.items() if v is not None}).encode()


def test_a_valid_event_keeps_its_raw_body_and_names_its_invoice():
    raw = body()
    event = parse_event(raw)
    assert (event.id, event.event_type, event.invoice_id, event.raw) == ("ev_1", "payment_failed", "i1", raw)


def test_an_event_without_api_version_is_accepted():
    assert parse_event(body(api_version=None)).id == "ev_1"


def test_an_event_without_an_invoice_has_no_invoice_id():
    assert parse_event(body(content={"customer": {"id": "c"}})).invoice_id is None


def test_the_time_of_receipt_can_be_given():
    version = {"invoice": {"id": "i1", "resource_version": 1_000_000_000_000 + 86_400_000}}
    assert parse_event(body(content=version), now=1_000_000_000).invoice_id == "i1"
    with pytest.raises(EnvelopeError, match="ahead of the time of receipt"):
        parse_event(body(content=version), now=1_000_000_000 - 1)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty body"),
        (b"{", "not valid JSON"),
        (b"null", "expected a JSON object"),
        (body(id=""), "missing field 'id'"),
        (body(id=7), "missing field 'id'"),
        (body(id="x" * 41), "at most 40"),
        (body(id=" ev_1"), "not a Chargebee event id"),
        (body(id="ev_1*"), "not a Chargebee event id"),
        (body(content={"invoice": {"id": ".."}}), "'content.invoice.id' is not a Chargebee invoice id"),
        (body(content={"invoice": {"id": "i1", "due_date": 10**20}}), "'content.invoice.due_date' is 1000"),
        (body(content={"invoice": {"id": "i1", "amount_due": 2**63}}), "'content.invoice.amount_due'"),
        (body(occurred_at=True), "'occurred_at' is true"),
        (body(event_type="Payment Failed"), "event_type"),
        (body(content=[]), "missing field 'content'"),
        (body(api_version="v1"), "API version v2"),
        (body(content={"invoice": "inv_1"}), "content.invoice must be an object"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_bad_envelopes_are_refused_with_a_reason(raw, message):
    with pytest.raises(EnvelopeError, match=message):
        parse_event(raw)
