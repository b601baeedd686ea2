"""`GET /api/v2/invoices` pages and filters like Chargebee's list API."""

from __future__ import annotations

import json

import pytest
import requests

from reactor.sandbox import DEMO_API_KEY, SandboxServer
from reactor.sandbox.listing import decode_offset, encode_offset, select_invoices

AUTH = (DEMO_API_KEY, "")


def list_invoices(sb: SandboxServer, **params: str | int) -> requests.Response:
    return requests.get(f"{sb.api_base}/invoices", params=params, auth=AUTH)


def ids(resp: requests.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [row["invoice"]["id"] for row in resp.json()["list"]]


def all_pages(sb: SandboxServer, **params: str | int) -> list[list[str]]:
    pages, offset = [], None
    while True:
        resp = list_invoices(sb, **params, **({"offset": offset} if offset else {}))
        pages.append(ids(resp))
        offset = resp.json().get("next_offset")
        if offset is None:
            return pages


@pytest.fixture
def mixed(sb):
    sb.state.add_invoices(
        [
            {
                "id": "a",
                "status": "payment_due",
                "dunning_status": "in_progress",
                "amount_due": 100,
                "date": 1000,
            },
            {
                "id": "b",
                "status": "not_paid",
                "dunning_status": "exhausted",
                "amount_due": 5000,
                "date": 3000,
            },
            {"id": "c", "status": "paid", "date": 2000, "customer_id": "cus_c"},
            {"id": "d", "status": "not_paid", "dunning_status": "exhausted", "amount_due": 900, "date": 4000},
            {"id": "e", "status": "posted", "amount_due": 10, "date": 500},
        ]
    )
    return sb


def test_250_invoices_in_pages_of_100_have_no_gaps_or_duplicates(sb):
    sb.state.add_invoices([{"id": f"inv_{n:03d}"} for n in range(250)])
    pages = all_pages(sb, limit=100)
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [i for p in pages for i in p] == [f"inv_{n:03d}" for n in range(250)]


def test_default_limit_is_10_and_last_page_has_no_next_offset(sb):
    sb.state.add_invoices([{} for _ in range(10)])
    resp = list_invoices(sb)
    assert len(ids(resp)) == 10 and "next_offset" not in resp.json()


def test_invoices_changing_between_pages_do_not_shift_the_next_page(sb):
    sb.state.add_invoices([{"id": f"inv_{n}", "status": "not_paid"} for n in range(6)])
    first = list_invoices(sb, limit=3, **{"status[is]": "not_paid"})
    sb.state.write_off("inv_0")  # leaves the filtered set mid-sweep
    second = list_invoices(sb, limit=3, offset=first.json()["next_offset"], **{"status[is]": "not_paid"})
    assert ids(first) == ["inv_0", "inv_1", "inv_2"] and ids(second) == ["inv_3", "inv_4", "inv_5"]


@pytest.mark.parametrize("limit", [0, 101, "ten"])
def test_limit_out_of_range_is_param_wrong_value(sb, limit):
    resp = list_invoices(sb, limit=limit)
    assert resp.status_code == 400
    assert (resp.json()["api_error_code"], resp.json()["param"]) == ("param_wrong_value", "limit")


@pytest.mark.parametrize("offset", ["garbage!!", "bm90IGpzb24", "WyJ4Il0"])
def test_bad_offset_is_400(sb, offset):
    sb.state.add_invoice()
    resp = list_invoices(sb, offset=offset)
    assert resp.status_code == 400 and resp.json()["param"] == "offset"


@pytest.mark.parametrize(
    "value", ['["payment_due","not_paid"]', "['payment_due', 'not_paid']"], ids=["json", "python-repr"]
)
def test_status_in_accepts_json_and_python_repr_arrays(mixed, value):
    assert ids(list_invoices(mixed, **{"status[in]": value})) == ["a", "b", "d"]


def test_status_not_in_and_is(mixed):
    assert ids(list_invoices(mixed, **{"status[not_in]": '["paid","posted"]'})) == ["a", "b", "d"]
    assert ids(list_invoices(mixed, **{"status[is]": "posted"})) == ["e"]


def test_dunning_status_filters(mixed):
    assert ids(list_invoices(mixed, **{"dunning_status[is]": "exhausted"})) == ["b", "d"]
    assert ids(list_invoices(mixed, **{"dunning_status[in]": '["in_progress"]'})) == ["a"]
    assert ids(list_invoices(mixed, **{"dunning_status[is_present]": "false"})) == ["c", "e"]


def test_amount_date_and_customer_filters(mixed):
    assert ids(list_invoices(mixed, **{"amount_due[gt]": 100})) == ["b", "d"]
    assert ids(list_invoices(mixed, **{"amount_due[lte]": 100, "status[is_not]": "paid"})) == ["a", "e"]
    assert ids(list_invoices(mixed, **{"date[before]": 2000})) == ["a", "e"]
    assert ids(list_invoices(mixed, **{"date[after]": 2000})) == ["b", "d"]
    assert ids(list_invoices(mixed, **{"customer_id[is]": "cus_c"})) == ["c"]


def test_sort_by_date_both_directions_with_paging(mixed):
    assert ids(list_invoices(mixed, **{"sort_by[asc]": "date"})) == ["e", "a", "c", "b", "d"]
    assert all_pages(mixed, limit=2, **{"sort_by[desc]": "date"}) == [["d", "b"], ["c", "a"], ["e"]]


def test_updated_at_filter(mixed):
    mixed.state.update_invoice("c", updated_at=9_999_999_999)
    assert ids(list_invoices(mixed, **{"updated_at[after]": 9_999_999_998})) == ["c"]


@pytest.mark.parametrize(
    "param",
    [
        {"due_date[before]": "1"},
        {"status[is]": "unpaid"},
        {"sort_by[asc]": "due_date"},
        {"status[in]": "paid"},
    ],
)
def test_unsupported_filters_and_values_are_rejected(mixed, param):
    resp = list_invoices(mixed, **param)
    assert resp.status_code == 400 and resp.json()["api_error_code"] == "param_wrong_value"


def test_deleted_invoices_are_hidden_unless_asked_for(mixed):
    mixed.state.update_invoice("a", deleted=True)
    assert "a" not in ids(list_invoices(mixed))
    assert "a" in ids(list_invoices(mixed, include_deleted="true"))


def test_next_offset_is_a_json_array_of_digit_strings_like_chargebees(sb):
    sb.state.add_invoices([{} for _ in range(3)])
    offset = list_invoices(sb, limit=2).json()["next_offset"]
    decoded = json.loads(offset)
    assert isinstance(decoded, list) and len(decoded) == 2 and all(isinstance(p, str) and p.isdigit() for p in decoded)
    dated = list_invoices(sb, limit=2, **{"sort_by[desc]": "date"}).json()["next_offset"]
    assert len(json.loads(dated)) == 2


@pytest.mark.parametrize("offset", ['["x","1"]', '["1"]', "[]", "[1,2]", '{"a":1}'])
def test_offsets_not_of_that_shape_are_400(sb, offset):
    sb.state.add_invoice()
    resp = list_invoices(sb, offset=offset)
    assert resp.status_code == 400 and resp.json()["param"] == "offset"


@pytest.mark.parametrize(
    "param",
    [
        "due_date[before]",
        "due_date[after]",
        "currency_code[is]",
        "status[starts_with]",
        "status[is_present]",
        "amount_due[after]",
        "date[gt]",
        "recurring[is_not]",
        "sort_by[foo]",
        "due_date",
        "customer",
        "status",
    ],
)
def test_every_parameter_chargebee_lacks_is_refused_naming_it(mixed, param):
    resp = list_invoices(mixed, **{param: "1"})
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert (body["api_error_code"], body["param"], body["http_status_code"]) == ("param_wrong_value", param, 400)
    assert body["type"] == "invalid_request" and body["error_code"] != body["api_error_code"]


@pytest.mark.parametrize("param", ["include_deleted", "recurring[is]", "dunning_status[is_present]"])
def test_boolean_parameters_take_only_true_or_false(mixed, param):
    resp = list_invoices(mixed, **{param: "yes"})
    assert resp.status_code == 400 and resp.json()["param"] == param


def test_documented_filters_not_used_by_the_reactor_work_too(sb):
    sb.state.add_invoices(
        [
            {"id": "r", "subscription_id": "sub_1", "amount_adjusted": 5, "channel": "app_store"},
            {"id": "o", "price_type": "tax_inclusive"},
        ]
    )
    assert ids(list_invoices(sb, **{"recurring[is]": "true"})) == ["r"]
    assert ids(list_invoices(sb, **{"subscription_id[is_present]": "false"})) == ["o"]
    assert ids(list_invoices(sb, **{"subscription_id[in]": '["sub_1"]'})) == ["r"]
    assert ids(list_invoices(sb, **{"amount_adjusted[gt]": 0})) == ["r"]
    assert ids(list_invoices(sb, **{"channel[is]": "app_store"})) == ["r"]
    assert ids(list_invoices(sb, **{"price_type[is]": "tax_inclusive"})) == ["o"]
    assert ids(list_invoices(sb, **{"id[starts_with]": "o"})) == ["o"]


def test_deleted_invoices_listed_with_include_deleted_carry_deleted_true(sb):
    sb.state.add_invoices([{"id": "a"}, {"id": "b"}])
    requests.post(f"{sb.url}/_sandbox/invoices/a/delete").raise_for_status()
    assert ids(list_invoices(sb)) == ["b"]
    rows = list_invoices(sb, include_deleted="true").json()["list"]
    assert [(r["invoice"]["id"], r["invoice"]["deleted"]) for r in rows] == [("a", True), ("b", False)]


def _reference_pages(invoices, params):
    """The plain path select_invoices replaced: filter all, sort all, cut at the offset, slice."""
    field = params.get("sort_by[asc]") or params.get("sort_by[desc]")
    descending = "sort_by[desc]" in params
    rows = sorted(
        (([inv[field] if isinstance(inv.get(field), int) else 0, created], inv) for created, inv in invoices),
        key=lambda row: row[0],
        reverse=descending,
    )
    rows = [r for r in rows if r[1]["status"] in ("payment_due", "not_paid") and not r[1].get("deleted")]
    if "offset" in params:
        after = decode_offset(params["offset"])
        rows = [r for r in rows if (r[0] < after if descending else r[0] > after)]
    limit = int(params["limit"])
    return [inv["id"] for _, inv in rows[:limit]], encode_offset(rows[limit - 1][0]) if len(rows) > limit else None


@pytest.mark.parametrize("order", ["sort_by[asc]", "sort_by[desc]"])
def test_the_heap_picks_the_pages_a_full_sort_gives(order):
    """reactor/sandbox/listing.py picks a page with a heap; every page equals the full sort's,
    with ties on the date (broken by creation), missing dates and deleted invoices among them."""
    statuses = ("payment_due", "not_paid", "paid", "posted")
    invoices = [
        (1000 + n, {"id": f"i{n}", "status": statuses[n % 4], "date": (n * 7919) % 50 if n % 11 else None,
                    "deleted": n % 13 == 0})
        for n in range(400)
    ]  # fmt: skip
    params = {"status[in]": '["payment_due","not_paid"]', order: "date", "limit": "7"}
    pages = 0
    while True:
        page, next_offset = select_invoices(invoices, params)
        assert ([inv["id"] for inv in page], next_offset) == _reference_pages(invoices, params)
        pages += 1
        if next_offset is None:
            break
        params = {**params, "offset": next_offset}
    assert pages > 20
