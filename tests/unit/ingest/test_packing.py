"""Packing of stored bodies: lossless, much smaller than the JSON, and JSON stored unpacked by an
earlier release read as it is."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import pytest

from reactor.ingest.packing import DICTIONARY_V1, MARK, UnpackError, pack, unpack

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "chargebee"


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_a_real_event_packs_to_a_fraction_and_back_byte_for_byte(name):
    body = (FIXTURES / f"{name}.json").read_bytes()
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    for data in (body, compact):
        packed = pack(data)
        assert packed.startswith(MARK) and unpack(packed) == data
        assert len(packed) < len(zlib.compress(data, 9)) * 0.8, "the dictionary saves at least a fifth over zlib"
        assert len(packed) < len(compact) / 3


def test_json_stored_before_packing_reads_as_it_is():
    for stored in (b'{"id":"ev_1"}', b"  {}", b"[]", b""):
        assert unpack(stored) == stored


def test_unicode_and_empty_bodies_round_trip():
    for data in ('{"n":"Zoë — 東京"}'.encode(), b"", b"{}" * 5000):
        assert unpack(pack(data)) == data


@pytest.mark.parametrize(
    "stored",
    [
        MARK,
        MARK + b"\x09" + pack(b"{}")[2:],
        MARK + b"\x01" + b"not deflate",
        pack(b'{"a":"' + b"x" * 300 + b'"}')[:-6],
    ],
    ids=["mark only", "unknown dictionary", "damaged", "cut short"],
)
def test_a_packed_value_that_does_not_unpack_is_an_error_not_a_wrong_body(stored):
    with pytest.raises(UnpackError):
        unpack(stored)


def test_the_shipped_dictionary_never_changes():
    """Values packed with it stay in Redis for 30 days (trace entries 400): a new dictionary is a new version."""
    assert hashlib.sha256(DICTIONARY_V1).hexdigest()[:16] == EXPECTED_DIGEST


EXPECTED_DIGEST = "60f084b674aa98fa"
