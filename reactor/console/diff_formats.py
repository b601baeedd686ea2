"""`reactor rules diff` output as text: JSON (scripts), CSV (spreadsheets), Markdown (a pull-request
comment). The terminal table is the command's (reactor/cli/diff.py); the dashboard has its template.

Amounts are in major units as strings ("12.50"), so no format loses a digit to a float. Every change
names its trigger in `on`: `sweep` (the invoice as the sweep finds it) or an event type (if
Chargebee's next such event for the invoice arrived now, with the invoice as listed).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from ..jobs.audit import spreadsheet_cell, visible
from ..rules.diff import CHANGE_KINDS, CHANGE_MEANINGS, NOT_PREVIEWED, OUTCOMES, Money, RulesDiff, Totals, Verdict
from ..rules.event_types import SWEEP_EVENT_TYPE
from ..timestamps import shown_time

CHANGE_COLUMNS = (
    "invoice",
    "customer",
    "change",
    "on",
    "amount",
    "currency",
    "old_outcome",
    "old_rule",
    "new_outcome",
    "new_rule",
    "new_reason",
)


def change_rows(diff: RulesDiff) -> Iterator[list[str]]:
    """One row per change, in listing order, each invoice's triggers together (CHANGE_COLUMNS)."""
    for change in diff.changes:
        row = change.row
        yield [
            row.invoice_id,
            row.customer_id,
            change.kind,
            row.on,
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


def preview_notes(diff: RulesDiff) -> list[str]:
    """The lines to read before the tables: each rule that reads a field only the event carries
    (named with its fields; a change that rests on one is never "no change"), and the event type
    that stands for those no rule names."""
    lines = [f"could not preview: {blind.describe()}" for blind in diff.plan.blind]
    unknown = sum(1 for c in diff.changes if c.kind == NOT_PREVIEWED)
    if unknown:
        lines.append(f"could not preview: {unknown} decisions rest on such a field (change {NOT_PREVIEWED})")
    if diff.plan.others:
        lines.append(f"on {diff.plan.others}: stands for every event type carrying an invoice that no `on:` names")
    return lines


def triggers_line(diff: RulesDiff) -> str:
    """One line: what each invoice was decided as."""
    webhook = diff.plan.webhook_triggers
    if not webhook:
        return "on: sweep (each invoice as the sweep finds it); no rule is limited to other events"
    return (
        f"on: sweep (each invoice as the sweep finds it), and {', '.join(webhook)} (if Chargebee's next such"
        " event for it arrived now, with the invoice as listed)"
    )


def outcome_lines(diff: RulesDiff) -> Iterator[tuple[str, str, int, int]]:
    """(on, outcome, old count, new count): every outcome on the sweep, those that occur elsewhere."""
    for trigger, totals in diff.totals.items():
        for outcome in OUTCOMES:
            old, new = totals.outcomes["old"][outcome], totals.outcomes["new"][outcome]
            if old or new or trigger == SWEEP_EVENT_TYPE:
                yield trigger, outcome, old, new


def _totals(totals: Totals) -> dict[str, Any]:
    return {
        "counts": totals.kind_counts(),
        "outcomes": totals.outcomes,
        "by_change": {kind: _money(totals.by_kind[kind]) for kind in CHANGE_KINDS if kind in totals.by_kind},
        "written_off": {side: _money(sums) for side, sums in totals.written_off.items()},
        "by_rule": {rule: {side: _money(s) for side, s in sides.items()} for rule, sides in totals.by_rule.items()},
    }


def as_data(diff: RulesDiff, header: dict[str, Any]) -> dict[str, Any]:
    """Everything, as JSON-ready data; `header` says what was compared (files, versions, time, calls).
    The top-level totals are the sweep's; `on_next_event` holds the same per event type."""
    return {
        **header,
        "invoices": diff.invoices,
        "changed": diff.changed_invoices,
        "on": list(diff.plan.triggers),
        "others": diff.plan.others,
        "not_previewed": [blind.as_dict() for blind in diff.plan.blind],
        "held": diff.held,
        "budgets": diff.budgets,
        "newly_written_off": _money(diff.newly_written_off),
        **_totals(diff.totals.get(SWEEP_EVENT_TYPE) or Totals()),
        "on_next_event": {t: _totals(totals) for t, totals in diff.totals.items() if t != SWEEP_EVENT_TYPE},
        "changes": [
            {
                "invoice": c.row.invoice_id,
                "customer": c.row.customer_id,
                "change": c.kind,
                "on": c.row.on,
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
    """The changes; the totals per change kind, trigger and currency (and newly written off on any
    trigger, each invoice once: `on` any); per rule, trigger and currency; then what could not be
    previewed, the held line and the budgets line."""
    out = io.StringIO()
    writer = csv.writer(out)
    rows: list[list[Any]] = [list(CHANGE_COLUMNS), *change_rows(diff), []]
    rows.append(["total", "change", "on", "count", "amount", "currency"])
    for trigger, totals in diff.totals.items():
        for kind in CHANGE_KINDS:
            for currency, (count, amount) in sorted(totals.by_kind.get(kind, {}).items()):
                rows.append(["total", kind, trigger, str(count), str(amount), currency])
    for currency, (count, amount) in sorted(diff.newly_written_off.items()):
        rows.append(["total", "newly_written_off", "any", str(count), str(amount), currency])
    rows += [[], ["rule", "on", "currency", "old_count", "old_amount", "new_count", "new_amount"]]
    rows += [list(line) for line in _rule_lines(diff)]
    if diff.plan.blind:
        rows += [[], ["not_previewed", "rule", "fields", "on", "changed"]]
        for blind in diff.plan.blind:
            on = " ".join(blind.on) or "every webhook event"
            rows.append(["not_previewed", blind.rule, " ".join(blind.fields), on, str(blind.changed).lower()])
    rows += [[], ["held", diff.held], ["budgets", diff.budgets]]
    writer.writerows([spreadsheet_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def _rule_lines(diff: RulesDiff) -> Iterator[tuple[str, str, str, str, str, str, str]]:
    zero = (0, 0)
    for trigger, totals in diff.totals.items():
        for rule, sides in totals.by_rule.items():
            for currency in sorted(set(sides["old"]) | set(sides["new"])):
                old, new = sides["old"].get(currency, zero), sides["new"].get(currency, zero)
                yield rule, trigger, currency, str(old[0]), str(old[1]), str(new[0]), str(new[1])


def count_and_amount(pair: tuple[int, object]) -> str:
    """`2 for 60.00`, or `-` for none."""
    return f"{pair[0]} for {pair[1]}" if pair[0] else "-"


def _md(text: object) -> str:
    """A Markdown table cell: printable, pipes and backticks escaped, one line."""
    return visible(str(text)).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def to_markdown(diff: RulesDiff, header: dict[str, Any], max_rows: int = 200) -> str:
    """A pull-request comment: the summary, what could not be previewed, the totals, then at most
    `max_rows` changes."""
    newly = ", ".join(f"{n} for {a} {cur}" for cur, (n, a) in sorted(diff.newly_written_off.items())) or "none"
    lines = [
        f"### Rules diff: {_md(header.get('base', ''))} → {_md(header.get('new', ''))}",
        "",
        f"{diff.invoices} open invoices decided at {_md(shown_time(header.get('at', '')))}; "
        f"**{diff.changed_invoices} changed**.",
        "",
        f"{_md(triggers_line(diff))}.",
        "",
    ]
    notes = preview_notes(diff)
    if notes:  # rule names are letters, digits, '_', '.' and '-' (reactor/rules/loader.py)
        lines += [f"- **{_md(note)}**" for note in notes] + [""]
    lines += [
        f"Newly written off on any trigger, each invoice once: {newly}.",
        "",
        f"{_md(diff.held)}.",
        "",
        f"{_md(diff.budgets)}.",
        "",
        "| on | change | count | amount |",
        "|---|---|---:|---|",
    ]
    for trigger, totals in diff.totals.items():
        for kind, count in totals.kind_counts().items():
            if count:
                amounts = ", ".join(f"{a} {cur}" for cur, (_, a) in sorted(totals.by_kind[kind].items()))
                lines.append(f"| {trigger} | {kind} ({_md(CHANGE_MEANINGS[kind])}) | {count} | {amounts} |")
    lines += ["", "| on | outcome | old | new |", "|---|---|---:|---:|"]
    lines += [f"| {t} | {o} | {old} | {new} |" for t, o, old, new in outcome_lines(diff)]
    lines += ["", "| rule | on | currency | old | new |", "|---|---|---|---:|---:|"]
    lines += [
        f"| {_md(r)} | {t} | {c} | {count_and_amount((int(oc), oa))} | {count_and_amount((int(nc), na))} |"
        for r, t, c, oc, oa, nc, na in _rule_lines(diff)
    ]
    if diff.changes:
        lines += ["", "| invoice | on | change | amount | old | new | why (new) |", "|---|---|---|---:|---|---|---|"]
        for row in list(change_rows(diff))[:max_rows]:
            inv, _, kind, on, amount, cur, o_out, o_rule, n_out, n_rule, why = row
            old, new = f"{o_out} {o_rule}".strip(), f"{n_out} {n_rule}".strip()
            lines.append(f"| {_md(inv)} | {on} | {kind} | {amount} {cur} | {_md(old)} | {_md(new)} | {_md(why)} |")
        if len(diff.changes) > max_rows:
            lines.append(f"\n… and {len(diff.changes) - max_rows} more (`--format csv` lists them all).")
    return "\n".join(lines) + "\n"
