"""Properties of the envelope parser, which reads bytes from anyone on the internet: whatever the body,
parse_event answers with an Event that is safe to store and act on, or an EnvelopeError that says
why; nothing else escapes, and no body takes long. Whatever is accepted is safe where the reactor puts
it: the event id in Redis keys and RQ job ids, the invoice id in Redis keys and Chargebee API paths,
the times in the worker's date arithmetic."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rq.job import JOB_ID_PATTERN, validate_job_id

from reactor.ids import EVENT_ID, INVOICE_ID, MAX_EVENT_ID_LENGTH
from reactor.ingest.envelope import (
    MAX_UNIX_TIME,
    RESOURCE_VERSION_MAX_AHEAD_MS,
    EnvelopeError,
    Event,
    parse_event,
)
from reactor.ingest.events import evaluation_job_id
from reactor.keys import Keys
from tests.unit.ingest.json_values import TEXT, json_values

# No Hypothesis deadline: it is wall time, which a busy machine stretches; answers_cleanly holds each
# parse to a second of this thread's CPU time instead.
BOUNDED = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON = json_values(st.integers(min_value=10**4200, max_value=10**4290))  # near the 4300-digit limit
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
    started = time.thread_time()
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
        assert_safe_to_act_on(event)
    assert time.thread_time() - started < 1.0, "a hang guard in CPU time, not a speed target"
    return event


def assert_safe_to_act_on(event: Event) -> None:
    """Where the ids of an accepted event go next, they fit without escaping or hashing."""
    job_id = evaluation_job_id(event.id)
    assert job_id == f"evaluate-{event.id}", "an accepted event id needs no digest to be a job id"
    validate_job_id(job_id)  # RQ's own check: raises on anything but letters, digits, '_' and '-'
    assert JOB_ID_PATTERN.fullmatch(event.id)
    for key in (Keys().event(event.id), Keys("p").event(event.id), Keys().in_order(event.id)):
        # ASCII, one more segment after the prefix, and nothing a SCAN/KEYS pattern would read as a glob
        assert key.isascii() and key.count(":") == 2 and not set(key) & set(" *?[]\\")
    if event.invoice_id is not None:
        segment = quote(event.invoice_id, safe="")
        assert segment == event.invoice_id, "an accepted invoice id goes into a path unchanged by quoting"
        assert segment.strip("."), "and is never a '.' or '..' segment"
        assert Keys().lock(event.invoice_id).isascii() and not set(event.invoice_id) & set(" *?[]\\/")


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


# -- the limits, as properties ---------------------------------------------------------------------

ID_TEXT = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec="ascii"), max_size=60),
    st.from_regex(r"\A[A-Za-z0-9_.:*/ %?#-]{0,55}\Z"),
    st.from_regex(r"\Aev_[A-Za-z0-9]{1,40}\Z"),
)


def with_ids(event_id: str = "ev_1", invoice_id: str = "inv_1", **invoice: object) -> bytes:
    content = {"invoice": {"id": invoice_id, **invoice}}
    return json.dumps({"id": event_id, "event_type": "payment_failed", "content": content}).encode()


@BOUNDED
@given(ID_TEXT)
@example("m_0I*")
@example("ev_" + "x" * 37)
@example("ev_" + "x" * 38)
def test_an_event_id_is_accepted_exactly_when_rq_takes_it_as_is(event_id: str) -> None:
    event = answers_cleanly(with_ids(event_id=event_id))
    rq_takes_it = JOB_ID_PATTERN.fullmatch(event_id) is not None and len(event_id) <= MAX_EVENT_ID_LENGTH
    assert (event is not None) == rq_takes_it
    assert (event is not None) == (EVENT_ID.fullmatch(event_id) is not None)


@BOUNDED
@given(ID_TEXT)
@example(".")
@example("..")
@example("...")
@example("6/../x")
def test_an_invoice_id_is_accepted_only_when_it_is_one_path_segment_as_is(invoice_id: str) -> None:
    event = answers_cleanly(with_ids(invoice_id=invoice_id))
    expected = INVOICE_ID.fullmatch(invoice_id) is not None and invoice_id.strip(".") != ""
    assert (event is not None) == expected


TIMES = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=MAX_UNIX_TIME - 10, max_value=MAX_UNIX_TIME + 10),
    st.booleans(),
    st.floats(),
)


@BOUNDED
@given(TIMES)
@example(10**20)  # once an OverflowError in the worker, retried for ~45 minutes
def test_an_accepted_due_date_survives_the_workers_date_arithmetic(due_date: object) -> None:
    event = answers_cleanly(with_ids(due_date=due_date))
    if event is not None:
        due = event.content["invoice"]["due_date"]
        assert type(due) is int and 0 <= due <= MAX_UNIX_TIME
        # rules/timing.py: datetime.fromtimestamp(due + days * 86400) for rule thresholds in days
        moment = datetime.fromtimestamp(due + 36_500 * 86_400, tz=timezone.utc) - timedelta(days=36_500)
        assert moment.timestamp() == due


OFFSETS_MS = st.one_of(st.integers(), st.integers(min_value=-5, max_value=2 * RESOURCE_VERSION_MAX_AHEAD_MS))


@BOUNDED
@given(st.integers(min_value=0, max_value=MAX_UNIX_TIME), OFFSETS_MS)
@example(1_700_000_000, RESOURCE_VERSION_MAX_AHEAD_MS)
@example(1_700_000_000, RESOURCE_VERSION_MAX_AHEAD_MS + 1)
def test_an_accepted_resource_version_is_positive_and_at_most_a_day_ahead(now: int, offset: int) -> None:
    version = now * 1000 + offset
    try:
        event = parse_event(with_ids(resource_version=version), now=now)
    except EnvelopeError as exc:
        assert "resource_version" in str(exc)
        assert version <= 0 or offset > RESOURCE_VERSION_MAX_AHEAD_MS
    else:
        assert event.content["invoice"]["resource_version"] == version
        assert version > 0 and offset <= RESOURCE_VERSION_MAX_AHEAD_MS
