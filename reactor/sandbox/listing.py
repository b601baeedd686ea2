"""`GET /invoices` semantics: Chargebee's bracketed filters, sort_by and opaque offset pagination.

Unknown `field[operator]` filters are answered with 400 param_wrong_value rather than ignored: a sweep
that filters on something Chargebee does not support (e.g. `due_date`, doc §7) should fail loudly in
tests instead of silently receiving every invoice. Plain unknown parameters are ignored.
"""

from __future__ import annotations

import ast
import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import wrong_value
from .invoices import DUNNING_STATUSES, INVOICE_STATUSES

_FILTER = re.compile(r"^([a-z_]+)\[([a-z_]+)\]$")
_STRING_OPS = ("is", "is_not", "starts_with", "in", "not_in", "is_present")
_NUMBER_OPS = ("is", "is_not", "lt", "lte", "gt", "gte", "between")
_TIME_OPS = ("after", "before", "on", "between")
FIELDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("id", "customer_id", "subscription_id", "currency_code", "channel"), _STRING_OPS),
    **dict.fromkeys(("status", "dunning_status", "price_type"), _STRING_OPS),
    **dict.fromkeys(("total", "amount_due", "amount_paid", "amount_adjusted", "credits_applied"), _NUMBER_OPS),
    **dict.fromkeys(("date", "updated_at", "paid_at", "voided_at"), _TIME_OPS),
    "recurring": ("is",),
}
_ENUMS = {"status": INVOICE_STATUSES, "dunning_status": DUNNING_STATUSES}
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


def _predicate(name: str, op: str, raw: str) -> Callable[[dict[str, Any]], bool]:
    """Compile one `name[op]=raw` filter into a predicate over invoices."""
    param = f"{name}[{op}]"
    if op not in FIELDS.get(name, ()):
        raise wrong_value(param, f"Unsupported filter {param}.")
    if op == "is_present":
        want = raw.lower() == "true"
        return lambda inv: (inv.get(name) is not None) == want
    values: list[Any] = parse_list_value(param, raw) if op in ("in", "not_in", "between") else [raw]
    if name in _ENUMS:
        bad = [v for v in values if v not in _ENUMS[name]]
        if bad:
            raise wrong_value(param, f"{param}: invalid value {bad[0]!r}.")
    if name == "recurring":
        want_bool = raw.lower() == "true"
        return lambda inv: bool(inv.get(name)) == want_bool
    if FIELDS[name] is not _STRING_OPS:
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


def encode_offset(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_offset(raw: str) -> list[Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    if not isinstance(key, list) or not key:
        raise wrong_value("offset", f"Invalid offset {raw!r}.")
    return key


def parse_limit(params: Mapping[str, str]) -> int:
    limit = _number("limit", params.get("limit", DEFAULT_LIMIT))
    if not 1 <= limit <= MAX_LIMIT:
        raise wrong_value("limit", f"limit must be between 1 and {MAX_LIMIT}.")
    return limit


def select_invoices(
    invoices: Iterable[tuple[int, dict[str, Any]]], params: Mapping[str, str]
) -> tuple[list[dict[str, Any]], str | None]:
    """Return one page of (insertion-seq, invoice) pairs filtered and sorted as Chargebee would.

    The offset encodes the last item's sort key rather than a position, so invoices written off or
    changed between pages do not shift the next page (no duplicates, no gaps among unchanged items).
    """
    limit = parse_limit(params)
    sort_field, descending = _sort(params)
    predicates = []
    for key, raw in params.items():
        match = _FILTER.match(key)
        if match and match.group(1) != "sort_by":
            predicates.append(_predicate(match.group(1), match.group(2), raw))
    include_deleted = params.get("include_deleted", "false").lower() == "true"

    def sort_key(seq: int, inv: dict[str, Any]) -> list[Any]:
        return [inv.get(sort_field) or 0, seq] if sort_field else [seq]

    rows = [
        (sort_key(seq, inv), inv)
        for seq, inv in invoices
        if (include_deleted or not inv.get("deleted")) and all(p(inv) for p in predicates)
    ]
    rows.sort(key=lambda row: row[0], reverse=descending)
    if "offset" in params:
        after = decode_offset(params["offset"])
        if len(after) != (2 if sort_field else 1):
            raise wrong_value("offset", "offset does not belong to this sort order.")
        try:
            rows = [r for r in rows if (r[0] < after if descending else r[0] > after)]
        except TypeError:
            raise wrong_value("offset", "offset does not belong to this sort order.") from None
    page = rows[:limit]
    next_offset = encode_offset(page[-1][0]) if len(rows) > limit else None
    return [inv for _, inv in page], next_offset
