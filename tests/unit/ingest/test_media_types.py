"""What the webhook takes before it reads a body: Content-Type and Content-Encoding (415 otherwise),
and JSON's own numbers only (NaN and Infinity are Python's, not JSON's)."""

from __future__ import annotations

import json

import pytest

from reactor.ingest.envelope import EnvelopeError, parse_event
from reactor.ingest.webhook import unsupported_media

EVENT = {"id": "ev_1", "event_type": "payment_failed", "api_version": "v2", "content": {"invoice": {"id": "6"}}}


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("application/json", None),
        ("application/json", ""),
        ("application/json", "identity"),
        ("application/json", "IDENTITY"),
        ("application/json; charset=utf-8", None),
        ("application/json;charset=UTF8", None),
        ('application/json; charset="utf-8"', None),
        ("APPLICATION/JSON", None),
        ("application/json; version=2", None),
    ],
)
def test_taken(content_type, encoding):
    assert unsupported_media(content_type, encoding) is None


@pytest.mark.parametrize(
    ("content_type", "encoding", "says"),
    [
        ("application/json", "gzip", "Content-Encoding 'gzip'"),
        ("application/json", "br", "Content-Encoding 'br'"),
        ("application/json", "identity, gzip", "Content-Encoding"),
        (None, None, "got none"),
        ("", None, "got none"),
        ("text/plain", None, "got 'text/plain'"),
        ("application/jsonx", None, "Content-Type must be application/json"),
        ("application/json; charset=iso-8859-1", None, "charset"),
        ("application/problem+json", None, "Content-Type must be application/json"),
    ],
)
def test_refused_with_a_reason(content_type, encoding, says):
    reason = unsupported_media(content_type, encoding)
    assert reason is not None and says in reason
    assert "UTF-8" not in reason or "charset" in reason


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_nan_and_infinity_are_refused_anywhere_in_the_body(token):
    body = json.dumps({**EVENT, "content": {"invoice": {"id": "6"}, "extra": {"x": [1, "__"]}}}).replace('"__"', token)
    with pytest.raises(EnvelopeError, match=r"not valid JSON|out of range"):
        parse_event(body.encode())


def test_ordinary_floats_are_still_taken():
    body = json.dumps({**EVENT, "content": {"invoice": {"id": "6"}, "extra": {"rate": 0.175, "big": 1e300}}})
    assert parse_event(body.encode()).content["extra"] == {"rate": 0.175, "big": 1e300}
