"""Builders shared by the rules tests (no tests here): small rule files and Chargebee-shaped events."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from typing import Any

from reactor.rules import RulesError, RuleSet, parse_rules

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
DAY = 86400


def rules(body: str, mode: str = "live", limits: str = "") -> RuleSet:
    """A RuleSet from the `rules:` list in `body` (dedented)."""
    head = f"version: 1\nmode: {mode}\n"
    if limits:
        head += f"limits:\n  max_write_off: {limits}\n"
    return parse_rules(head + "rules:\n" + textwrap.indent(textwrap.dedent(body), "  "))


def one_rule(condition: str, action: str = "skip") -> RuleSet:
    """A RuleSet with one rule named `r` whose `when` is the single list item `condition`."""
    return rules(f"- name: r\n  when:\n    - {condition}\n  action: {action}\n")


def invoice(**fields: Any) -> dict[str, Any]:
    """A writable unpaid USD invoice, with `fields` overriding."""
    base: dict[str, Any] = {
        "id": "inv_1",
        "customer_id": "cus_1",
        "status": "not_paid",
        "dunning_status": "exhausted",
        "amount_due": 1250,
        "total": 1250,
        "currency_code": "USD",
        "due_date": int(NOW.timestamp()) - 10 * DAY,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def event(inv: dict[str, Any] | None = None, event_type: str = "payment_failed", **content: Any) -> dict[str, Any]:
    """A Chargebee webhook event carrying `inv` (default: invoice()) and other resources."""
    body: dict[str, Any] = {"invoice": invoice() if inv is None else inv}
    body.update(content)
    return {
        "id": "ev_1",
        "event_type": event_type,
        "source": "scheduled_job",
        "occurred_at": int(NOW.timestamp()),
        "api_version": "v2",
        "content": body,
    }


def problems(text: str) -> list[tuple[int, int, str]]:
    """(line, col, message) of every problem `parse_rules` reports for the dedented `text`."""
    try:
        parse_rules(textwrap.dedent(text))
    except RulesError as exc:
        return [(p.line, p.col, p.message) for p in exc.problems]
    raise AssertionError("the file was accepted")


def problem_at(text: str, line: int, col: int) -> str:
    """The one message reported at (line, col); fails when there is none there."""
    found = [msg for ln, cl, msg in problems(text) if (ln, cl) == (line, col)]
    assert found, f"no problem at {line}:{col}; got {problems(text)}"
    return found[0]
