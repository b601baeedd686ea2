"""`GET /invoices` semantics: Chargebee's bracketed filters, sort_by and opaque offset pagination.

Only the parameters Chargebee documents for list invoices are accepted
(https://apidocs.chargebee.com/docs/api/invoices/list-invoices): a filter Chargebee lacks (e.g.
`due_date[before]`), an operator a field does not support, or any other unknown parameter is
answered with 400 `param_wrong_value` naming the parameter, instead of being ignored. A sweep that
filters on something Chargebee does not support then fails loudly in tests rather than silently
receiving every invoice. (Whether Chargebee itself refuses an unknown *bare* parameter or
ignores it is UNCONFIRMED; the sandbox refuses it, the stricter of the two.)

`next_offset` has the shape of a real one: a JSON array of digit strings, e.g.
`["1630848839000","7"]`. Clients must treat it as opaque and send it back verbatim.
"""

from __future__ import annotations

import ast
import heapq
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import wrong_value
from .invoices import DUNNING_STATUSES, INVOICE_STATUSES

_FILTER = re.compile(r"^([a-z_]+)\[([a-z_]+)\]$")
_ID_OPS = ("is", "is_not", "starts_with", "in", "not_in")
_ENUM_OPS = ("is", "is_not", "in", "not_in")
_NUMBER_OPS = ("is", "is_not", "lt", "lte", "gt", "gte", "between")
_TIME_OPS = ("after", "before", "on", "between")
_NUMBER_FIELDS = ("total", "amount_due", "amount_paid", "amount_adjusted", "credits_applied")  # in cents
_TIME_FIELDS = ("date", "updated_at", "paid_at", "voided_at")  # unix seconds
# Field -> supported operators, as documented for list invoices (https://apidocs.chargebee.com/docs/api/invoices/list-invoices).
FIELDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("id", "customer_id", "payment_owner", "void_reason_code"), _ID_OPS),
    "subscription_id": (*_ID_OPS, "is_present"),
    **dict.fromkeys(("status", "price_type", "channel"), _ENUM_OPS),
    "dunning_status": (*_ENUM_OPS, "is_present"),
    **dict.fromkeys(_NUMBER_FIELDS, _NUMBER_OPS),
    **dict.fromkeys(_TIME_FIELDS, _TIME_OPS),
    "recurring": ("is",),
}
_ENUMS = {
    "status": INVOICE_STATUSES,
    "dunning_status": DUNNING_STATUSES,
    "price_type": ("tax_exclusive", "tax_inclusive"),
}
PLAIN_PARAMS = frozenset({"limit", "offset", "include_deleted"})
SORTABLE = ("date", "updated_at")
DEFAULT_LIMIT = 10
MAX_LIMIT = 100


def parse_list_value(param: str, raw: str) -> list[Any]:
    """Parse an `in`/`not_in`/`between` value: a JSON array, or the Python repr chargebee-python sends."""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(raw)
        except (ValueError, SyntaxError, TypeError):
            continue
        if isinstance(value, list | tuple):
            return list(value)
    raise wrong_value(param, f'{param} must be an array such as ["a","b"], got {raw!r}.')


def _number(param: str, raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise wrong_value(param, f"{param} must be an integer, got {raw!r}.") from None


def _boolean(param: str, raw: str) -> bool:
    if raw.lower() not in ("true", "false"):
        raise wrong_value(param, f"{param} must be true or false, got {raw!r}.")
    return raw.lower() == "true"


def _predicate(name: str, op: str, raw: str) -> Callable[[dict[str, Any]], bool]:
    """Compile one `name[op]=raw` filter into a predicate over invoices."""
    param = f"{name}[{op}]"
    if name not in FIELDS:
        raise wrong_value(param, f"{param}: {name} is not a supported filter for list invoices.")
    if op not in FIELDS[name]:
        raise wrong_value(param, f"{param}: operator {op} is not supported for {name}.")
    if op == "is_present":
        want = _boolean(param, raw)
        return lambda inv: (inv.get(name) is not None) == want
    values: list[Any] = parse_list_value(param, raw) if op in ("in", "not_in", "between") else [raw]
    if name in _ENUMS:
        bad = [v for v in values if v not in _ENUMS[name]]
        if bad:
            raise wrong_value(param, f"{param}: invalid value {bad[0]!r}.")
    if name == "recurring":
        want_bool = _boolean(param, raw)
        return lambda inv: bool(inv.get(name)) == want_bool
    if name in _NUMBER_FIELDS or name in _TIME_FIELDS:
        values = [_number(param, v) for v in values]
    return _compare(name, op, values, param)


def _compare(name: str, op: str, values: list[Any], param: str) -> Callable[[dict[str, Any]], bool]:
    v = values[0] if values else None
    if op == "between" and len(values) != 2:
        raise wrong_value(param, f"{param} needs exactly two values.")
    checks: dict[str, Callable[[Any], bool]] = {
        "is": lambda x: x == v,
        "is_not": lambda x: x != v,
        "starts_with": lambda x: isinstance(x, str) and x.startswith(str(v)),
        "in": lambda x: x in values,
        "not_in": lambda x: x not in values,
        "lt": lambda x: x is not None and x < v,
        "lte": lambda x: x is not None and x <= v,
        "gt": lambda x: x is not None and x > v,
        "gte": lambda x: x is not None and x >= v,
        "before": lambda x: x is not None and x < v,
        "after": lambda x: x is not None and x > v,
        "on": lambda x: x is not None and v <= x < v + 86400,
        "between": lambda x: x is not None and values[0] <= x <= values[1],
    }
    check = checks[op]
    return lambda inv: check(inv.get(name))


def _sort(params: Mapping[str, str]) -> tuple[str | None, bool]:
    asc, desc = params.get("sort_by[asc]"), params.get("sort_by[desc]")
    if asc and desc:
        raise wrong_value("sort_by", "Only one of sort_by[asc] and sort_by[desc] may be given.")
    field = asc or desc
    if field and field not in SORTABLE:
        raise wrong_value("sort_by[asc]" if asc else "sort_by[desc]", f"Cannot sort by {field!r}.")
    return field, bool(desc)


def encode_offset(key: list[int]) -> str:
    """An opaque offset in the shape of Chargebee's: a JSON array of digit strings."""
    return json.dumps([str(part) for part in key], separators=(",", ":"))


def decode_offset(raw: str) -> list[int]:
    try:
        key = json.loads(raw)
    except ValueError:
        key = None
    if (
        not isinstance(key, list)
        or not key
        or not all(isinstance(part, str) and part.isascii() and part.isdigit() for part in key)
    ):
        raise wrong_value("offset", f"Invalid offset {raw!r}.")
    return [int(part) for part in key]


def parse_limit(params: Mapping[str, str]) -> int:
    limit = _number("limit", params.get("limit", DEFAULT_LIMIT))
    if not 1 <= limit <= MAX_LIMIT:
        raise wrong_value("limit", f"limit must be between 1 and {MAX_LIMIT}.")
    return limit


def _check_params(params: Mapping[str, str]) -> None:
    for key in params:
        if key in PLAIN_PARAMS or key in ("sort_by[asc]", "sort_by[desc]"):
            continue
        if _FILTER.match(key) and not key.startswith("sort_by["):
            continue
        raise wrong_value(key, f"{key} is not a supported parameter for list invoices.")


def select_invoices(
    invoices: Iterable[tuple[int, dict[str, Any]]], params: Mapping[str, str]
) -> tuple[list[dict[str, Any]], str | None]:
    """Return one page of invoices filtered and sorted as Chargebee would, and the next offset.

    `invoices` pairs each invoice with its creation position (a strictly increasing millisecond
    timestamp: Chargebee's default order is creation, ascending). The offset encodes the last item's
    sort key rather than a position, so invoices written off or changed between pages do not shift
    the next page (no duplicates, no gaps among unchanged items).
    """
    _check_params(params)
    limit = parse_limit(params)
    sort_field, descending = _sort(params)
    predicates = []
    for key, raw in params.items():
        match = _FILTER.match(key)
        if match and match.group(1) != "sort_by":
            predicates.append(_predicate(match.group(1), match.group(2), raw))
    include_deleted = _boolean("include_deleted", params.get("include_deleted", "false"))

    after: tuple[int, ...] | None = None
    if "offset" in params:
        decoded = decode_offset(params["offset"])
        if len(decoded) != 2:
            raise wrong_value("offset", "offset does not belong to this list.")
        after = tuple(decoded)

    # The offset is checked first (two integers compared), the filters only on what lies past it,
    # and only the page (plus one, to know whether another follows) is picked out with a heap rather
    # than sorting everything, which was most of the time of listing 10,000 invoices (docs/benchmarks.md,
    # "Rules diff"). Sort keys are unique (the creation position is), so the page is the one a full
    # sort would give (tests/unit/sandbox/test_listing.py compares the two).
    rows = []
    for created, inv in invoices:
        value = inv.get(sort_field) if sort_field else created
        key = (value if isinstance(value, int) else 0, created)
        if after is not None and not (key < after if descending else key > after):
            continue
        if (include_deleted or not inv.get("deleted")) and all(p(inv) for p in predicates):
            rows.append((key, inv))
    pick = heapq.nlargest if descending else heapq.nsmallest
    page = pick(limit + 1, rows, key=lambda row: row[0])
    next_offset = encode_offset(list(page[limit - 1][0])) if len(page) > limit else None
    return [inv for _, inv in page[:limit]], next_offset
