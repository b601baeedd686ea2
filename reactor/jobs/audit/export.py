"""The trail as people and programs read it outside Redis: csv and jsonl exports, and text made safe
to print on a terminal or to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from .records import FIELDS, AuditRecord

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def visible(text: str, keep_newlines: bool = False) -> str:
    """`text` safe to print on a terminal: every character that is not printable (C0 and C1 control
    characters, DEL, bidi overrides, zero-width and other format characters, lone surrogates) shown
    as its escape, `\\x1b`, `\\u202e`, `\\n`, so an id or a reason cannot move the cursor, recolour
    or retitle the terminal, or hide part of a line. With keep_newlines, line breaks and tabs stay
    (a traceback)."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable() or (keep_newlines and char in "\n\t"):
            out.append(char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell safe to open in a spreadsheet and to `cat`: control characters escaped (visible),
    and a text starting with = + - @ (or a tab or CR) that is not a plain number prefixed with `'`,
    so Excel, LibreOffice and Google Sheets show it as text instead of running it as a formula
    (CSV injection). Numbers, including negative ones, are left as they are."""
    if not isinstance(value, str):
        return value
    text = visible(value)
    if value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + text
    return text


def export_lines(records: Iterable[AuditRecord], fmt: str) -> Iterator[str]:
    """Render records as csv or jsonl, a line at a time, so an export of a million records streams.

    Amounts stay in Chargebee's minor units (`amount_due`, with `currency`), as in the API.
    jsonl is the exact export: JSON escapes every control and non-ASCII character (ensure_ascii),
    so a line holds printable ASCII only and reads back to the stored values. csv is for people and
    spreadsheets: cells pass through spreadsheet_cell (control characters escaped, formulas
    neutralised), so a cell can differ from the stored value; use jsonl to process the trail."""
    if fmt == "jsonl":
        for record in records:
            yield json.dumps(record.as_dict(), sort_keys=True, ensure_ascii=True) + "\n"
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=("id", *FIELDS), extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({k: "" if v is None else spreadsheet_cell(v) for k, v in record.as_dict().items()})
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        yield out.getvalue()
        return
    raise ValueError(f"unknown format {fmt!r}: use table, csv or jsonl")


def export(records: Iterable[AuditRecord], fmt: str) -> str:
    """Render records as csv or jsonl (tables are drawn by the CLI)."""
    return "".join(export_lines(records, fmt))
