"""What a Chargebee id may be, checked in one place for every way one comes in: a webhook's envelope
(reactor/ingest/envelope.py), a command's argument or option (reactor/cli/), a dashboard address
(reactor/dashboard/), and the path of a Chargebee API call (reactor/chargebee/client.py), which
refuses an id it cannot put in a path before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

# Sources: [SPEC] Chargebee's OpenAPI spec, github.com/chargebee/openapi
# spec/chargebee_api_v2_pc_v2_spec.yaml (version 2026-09-24);
# [NUMBERING] https://www.chargebee.com/docs/invoice-numbering.html.
# The spec gives lengths and types but no `pattern` for any of these ids, so every alphabet below is
# a choice, and where it is not confirmed it only admits characters that are harmless as they are
# used here: in Redis keys, in RQ job ids (`evaluate-<event id>`) and, percent-quoted, in the path of
# a Chargebee API call (where quoting cannot help `.` and `..`, so those are refused by name: a path
# `/invoices/..` is `/` to every HTTP client and server on the way).
#
#     event id          1 to 40 ASCII letters, digits, '_', '-'
#     invoice id        1 to 50 ASCII letters, digits, '_', '-', '.'; not only dots
#     customer id,      1 to 50 printable characters; no space at either end, none of " ' ` \ % ? #,
#     subscription id   not only dots; in the path of an API call, no '/'

# Event ids [SPEC Event.id]: alphabet UNCONFIRMED. Chargebee makes them itself and every one seen is
# `ev_` and letters/digits (the real payloads in tests/fixtures/chargebee/). Exactly RQ's job-id
# alphabet, so `evaluate-<id>` is a valid RQ job id for every id accepted.
MAX_EVENT_ID_LENGTH = 40
EVENT_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_EVENT_ID_LENGTH}}}")
MAX_RESOURCE_ID_LENGTH = 50
# Invoice ids [SPEC Invoice.id, Transaction.linked_invoices[].invoice_id]: Chargebee numbers invoices
# itself from an alphanumeric prefix, a date prefix, '-' separators and digits, e.g. "6", "19",
# "CB-10001", "2017-12-24-10001" [NUMBERING]; confirmed: letters, digits, '-'. UNCONFIRMED: ids of
# imported invoices, which the API lets the caller choose; '_' and '.' are also taken (harmless in a
# key and a quoted path segment), but not a path of dots. An id with a '/' could not be written off
# anyway: Chargebee does not read %2F in a path (chargebee-go PR #40).
INVOICE_ID = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_RESOURCE_ID_LENGTH}}}")
# Customer and subscription ids [SPEC Customer.id, Subscription.id, Invoice.customer_id,
# Invoice.subscription_id]: the merchant chooses them, and real ones contain spaces and brackets
# ("Customer [Dotcom]", chargebee-ruby issue #70), '/' ("ACME GmbH/Company GmbH", chargebee-go PR #40)
# and '|' ("auth0|...", chargebee-js-wrappers issue #153), so those are taken where the reactor only
# reads them (rules, audit, comments). Non-ASCII letters are taken: whether Chargebee refuses them is
# UNCONFIRMED, and they are harmless here. In the path of an API call (fetching the customer a rule
# reads) a '/' is refused (`IdKind.path_segment`): quoted it is %2F, which Chargebee does not read as
# part of the id, and a server that decodes it would read another path.
ACCOUNT_ID_REFUSED = frozenset("\"'`\\%?#")
_SHOWN_LENGTH = 60  # characters of a refused value a message repeats


class IdError(ValueError):
    """Not an id of its kind; the message names the kind and says what one is."""


@dataclass(frozen=True)
class IdKind:
    """One kind of Chargebee id: its `name` in messages, the `rule` it follows in words, and the
    test of a text against that rule."""

    name: str
    rule: str
    accepts: Callable[[str], bool]

    def check(self, value: object) -> str:
        """`value` when it is an id of this kind, else IdError saying what one is."""
        if isinstance(value, str) and self.accepts(value):
            return value
        raise IdError(f"{shown(value)} is not a Chargebee {self.name}: {self.rule}")

    def path_segment(self, value: object) -> str:
        """`value` percent-quoted as one segment of an API path; IdError when it is not an id of this
        kind, or holds a '/' (customer and subscription ids may: see ACCOUNT_ID_REFUSED)."""
        checked = self.check(value)
        if "/" in checked:
            raise IdError(
                f"{shown(value)} holds a '/', which a Chargebee API path cannot carry as part of a {self.name}"
            )
        return quote(checked, safe="")


def shown(value: object) -> str:
    """A refused value as a message repeats it: quoted, control characters escaped, cut short."""
    if not isinstance(value, str):
        return "null" if value is None else f"a {type(value).__name__}"
    if not value:
        return "an empty text"
    text = value if len(value) <= _SHOWN_LENGTH else value[:_SHOWN_LENGTH] + "…"
    return repr(text)


def _is_invoice_id(value: str) -> bool:
    return INVOICE_ID.fullmatch(value) is not None and value.strip(".") != ""


def _is_account_id(value: str) -> bool:
    return (
        0 < len(value) <= MAX_RESOURCE_ID_LENGTH
        and value.isprintable()
        and value == value.strip()
        and value.strip(".") != ""
        and ACCOUNT_ID_REFUSED.isdisjoint(value)
    )


_ACCOUNT_RULE = (
    f"1 to {MAX_RESOURCE_ID_LENGTH} printable characters, no space at either end, none of"
    " \" ' ` \\ % ? #, and not only dots"
)
EVENT = IdKind(
    "event id",
    f"at most {MAX_EVENT_ID_LENGTH} letters, digits, '_' or '-'",
    lambda value: EVENT_ID.fullmatch(value) is not None,
)
INVOICE = IdKind(
    "invoice id",
    f"at most {MAX_RESOURCE_ID_LENGTH} ASCII letters, digits, '-', '_' or '.', and not only dots",
    _is_invoice_id,
)
TRANSACTION = IdKind(
    "transaction id",
    f"at most {MAX_RESOURCE_ID_LENGTH} ASCII letters, digits, '-', '_' or '.', and not only dots",
    _is_invoice_id,
)
CUSTOMER = IdKind("customer id", _ACCOUNT_RULE, _is_account_id)
SUBSCRIPTION = IdKind("subscription id", _ACCOUNT_RULE, _is_account_id)
