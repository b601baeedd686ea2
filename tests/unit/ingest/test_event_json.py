"""The webhook reads bodies with orjson where it reads them as Python's json does, and with Python's
json otherwise (reactor/ingest/envelope.py, `_strict_json`): for every body the answer must be the
one Python's json alone gives, the same value or the same refusal, word for word."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reactor.ingest.envelope import EnvelopeError, _python_json, _strict_json, _utf8_text
from tests.unit.ingest.json_values import json_values

BOUNDED = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON = json_values(  # either side of what orjson reads as an integer
    st.integers(min_value=2**62, max_value=2**66),
    st.integers(max_value=-(2**62), min_value=-(2**66)),
)


def answer(read, body: bytes) -> str:
    """What a reader makes of `body`: the value exactly (repr keeps key order, -0.0 and float digits),
    or the refusal's words."""
    try:
        return "value " + repr(read(body))
    except EnvelopeError as exc:
        return f"refused: {exc}"


def python_json(body: bytes) -> object:
    """The reference: what Python's json alone answers (after the same empty and UTF-8 checks)."""
    return _python_json(_utf8_text(body))


def same_answer(body: bytes) -> None:
    assert answer(_strict_json, body) == answer(python_json, body), body[:200]


@BOUNDED
@given(JSON)
def test_every_json_value_reads_as_pythons_json_reads_it(value):
    same_answer(json.dumps(value).encode())
    same_answer(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


@BOUNDED
@given(st.binary(max_size=64))
@example(b"\xef\xbb\xbf{}")
def test_every_byte_string_reads_as_pythons_json_reads_it(body):
    same_answer(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":9223372036854775807}',
        b'{"a":9223372036854775808}',
        b'{"a":18446744073709551615}',
        b'{"a":18446744073709551616}',
        b'{"a":-9223372036854775808}',
        b'{"a":-9223372036854775809}',
        b'{"a":123456789012345678901234567890}',
        b'{"a":1' + b"0" * 4400 + b"}",
        b'{"a":1e999}',
        b'{"a":-1e999}',
        b'{"a":1e-999}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":-Infinity}',
        b'{"a":"\\ud800"}',
        b'{"a":"\\ud83d\\ude00"}',
        b'{"a":1,"a":2,"b":3}',
        b'{"a":-0.0,"b":-0,"c":0.1,"d":1.7976931348623157e308,"e":5e-324}',
        b'{"a":"x\ty"}',
        b'{"a":1}x',
        b" {} ",
        b"\xef\xbb\xbf{}",
        b"[" * 499 + b"]" * 499,
        b"[" * 900 + b"]" * 900,
        b"[" * 1000 + b"]" * 1000,
        b"[" * 1020 + b"]" * 1020,
        b"[" * 1100 + b"]" * 1100,
        b'{"a":' * 600 + b"1" + b"}" * 600,
        b"",
        b"\xff",
    ],
)
def test_bodies_at_the_edges_of_what_orjson_reads(body):
    same_answer(body)
