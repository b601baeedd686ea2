"""Numbers and ids that Chargebee could not have sent are refused by the envelope parser, with a
one-line reason naming the field; the real payloads in tests/fixtures/chargebee/ still pass.

The fixtures are byte-identical copies of public Chargebee webhook bodies: payment_failed.json is
Chargebee's API-docs sample event, invoice_updated.json and subscription_cancelled.json were
captured from a Chargebee test site (both as kept in github.com/bonusly/mock_chargebee,
lib/mock_chargebee/fixtures/webhooks/)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from reactor.ingest.envelope import (
    INT64_MAX,
    INT64_MIN,
    INVOICE_AMOUNTS,
    INVOICE_TIMES,
    MAX_UNIX_TIME,
    RESOURCE_VERSION_MAX_AHEAD_MS,
    EnvelopeError,
    parse_event,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "chargebee"
NOW = 1_700_000_000.0  # the time of receipt in these tests (2023-11-14)
NOW_MS = int(NOW * 1000)


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def payment_failed() -> dict[str, Any]:
    return json.loads(fixture("payment_failed"))


def refused(event: dict[str, Any] | bytes, now: float = NOW) -> str:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    with pytest.raises(EnvelopeError) as info:
        parse_event(body, now=now)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, "the reason is one line"
    return message


def accepted(event: dict[str, Any], now: float = NOW):
    return parse_event(json.dumps(event).encode(), now=now)


def with_invoice(**fields: Any) -> dict[str, Any]:
    event = payment_failed()
    event["content"]["invoice"].update(fields)
    return event


# -- the real payloads ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "invoice_id"),
    [("payment_failed", "6"), ("invoice_updated", "19"), ("subscription_cancelled", None)],
)
@pytest.mark.parametrize("receipt", ["on-time", "years-later"])
def test_the_real_payloads_are_accepted_as_sent(name, invoice_id, receipt):
    raw = fixture(name)
    occurred = json.loads(raw)["occurred_at"]
    now = occurred + 5 if receipt == "on-time" else NOW
    event = parse_event(raw, now=now)
    assert (event.raw, event.invoice_id) == (raw, invoice_id)


def test_the_fixtures_keep_their_exact_shape():
    """Other tests use them as Chargebee sent them: one line of JSON, no trailing newline."""
    for path in sorted(FIXTURES.glob("*.json")):
        raw = path.read_bytes()
        assert raw.startswith(b'{"id":"ev_') and raw.endswith(b'"}') and b"\n" not in raw, path.name


# -- ids ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "invoice_id",
    [
        *("6", "19", "000010", "1007301", "CB-10001", "2017-12-24-10001", "2017-10001", "INV-2020-001", "TEST-CN-1"),
        *("inv_web_1", "inv.2021.7", "x" * 50),
    ],
)
def test_invoice_ids_chargebee_makes_are_accepted(invoice_id):
    assert accepted(with_invoice(id=invoice_id)).invoice_id == invoice_id


@pytest.mark.parametrize(
    "invoice_id",
    [
        *(".", "..", "...", "a/b", "../x", "6/../../customers", "a b", " 6", "6 ", "a\tb", "6\n", "a?b", "a#b"),
        *("a%2Fb", "a\\b", 'a"b', "a'b", "a`b", "a:b", "a*b", "é1", "6\u200b", "\u0000", "x" * 51),
    ],
)
def test_invoice_ids_that_could_not_be_chargebee_ids_are_refused(invoice_id):
    assert "content.invoice.id" in refused(with_invoice(id=invoice_id))


@pytest.mark.parametrize(
    "account_id",
    [
        *("3Nl7oGgQqGFprj9", "16CHTnSAxXWqMAg8", "cus_small", "ent_acme", "x" * 50),
        # real ids merchants chose: chargebee-ruby#70, chargebee-go PR #40, chargebee-js-wrappers#153
        *("Customer [Dotcom]", "ACME GmbH/Company GmbH", "auth0|xs8saf8sdf7asdf87", "Müller-GmbH", "addon+id"),
    ],
)
def test_customer_and_subscription_ids_merchants_choose_are_accepted(account_id):
    event = with_invoice(customer_id=account_id, subscription_id=account_id)
    event["content"]["customer"]["id"] = account_id
    event["content"]["subscription"]["id"] = account_id
    assert accepted(event).id == "ev_3Nl7oGgQqGG8UK4s"


@pytest.mark.parametrize(
    "account_id",
    [
        *("", " x", "x ", "a\nb", "a\tb", "\u202ex", "a\u2028b", "x\u00a0", 'a"b', "a'b", "a\\b", "a%b", "a?b", "a#b"),
        *(".", "..", "x" * 51, 7, True, ["c"], {"id": "c"}),
    ],
)
@pytest.mark.parametrize(
    "field",
    [
        "content.invoice.customer_id",
        "content.invoice.subscription_id",
        "content.customer.id",
        "content.subscription.id",
    ],
)
def test_customer_and_subscription_ids_that_could_not_be_real_are_refused(field, account_id):
    event = payment_failed()
    *path, name = field.split(".")[1:]
    event["content"][path[0]][name] = account_id
    assert f"'{field}'" in refused(event)


def test_a_missing_or_null_customer_or_subscription_id_is_not_checked():
    event = with_invoice(subscription_id=None)
    del event["content"]["invoice"]["customer_id"]
    del event["content"]["customer"]["id"]
    assert accepted(event).invoice_id == "6"


@pytest.mark.parametrize("name", ["customer", "subscription", "transaction"])
def test_a_resource_that_is_not_an_object_is_refused(name):
    event = payment_failed()
    event["content"][name] = "3Nl7oGgQqGFprj9"
    assert f"content.{name} must be an object" in refused(event)


@pytest.mark.parametrize("event_id", ["ev_3Nl7oGgQqGG8UK4s", "ev_" + "x" * 37, "Ev-With-Dashes_9", "evaluate-ev_1"])
def test_event_ids_in_rq_job_id_alphabet_are_accepted(event_id):
    event = payment_failed()
    event["id"] = event_id
    assert accepted(event).id == event_id


@pytest.mark.parametrize(
    "event_id", ["m_0I*", "ev_1.2", "ev:1", "ev 1", "ev/1", "..", "ev_é", "ev_1\n", "ev_" + "x" * 38, "ev%41"]
)
def test_event_ids_outside_rq_job_id_alphabet_are_refused(event_id):
    event = payment_failed()
    event["id"] = event_id
    assert "field 'id' is not a Chargebee event id" in refused(event)


def test_linked_invoice_ids_are_invoice_ids():
    event = payment_failed()
    event["content"]["transaction"]["linked_invoices"].append({"invoice_id": "CB-10001", "applied_amount": 1})
    assert accepted(event).invoice_id == "6"
    event["content"]["transaction"]["linked_invoices"][1]["invoice_id"] = "../x"
    assert "content.transaction.linked_invoices[1].invoice_id" in refused(event)


@pytest.mark.parametrize(
    ("linked", "message"),
    [
        ("6", "linked_invoices must be a list"),
        (["6"], "linked_invoices[0] has no string 'invoice_id'"),
        ([{"invoice_id": 6}], "linked_invoices[0] has no string 'invoice_id'"),
    ],
)
def test_linked_invoices_of_the_wrong_shape_are_refused(linked, message):
    event = payment_failed()
    event["content"]["transaction"]["linked_invoices"] = linked
    assert message in refused(event)


# -- unix times -----------------------------------------------------------------------------------

IMPOSSIBLE_TIMES = [-1, -(2**63), MAX_UNIX_TIME + 1, 10**20, 10**400, True, False, 1600000000.5, 1e300, "1600000000"]


@pytest.mark.parametrize("value", IMPOSSIBLE_TIMES, ids=repr)
@pytest.mark.parametrize("name", INVOICE_TIMES)
def test_invoice_times_outside_1970_to_2106_or_not_integers_are_refused(name, value):
    message = refused(with_invoice(**{name: value}))
    assert f"field 'content.invoice.{name}'" in message and "unix seconds" in message


@pytest.mark.parametrize("value", [0, 1364845254, MAX_UNIX_TIME, None])
@pytest.mark.parametrize("name", INVOICE_TIMES)
def test_invoice_times_in_range_or_null_are_accepted(name, value):
    assert accepted(with_invoice(**{name: value})).invoice_id == "6"


@pytest.mark.parametrize("value", IMPOSSIBLE_TIMES, ids=repr)
def test_an_impossible_occurred_at_is_refused(value):
    event = payment_failed()
    event["occurred_at"] = value
    assert "field 'occurred_at'" in refused(event)


def test_the_updated_at_of_every_resource_is_a_unix_time():
    event = payment_failed()
    event["content"]["customer"]["updated_at"] = -5
    assert "field 'content.customer.updated_at' is -5" in refused(event)


def test_a_huge_number_is_shown_by_its_size_not_in_full():
    message = refused(with_invoice(due_date=10**400))
    assert "a 401-digit number" in message and len(message) < 200


def test_the_latest_time_accepted_leaves_room_for_the_workers_date_arithmetic():
    """The worker adds days to due_date and turns the sum into a datetime (rules/timing.py)."""
    latest = datetime.fromtimestamp(MAX_UNIX_TIME, timezone.utc)
    assert latest.year == 2106
    assert (latest + timedelta(days=365 * 7000)).year > 9000
    assert float(MAX_UNIX_TIME) == MAX_UNIX_TIME  # exact as a float too


# -- amounts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1, 10**30, True, 12.5, 1e20, "224"], ids=repr)
@pytest.mark.parametrize("name", INVOICE_AMOUNTS)
def test_amounts_beyond_int64_or_not_integers_are_refused(name, value):
    message = refused(with_invoice(**{name: value}))
    assert f"field 'content.invoice.{name}'" in message and "int64" in message


@pytest.mark.parametrize("value", [0, 224, INT64_MAX, INT64_MIN, None])
def test_amounts_within_int64_are_accepted(value):
    fields = dict.fromkeys(INVOICE_AMOUNTS, value)
    assert accepted(with_invoice(**fields)).invoice_id == "6"


# -- resource_version -----------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["invoice", "customer", "subscription", "transaction"])
def test_a_resource_version_more_than_a_day_ahead_of_receipt_is_refused(resource):
    event = payment_failed()
    event["content"][resource]["resource_version"] = NOW_MS + RESOURCE_VERSION_MAX_AHEAD_MS + 1
    message = refused(event)
    assert f"field 'content.{resource}.resource_version'" in message and "ahead of the time of receipt" in message


def test_a_forged_far_future_resource_version_is_refused():
    """One that would have made every genuine event of invoice 6 `stale` for the life of the key."""
    assert "resource_version" in refused(with_invoice(resource_version=(2**63) - 1))
    assert "resource_version" in refused(with_invoice(resource_version=10**30))


@pytest.mark.parametrize("ahead_ms", [-(10**12), 0, 1, 3_600_000, RESOURCE_VERSION_MAX_AHEAD_MS])
def test_a_resource_version_up_to_a_day_ahead_is_accepted(ahead_ms):
    assert accepted(with_invoice(resource_version=NOW_MS + ahead_ms)).invoice_id == "6"


@pytest.mark.parametrize("value", [0, -1, True, 1364845255000.0, "1364845255000"], ids=repr)
def test_a_resource_version_that_is_not_a_positive_integer_is_refused(value):
    assert "field 'content.invoice.resource_version'" in refused(with_invoice(resource_version=value))


def test_resources_in_a_list_are_checked_too():
    event = payment_failed()
    event["content"]["credit_notes"] = [{"id": "CN-1", "resource_version": 1}, {"id": "CN-2", "resource_version": -1}]
    assert "field 'content.credit_notes[1].resource_version'" in refused(event)


def test_the_time_of_receipt_decides_and_nothing_else():
    """Pure: the same body and the same `now` always give the same answer."""
    event = with_invoice(resource_version=NOW_MS + RESOURCE_VERSION_MAX_AHEAD_MS + 1000)
    body = json.dumps(event).encode()
    for _ in range(3):
        with pytest.raises(EnvelopeError):
            parse_event(body, now=NOW)
        assert parse_event(body, now=NOW + 1).invoice_id == "6"


def test_without_now_the_clock_is_the_time_of_receipt():
    now_ms = int(time.time() * 1000)
    assert parse_event(json.dumps(with_invoice(resource_version=now_ms + 3_600_000)).encode()).invoice_id == "6"
    with pytest.raises(EnvelopeError, match="ahead of the time of receipt"):
        parse_event(json.dumps(with_invoice(resource_version=now_ms + 2 * RESOURCE_VERSION_MAX_AHEAD_MS)).encode())


def test_an_event_type_with_a_trailing_newline_is_refused():
    """`$` alone would let "payment_failed\\n" through, and it would then pass every `on:` filter by."""
    event = payment_failed()
    event["event_type"] = "payment_failed\n"
    with pytest.raises(EnvelopeError, match="event_type"):
        parse_event(json.dumps(event).encode())
