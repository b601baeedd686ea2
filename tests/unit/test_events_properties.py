"""Properties of the envelope parser, which reads bytes from anyone on the internet: whatever the body,
parse_event answers with an Event that is safe to store and act on, or an EnvelopeError that says
why; nothing else escapes, and no body takes long."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reactor.events import MAX_EVENT_ID_LENGTH, EnvelopeError, Event, parse_event

BOUNDED = settings(max_examples=400, deadline=1000, suppress_health_check=[HealthCheck.too_slow])

# Text including lone surrogates: json.dumps escapes them (\ud800), as a hostile sender would.
TEXT = st.one_of(st.text(max_size=8), st.text(st.characters(categories=["Cs", "Ll", "Nd"]), max_size=4))
JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**4200, max_value=10**4290),  # near the 4300-digit limit
        st.floats(allow_nan=True, allow_infinity=True),
        TEXT,
    ),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
    max_leaves=25,
)
IDS = st.one_of(st.text(max_size=50), TEXT, st.from_regex(r"\Aev_[A-Za-z0-9]{1,30}\Z"), JSON)
TYPES = st.one_of(
    st.sampled_from(["payment_failed", "invoice_updated", "Payment", "1x", ""]), st.text(max_size=8), JSON
)
INVOICES = st.one_of(JSON, st.fixed_dictionaries({"id": IDS}, optional={"amount_due": JSON, "currency_code": JSON}))
ENVELOPES = st.fixed_dictionaries(
    {},
    optional={
        "id": IDS,
        "event_type": TYPES,
        "api_version": st.one_of(st.just("v2"), st.just("v1"), JSON),
        "content": st.one_of(JSON, st.fixed_dictionaries({}, optional={"invoice": INVOICES, "customer": JSON})),
    },
)


def answers_cleanly(body: bytes) -> Event | None:
    """The property itself: an Event fit to store, or an EnvelopeError with a message."""
    started = time.monotonic()
    try:
        event = parse_event(body)
    except EnvelopeError as exc:
        assert str(exc), "an EnvelopeError must say why"
        event = None
    else:
        assert isinstance(event, Event) and event.raw == body
        assert isinstance(event.id, str) and 0 < len(event.id) <= MAX_EVENT_ID_LENGTH and event.id.isprintable()
        assert isinstance(event.event_type, str) and event.event_type
        assert isinstance(event.content, dict)
        assert event.invoice_id is None or isinstance(event.invoice_id, str)
        # What the web and the worker do with it next must not fail either: Redis keys, job
        # descriptions and audit fields are UTF-8, and JSON logs serialise the content.
        event.id.encode()
        event.event_type.encode()
        (event.invoice_id or "").encode()
        json.dumps(event.content, ensure_ascii=False).encode()
    assert time.monotonic() - started < 1.0
    return event


@BOUNDED
@given(st.binary(max_size=2000))
def test_any_bytes_give_an_event_or_a_clear_error(body: bytes) -> None:
    answers_cleanly(body)


@BOUNDED
@given(JSON)
def test_any_json_value_gives_an_event_or_a_clear_error(value: object) -> None:
    answers_cleanly(json.dumps(value).encode())


@BOUNDED
@given(ENVELOPES)
@example({"id": "ev_1", "event_type": "payment_failed", "content": {"invoice": {"id": "inv_1"}}})
def test_any_envelope_shape_gives_an_event_or_a_clear_error(envelope: dict) -> None:
    answers_cleanly(json.dumps(envelope).encode())


@BOUNDED
@given(ENVELOPES)
def test_escaped_and_raw_unicode_bodies_give_the_same_answer(envelope: dict) -> None:
    escaped = answers_cleanly(json.dumps(envelope, ensure_ascii=True).encode())
    try:
        raw = json.dumps(envelope, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return  # a lone surrogate cannot even be sent raw
    assert (escaped is None) == (answers_cleanly(raw) is None)


def test_a_valid_event_still_parses() -> None:
    event = answers_cleanly(
        b'{"id":"ev_1","event_type":"payment_failed","api_version":"v2","content":{"invoice":{"id":"inv_1"}}}'
    )
    assert event is not None and event.invoice_id == "inv_1"


ENVELOPE = '{{"id":"ev_1","event_type":"payment_failed","content":{{"invoice":{{"id":{invoice_id}}},"x":{x}}}}}'


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 200_000, id="deep-unclosed-array"),
        pytest.param(b"[" * 200_000 + b"]" * 200_000, id="deep-array"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="deep-object"),
        pytest.param(ENVELOPE.format(invoice_id='"i"', x="[" * 50_000 + "]" * 50_000).encode(), id="deep-content"),
        pytest.param(ENVELOPE.format(invoice_id='"i"', x="1" * 100_000).encode(), id="huge-integer"),
        pytest.param(ENVELOPE.format(invoice_id='"i"', x="1e999999").encode(), id="huge-float"),
        pytest.param(ENVELOPE.format(invoice_id='"i"', x="-" + "9" * 5000).encode(), id="long-negative-integer"),
        pytest.param(ENVELOPE.format(invoice_id='"i"', x="NaN").encode(), id="nan"),
        pytest.param(ENVELOPE.format(invoice_id='"\\ud800"', x="1").encode(), id="lone-surrogate-invoice-id"),
        pytest.param(ENVELOPE.format(invoice_id='"i"', x='"\\udfff\\ud800"').encode(), id="lone-surrogates-in-content"),
        pytest.param(ENVELOPE.format(invoice_id='"i"', x='"\\ud83d\\ude00"').encode(), id="surrogate-pair-emoji"),
        pytest.param(
            b'{"id":"ev_1","event_type":"payment_failed","content":{"invoice":{"id":"\xed\xa0\x80"}}}', id="cesu"
        ),
        pytest.param(b"\xef\xbb\xbf" + ENVELOPE.format(invoice_id='"i"', x="1").encode(), id="utf8-bom"),
        pytest.param(b"\xff\xfe{\x00}\x00", id="utf16"),
        pytest.param(b'{"id":"ev_1","id":"ev_2","event_type":"payment_failed","content":{}}', id="duplicate-keys"),
        pytest.param(b"\x00" * 1000, id="nul-bytes"),
        pytest.param(b'"' + b"\\u0000" * 10_000 + b'"', id="escaped-nuls"),
        pytest.param(
            b'{"id":"ev_1","event_type":"payment_failed","content":{"invoice":{"id":"i"}}} trailing', id="trailing"
        ),
    ],
)
def test_hostile_bodies_give_an_event_or_a_clear_error_quickly(body: bytes) -> None:
    answers_cleanly(body)
