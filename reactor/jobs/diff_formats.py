"""`reactor rules diff` output as text: JSON (scripts), CSV (spreadsheets), Markdown (a pull-request
comment). The terminal table is the command's (reactor/cli/diff.py); the dashboard has its template.

Amounts are in major units as strings ("12.50"), so no format loses a digit to a float.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from ..rules.diff import CHANGE_KINDS, CHANGE_MEANINGS, OUTCOMES, Money, RulesDiff, Verdict
from .audit import spreadsheet_cell, visible

CHANGE_COLUMNS = (
    "invoice",
    "customer",
    "change",
    "amount",
    "currency",
    "old_outcome",
    "old_rule",
    "new_outcome",
    "new_rule",
    "new_reason",
)


def change_rows(diff: RulesDiff) -> Iterator[list[str]]:
    """One row per changed invoice, in listing order (CHANGE_COLUMNS)."""
    for change in diff.changes:
        row = change.row
        yield [
            row.invoice_id,
            row.customer_id,
            change.kind,
            str(row.amount_major),
            row.currency,
            row.old.outcome,
            row.old.rule or "",
            row.new.outcome,
            row.new.rule or "",
            row.new.reason,
        ]


def _money(sums: Money) -> dict[str, dict[str, Any]]:
    return {currency: {"count": count, "amount": str(amount)} for currency, (count, amount) in sorted(sums.items())}


def _verdict(verdict: Verdict) -> dict[str, Any]:
    return {"outcome": verdict.outcome, "rule": verdict.rule, "comment": verdict.comment, "reason": verdict.reason}


def as_data(diff: RulesDiff, header: dict[str, Any]) -> dict[str, Any]:
    """Everything, as JSON-ready data; `header` says what was compared (files, versions, time, calls)."""
    return {
        **header,
        "invoices": len(diff.rows),
        "changed": len(diff.changes),
        "budgets": diff.budgets,
        "counts": diff.kind_counts(),
        "outcomes": diff.outcomes,
        "by_change": {kind: _money(diff.by_kind[kind]) for kind in CHANGE_KINDS if kind in diff.by_kind},
        "written_off": {side: _money(sums) for side, sums in diff.written_off.items()},
        "by_rule": {rule: {side: _money(s) for side, s in sides.items()} for rule, sides in diff.by_rule.items()},
        "changes": [
            {
                "invoice": c.row.invoice_id,
                "customer": c.row.customer_id,
                "change": c.kind,
                "amount_due": c.row.amount_due,
                "amount": str(c.row.amount_major),
                "currency": c.row.currency,
                "old": _verdict(c.row.old),
                "new": _verdict(c.row.new),
            }
            for c in diff.changes
        ],
    }


def to_json(diff: RulesDiff, header: dict[str, Any]) -> str:
    return json.dumps(as_data(diff, header), indent=2, ensure_ascii=True) + "\n"


def to_csv(diff: RulesDiff) -> str:
    """The changes, then the totals per change kind and currency, then per rule and currency."""
    out = io.StringIO()
    writer = csv.writer(out)
    rows: list[list[Any]] = [list(CHANGE_COLUMNS), *change_rows(diff), []]
    rows.append(["total", "change", "count", "amount", "currency"])
    for kind in CHANGE_KINDS:
        for currency, (count, amount) in sorted(diff.by_kind.get(kind, {}).items()):
            rows.append(["total", kind, str(count), str(amount), currency])
    rows += [[], ["rule", "currency", "old_count", "old_amount", "new_count", "new_amount"]]
    rows += [list(line) for line in _rule_lines(diff)]
    rows += [[], ["budgets", diff.budgets]]
    writer.writerows([spreadsheet_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def _rule_lines(diff: RulesDiff) -> Iterator[tuple[str, str, str, str, str, str]]:
    zero = (0, 0)
    for rule, sides in diff.by_rule.items():
        for currency in sorted(set(sides["old"]) | set(sides["new"])):
            old, new = sides["old"].get(currency, zero), sides["new"].get(currency, zero)
            yield rule, currency, str(old[0]), str(old[1]), str(new[0]), str(new[1])


def count_and_amount(pair: tuple[int, object]) -> str:
    """`2 for 60.00`, or `-` for none."""
    return f"{pair[0]} for {pair[1]}" if pair[0] else "-"


def _md(text: object) -> str:
    """A Markdown table cell: printable, pipes and backticks escaped, one line."""
    return visible(str(text)).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def to_markdown(diff: RulesDiff, header: dict[str, Any], max_rows: int = 200) -> str:
    """A pull-request comment: the summary, the totals, then at most `max_rows` changed invoices."""
    lines = [
        f"### Rules diff: {_md(header.get('base', ''))} → {_md(header.get('new', ''))}",
        "",
        f"{len(diff.rows)} open invoices decided at {_md(header.get('at', ''))}; **{len(diff.changes)} changed**.",
        "",
        f"{_md(diff.budgets)}.",
        "",
    ]
    if header.get("unlisted_rules"):  # rule names are letters, digits, '_', '.' and '-' (reactor/rules/loader.py)
        names = ", ".join(f"`{name}`" for name in header["unlisted_rules"])
        lines += [f"Not decided here: {names} (their `on:` leaves out `sweep`: no listed invoice meets them).", ""]
    lines += [
        "| change | count | amount |",
        "|---|---:|---|",
    ]
    for kind, count in diff.kind_counts().items():
        if count:
            amounts = ", ".join(f"{a} {cur}" for cur, (_, a) in sorted(diff.by_kind[kind].items()))
            lines.append(f"| {kind} ({_md(CHANGE_MEANINGS[kind])}) | {count} | {amounts} |")
    lines += ["", "| outcome | old | new |", "|---|---:|---:|"]
    lines += [f"| {o} | {diff.outcomes['old'][o]} | {diff.outcomes['new'][o]} |" for o in OUTCOMES]
    lines += ["", "| rule | currency | old | new |", "|---|---|---:|---:|"]
    lines += [
        f"| {_md(r)} | {c} | {count_and_amount((int(oc), oa))} | {count_and_amount((int(nc), na))} |"
        for r, c, oc, oa, nc, na in _rule_lines(diff)
    ]
    if diff.changes:
        lines += ["", "| invoice | change | amount | old | new | why (new) |", "|---|---|---:|---|---|---|"]
        for row in list(change_rows(diff))[:max_rows]:
            inv, _, kind, amount, cur, o_out, o_rule, n_out, n_rule, why = row
            old, new = f"{o_out} {o_rule}".strip(), f"{n_out} {n_rule}".strip()
            lines.append(f"| {_md(inv)} | {kind} | {amount} {cur} | {_md(old)} | {_md(new)} | {_md(why)} |")
        if len(diff.changes) > max_rows:
            lines.append(f"\n… and {len(diff.changes) - max_rows} more (`--format csv` lists them all).")
    return "\n".join(lines) + "\n"
