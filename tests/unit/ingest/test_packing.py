"""Packing of stored bodies: lossless, much smaller than the JSON, and JSON stored unpacked by an
earlier release read as it is."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import pytest

from reactor.ingest.packing import DICTIONARY_SMALL_V2, DICTIONARY_V1, MARK, SMALL, UnpackError, pack, unpack
from reactor.ingest.receipts import receipt

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


def test_a_receipt_packs_with_the_small_dictionary_to_a_third():
    stored = receipt("ev_16BjvVUWYVDnO2VP", "payment_failed", {"resource_version": 1795736546067}, "queued").encode()
    packed = pack(stored)
    assert len(stored) < SMALL and packed[:2] == MARK + b"\x02" and unpack(packed) == stored
    assert len(packed) < len(stored) / 2.5
    assert pack(b"{" + b" " * SMALL + b"}")[:2] == MARK + b"\x01"


def test_the_shipped_dictionaries_never_change():
    """Values packed with them stay in Redis for 30 days (trace entries 400): a new dictionary is a
    new version byte, and the old ones stay readable."""
    digests = [hashlib.sha256(d).hexdigest()[:16] for d in (DICTIONARY_V1, DICTIONARY_SMALL_V2)]
    assert digests == ["02dfb7313a00e2e7", "ac7ac342539861f5"]
