"""The Chargebee event envelope: parse it and refuse what Chargebee could not have sent.

`parse_event` reads a webhook body strictly (JSON, UTF-8, no lone surrogates) into an `Event`, and
checks the ids, times, amounts and versions it carries against what Chargebee's API allows, so that
nothing odd reaches Redis, RQ job ids, the audit or an API path; each refusal is an `EnvelopeError`
naming the field (the webhook answers it 400). The store that accepts a parsed event is
reactor/ingest/events.py.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import ids

# -- What the ids, times and amounts of an event may be -------------------------------------------
# Sources: [SPEC] Chargebee's OpenAPI spec, github.com/chargebee/openapi
# spec/chargebee_api_v2_pc_v2_spec.yaml (version 2026-09-24).
# Ids: reactor/ids.py, which says for every kind which characters are taken and why; the same
# checks apply to an id typed into a command, a dashboard address and the path of an API call.

# Unix times in seconds [SPEC `format: unix-time`]: 0 up to 2**32 - 1 (2106-02-07). Far wider than any
# date a live invoice carries, and far inside what datetime (year 9999) and float arithmetic hold,
# so that "due_date + N days" cannot overflow in a worker (a huge due_date once raised OverflowError
# there on every retry).
MIN_UNIX_TIME = 0
MAX_UNIX_TIME = 2**32 - 1
INVOICE_TIMES = (
    "date",
    "due_date",
    "next_retry_at",
    "expected_payment_date",
    "updated_at",
    "paid_at",
    "voided_at",
    "generated_at",
)

# Amounts in minor units are int64 [SPEC Invoice.total, amount_due, ...: `format: int64`].
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INVOICE_AMOUNTS = (
    "total",
    "sub_total",
    "tax",
    "amount_due",
    "amount_paid",
    "amount_adjusted",
    "write_off_amount",
    "credits_applied",
    "amount_to_collect",
    "round_off_amount",
    "new_sales_amount",
)
# (name, the field as a refusal names it), spelled out once rather than per event
_INVOICE_TIME_FIELDS = tuple((name, f"content.invoice.{name}") for name in INVOICE_TIMES)
_INVOICE_AMOUNT_FIELDS = tuple((name, f"content.invoice.{name}") for name in INVOICE_AMOUNTS)

# resource_version is Chargebee's clock in milliseconds at the change [SPEC: "updated with a new
# timestamp in milliseconds"], so a genuine one is in the past by the time the event reaches us.
# A version from the future would make every genuine later event of that invoice `stale` until our
# clock passes it. One day ahead is taken here: far more than any clock skew between Chargebee and
# this host. The order check keeps a version only up to a few minutes past the event's occurred_at
# and its own clock (RESOURCE_VERSION_SLACK_MS, reactor/jobs/evaluate.py), so that a forged version
# cannot silence an invoice for that day.
RESOURCE_VERSION_MAX_AHEAD_MS = 24 * 3600 * 1000
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")  # \ud800 to \udfff, as JSON writes them


class EnvelopeError(ValueError):
    """The body is not a Chargebee event we can accept; the message says why (answered as 400)."""

    event_id: str | None = None
    """The body's `id` where it is an event id (reactor/ids.py), so that the refusal's receipt is kept
    under it (reactor/ingest/receipts.py); None when the body has none."""
    event_type: str | None = None
    """The body's `event_type` where it is one (e.g. `payment_failed`), else None."""


@dataclass(frozen=True)
class Event:
    """One Chargebee event, as every wing holds it: parsed from a webhook body (`parse_event`), loaded
    from the store (reactor/ingest/events.py) or read from a dict (`from_data`)."""

    id: str
    event_type: str
    content: dict[str, Any]
    raw: bytes
    occurred_at: int | None = None
    """Unix seconds, as Chargebee stamped the event; None when it carries none."""
    _data: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_data(cls, data: Mapping[str, Any], raw: bytes | None = None) -> Event:
        """The event a dict holds (the stored body, Chargebee's own copy, a held write-off, a pending
        re-check, RQ's job arguments); `raw` is its JSON, written from the dict when not given.
        Nothing is checked again: parse_event checked what came by webhook, and an event an older
        release stored is read as it is. A field of another type reads as absent (an empty id or type,
        no content, no invoice)."""
        data = dict(data) if isinstance(data, Mapping) else {}
        event_id, event_type, content = data.get("id"), data.get("event_type"), data.get("content")
        occurred_at = data.get("occurred_at")
        return cls(
            id=event_id if isinstance(event_id, str) else "",
            event_type=event_type if isinstance(event_type, str) else "",
            content=content if isinstance(content, dict) else {},
            raw=json.dumps(data).encode() if raw is None else raw,
            occurred_at=occurred_at if isinstance(occurred_at, int) and not isinstance(occurred_at, bool) else None,
            _data=data,
        )

    @property
    def data(self) -> dict[str, Any]:
        """The event as a dict, as it goes on at the edges: RQ's job arguments, a held write-off, a
        pending re-check, and the rules, which read a Mapping. Read it, never change it."""
        if self._data is None:
            object.__setattr__(self, "_data", json.loads(self.raw))
        assert self._data is not None
        return self._data

    def with_invoice(self, invoice: dict[str, Any]) -> Event:
        """A copy of the event with `invoice` (fetched fresh) in place of the one it carried; the rest
        of its content (its type, its customer...) is what the rules decide on with it."""
        fresh = copy.deepcopy(self.data)
        content = fresh.get("content")
        fresh["content"] = {**content, "invoice": invoice} if isinstance(content, dict) else {"invoice": invoice}
        return Event.from_data(fresh)

    @property
    def invoice(self) -> dict[str, Any] | None:
        invoice = self.content.get("invoice")
        return invoice if isinstance(invoice, dict) else None

    @property
    def invoice_id(self) -> str | None:
        invoice = self.invoice
        value = invoice.get("id") if invoice else None
        return value if isinstance(value, str) and value else None


def _not_json(name: str) -> float:
    """Python's json reads NaN, Infinity and -Infinity; JSON has no such values (RFC 8259 section 6)."""
    raise EnvelopeError(f"body is not valid JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    """A number too large for a double (1e999) would be read as infinity, which cannot be written
    back as JSON: refused like Infinity itself."""
    value = float(text)
    if math.isinf(value):
        raise EnvelopeError(f"body has a number out of range: {text[:40]}")
    return value


# What json.loads(text, parse_constant=..., parse_float=...) builds anew for every call, made once.
_DECODER = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite_float)


def parse_event(body: bytes, *, now: float | None = None) -> Event:
    """Validate the envelope just enough to act on it safely; everything else is kept as sent.

    `now` (unix seconds, the time of receipt; the clock when None) bounds `resource_version`."""
    data = _json_object(body)
    try:
        event_id, event_type, content = _envelope(data)
        _check_limits(data, content, time.time() if now is None else now)
    except EnvelopeError as exc:
        exc.event_id, exc.event_type = _named(data)
        raise
    occurred_at = data.get("occurred_at")  # checked by _check_limits: an int in range, or absent
    return Event(id=event_id, event_type=event_type, content=content, raw=body, occurred_at=occurred_at, _data=data)


def _named(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """The id and type of a refused body, each where it is one an accepted event could carry."""
    event_id, event_type = data.get("id"), data.get("event_type")
    return (
        event_id if isinstance(event_id, str) and ids.EVENT.accepts(event_id) else None,
        event_type if isinstance(event_type, str) and _EVENT_TYPE.fullmatch(event_type) else None,
    )


def _json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, refused unless every consumer downstream can read it as sent."""
    data = _strict_json(body)
    _refuse_lone_surrogates(body, data)
    if not isinstance(data, dict):
        raise EnvelopeError(f"expected a JSON object (a Chargebee event), got {type(data).__name__}")
    return data


def _utf8_text(body: bytes) -> str:
    """The body as text: not empty, UTF-8; else an EnvelopeError saying which."""
    if not body:
        raise EnvelopeError("empty body: expected a Chargebee event as JSON")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"body is not UTF-8 (byte {exc.start})") from None


def _strict_json(body: bytes) -> Any:
    """UTF-8 JSON as RFC 8259 has it: no NaN or Infinity, no number a double cannot hold; each way
    Python's json can fail is answered with one sentence instead of a 500.

    Read by orjson where it gives what Python's json gives (a third of the CPU: docs/benchmarks.md,
    "Ingest"), by Python's json otherwise and for every refusal, so that each is worded as before."""
    text = _utf8_text(body)
    if _orjson_reads_as_json(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # refused: Python's json says why, in its words
    return _python_json(text)


# orjson refuses what Python's json is told to refuse here (NaN, Infinity, a number a double cannot
# hold) and more (lone surrogate escapes, a byte-order mark, nesting deeper than 1024), all of which
# then go to Python's json. Where the two read an accepted body differently, the body goes to
# Python's json first: an integer beyond 64 bits (orjson gives a float; 19 digits in a row are
# enough to look further), and nesting that Python's json or a worker's json.loads could find too
# deep (fewer than 500 brackets in all cannot nest that deep).
_DIGITS_AS_ZEROS = bytes(ord("0") if ord("0") <= i <= ord("9") else ord(" ") for i in range(256))
_LONG_DIGITS = b"0" * 19  # found in the body with every digit made a 0: some ten times faster than a regex
_MAX_BRACKETS = 500


def _orjson_reads_as_json(body: bytes) -> bool:
    if body.count(b"[") + body.count(b"{") >= _MAX_BRACKETS:
        return False
    return _LONG_DIGITS not in body.translate(_DIGITS_AS_ZEROS)


def _python_json(text: str) -> Any:
    try:
        if text.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _DECODER.decode(text)
    except EnvelopeError:
        raise
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise EnvelopeError("body is nested too deeply") from None
    except ValueError as exc:  # an integer longer than Python's int_max_str_digits (4300)
        raise EnvelopeError(f"body is not usable JSON: {str(exc)[:80]}") from None


def _refuse_lone_surrogates(body: bytes, data: Any) -> None:
    """A \\ud800-style escape decodes to a lone surrogate, which no UTF-8 consumer downstream (Redis
    keys, job descriptions, the audit stream, Chargebee's API) can encode. The strict UTF-8 decode
    already refused surrogates sent as bytes, so only a body with such an escape is walked."""
    if not _SURROGATE_ESCAPE.search(body):
        return
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        message = "body has an unpaired UTF-16 surrogate escape (e.g. \\ud800): not valid Unicode"
        raise EnvelopeError(message) from None
    except (RecursionError, ValueError):
        raise EnvelopeError("body is nested too deeply") from None


def _envelope(data: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """The event's id, type and content: what every event must carry for the reactor to store it,
    enqueue it (the id names the job) and route it; an invoice, when there is one, must have an id."""
    event_id = data.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise EnvelopeError("missing field 'id': every Chargebee event has a string id")
    if not ids.EVENT.accepts(event_id):
        raise EnvelopeError(f"field 'id' is not a Chargebee {ids.EVENT.name}: {ids.EVENT.rule}")
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
        raise EnvelopeError("missing or malformed field 'event_type' (e.g. 'payment_failed')")
    content = data.get("content")
    if not isinstance(content, dict):
        raise EnvelopeError("missing field 'content': expected an object keyed by resource, e.g. content.invoice")
    api_version = data.get("api_version")
    if api_version is not None and api_version != "v2":
        raise EnvelopeError(f"api_version is {api_version!r}; configure the Chargebee webhook with API version v2")
    invoice = content.get("invoice")
    if invoice is not None:
        if not isinstance(invoice, dict):
            raise EnvelopeError("content.invoice must be an object")
        invoice_id = invoice.get("id")
        if not isinstance(invoice_id, str) or not invoice_id:
            raise EnvelopeError("content.invoice has no string 'id'")
    return event_id, event_type, content


def _check_limits(data: dict[str, Any], content: dict[str, Any], now: float) -> None:
    """The ids, times and amounts the reactor reads or acts on must be ones Chargebee could send."""
    _unix_time(data, "occurred_at", "occurred_at")
    invoice = content.get("invoice")
    if invoice is not None:  # already known to be an object with a string id
        _id(ids.INVOICE, invoice["id"], "content.invoice.id")
        _id(ids.CUSTOMER, invoice.get("customer_id"), "content.invoice.customer_id")
        _id(ids.SUBSCRIPTION, invoice.get("subscription_id"), "content.invoice.subscription_id")
        for name, field in _INVOICE_TIME_FIELDS:
            _unix_time(invoice, name, field)
        for name, field in _INVOICE_AMOUNT_FIELDS:
            _amount(invoice, name, field)
    for name, kind in (("customer", ids.CUSTOMER), ("subscription", ids.SUBSCRIPTION)):
        resource = content.get(name)
        if resource is not None:
            if not isinstance(resource, dict):
                raise EnvelopeError(f"content.{name} must be an object")
            _id(kind, resource.get("id"), f"content.{name}.id")
    transaction = content.get("transaction")
    if transaction is not None:
        if not isinstance(transaction, dict):
            raise EnvelopeError("content.transaction must be an object")
        linked = transaction.get("linked_invoices")
        if linked is not None:
            if not isinstance(linked, list):
                raise EnvelopeError("content.transaction.linked_invoices must be a list")
            for i, link in enumerate(linked):
                field = f"content.transaction.linked_invoices[{i}]"
                if not isinstance(link, dict) or not isinstance(link.get("invoice_id"), str):
                    raise EnvelopeError(f"{field} has no string 'invoice_id'")
                _id(ids.INVOICE, link["invoice_id"], f"{field}.invoice_id")
    latest_version = int(now * 1000) + RESOURCE_VERSION_MAX_AHEAD_MS
    for field, resource in _resources(content):
        _unix_time(resource, "updated_at", f"{field}.updated_at")
        _resource_version(resource, f"{field}.resource_version", latest_version)


def _resources(content: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every resource in the content, with its field name: content.<name> or content.<name>[i]."""
    for name, value in content.items():
        if isinstance(value, dict):
            yield f"content.{name}", value
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    yield f"content.{name}[{i}]", item


def _id(kind: ids.IdKind, value: Any, field: str) -> None:
    """An id of `kind` when present (null is absent; an invoice id is known to be a string here)."""
    if value is not None and not (isinstance(value, str) and kind.accepts(value)):
        raise EnvelopeError(f"field '{field}' is not a Chargebee {kind.name}: {kind.rule}")


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a number


def _shown(value: Any) -> str:
    """A refused number as the message shows it: whole if short, else its size."""
    if _integer(value):
        digits = str(abs(value))
        return str(value) if len(digits) <= 24 else f"a {len(digits)}-digit number"
    if isinstance(value, bool):
        return "true" if value else "false"
    kinds = {float: "a number with a fraction or exponent", str: "a string", list: "an array", dict: "an object"}
    return kinds.get(type(value), "null")


def _unix_time(resource: dict[str, Any], name: str, field: str) -> None:
    value = resource.get(name)
    if value is None or (type(value) is int and MIN_UNIX_TIME <= value <= MAX_UNIX_TIME):  # the usual case
        return
    if not _integer(value) or not MIN_UNIX_TIME <= value <= MAX_UNIX_TIME:
        raise EnvelopeError(
            f"field '{field}' is {_shown(value)}: expected unix seconds between {MIN_UNIX_TIME} and"
            f" {MAX_UNIX_TIME} (1970 to 2106)"
        )


def _amount(resource: dict[str, Any], name: str, field: str) -> None:
    value = resource.get(name)
    if value is None or (type(value) is int and INT64_MIN <= value <= INT64_MAX):  # the usual case
        return
    if not _integer(value) or not INT64_MIN <= value <= INT64_MAX:
        raise EnvelopeError(f"field '{field}' is {_shown(value)}: expected a whole amount in minor units (int64)")


def _resource_version(resource: dict[str, Any], field: str, latest: int) -> None:
    value = resource.get("resource_version")
    if value is None:
        return
    if not _integer(value) or value <= 0:
        raise EnvelopeError(f"field '{field}' is {_shown(value)}: expected a positive timestamp in milliseconds")
    if value > latest:
        raise EnvelopeError(
            f"field '{field}' is {_shown(value)}: more than a day ahead of the time of receipt ({latest} ms at most)"
        )
