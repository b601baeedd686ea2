"""The bad-debt register as csv, json and markdown (the table is drawn by the command): the same
columns in each, amounts as strings in major units so no format loses a digit to a float, and the
rules that made the figures stated with them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..jobs.audit import spreadsheet_cell, visible
from .bad_debt import COLUMNS, ROUNDING, RegisterRow


def notes(delays: Mapping[str, int]) -> list[str]:
    """What every output states along with its rows."""
    rules = ", ".join(f"{country} {months} months" for country, months in sorted(delays.items())) or "none"
    return [
        "amounts in major units of each invoice's currency",
        ROUNDING,
        "relief claimable from: the later of due date and invoice date, plus the country's delay "
        f"(REACTOR_RELIEF_DELAYS: {rules}); other countries: no rule",
    ]


def to_csv(rows: Sequence[RegisterRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([spreadsheet_cell(row.values[c]) for c in COLUMNS])
    return out.getvalue()


def to_json(rows: Sequence[RegisterRow], header: Mapping[str, Any], delays: Mapping[str, int]) -> str:
    data = {**header, "notes": notes(delays), "rows": [{c: row.values[c] for c in COLUMNS} for row in rows]}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _md(text: object) -> str:
    return visible(str(text)).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def to_markdown(rows: Sequence[RegisterRow], header: Mapping[str, Any], delays: Mapping[str, int]) -> str:
    lines = [f"### Bad-debt register: {_md(header.get('site', ''))}, {len(rows)} write-offs", ""]
    lines += [f"- {_md(note)}" for note in notes(delays)]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_md(row.values[c]) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"
