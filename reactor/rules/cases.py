"""Rule test cases: examples ops write next to rules.yaml, run by `reactor rules test` and in CI.

A cases file (by default `rules.cases.yaml` next to `rules.yaml`) says, for invoices or events,
which rule must decide and what it must do; its shape is above `load_cases`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .approvals import ApprovalNeed, approval_needed
from .engine import decide
from .fields import did_you_mean
from .loader import SITE_NAME
from .model import Decision, RuleSet
from .problems import RuleProblem, RulesError
from .yamlnodes import (
    MAX_FILE_BYTES,
    Problems,
    ScalarValueError,
    check_duplicate_keys,
    check_nodes,
    check_tabs,
    compose,
    describe,
    mapping_items,
    read_limited,
    scalar_value,
)

CASE_KEYS = (
    "name",
    "description",
    "site",
    "event",
    "invoice",
    "customer",
    "subscription",
    "event_type",
    "at",
    "expect",
)
EXPECT_KEYS = ("rule", "action")
ACTIONS = ("write_off", "skip", "none", "awaits_approval")
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class CasesError(RulesError):
    """A cases file was refused; `problems` lists every error at file:line:col."""


@dataclass(frozen=True)
class Case:
    name: str
    line: int
    event: dict[str, Any]
    at: datetime | None
    expect_rule: str | None
    expect_action: str
    site: str | None = None  # `site:`: decided as that Chargebee site's event (RuleSet.for_site); None: no site


@dataclass(frozen=True)
class CaseResult:
    case: Case
    decision: Decision
    at: datetime

    approval: ApprovalNeed | None = None  # a live write-off above an approval tier waits for approvers

    @property
    def outcome(self) -> str:
        """The decision's action, or `awaits_approval` for a write-off that would wait for approvers."""
        return "awaits_approval" if self.approval is not None else self.decision.action

    @property
    def passed(self) -> bool:
        return self.decision.rule == self.case.expect_rule and self.outcome == self.case.expect_action


@dataclass(frozen=True)
class CasesFile:
    path: Path
    rules_path: Path | None  # from the file's `rules:` key
    cases: tuple[Case, ...]


def default_cases_path(rules_path: str | os.PathLike[str]) -> Path:
    """`rules.yaml` → `rules.cases.yaml`, in the same directory."""
    path = Path(rules_path)
    return path.with_name(f"{path.stem}.cases{path.suffix or '.yaml'}")


# A cases file:
#
#     rules: rules.yaml            # optional; relative to this file
#     cases:
#       - name: enterprise customers are never written off
#         invoice: {id: inv_1, customer_id: ent_acme, status: not_paid, amount_due: 1250, currency_code: USD}
#         event_type: payment_failed          # optional with `invoice:`; default payment_failed
#         customer: {cf_segment: enterprise}  # optional with `invoice:`: other resources of the event
#         at: 2026-03-01T00:00:00Z            # optional; default: now (days_overdue depends on it)
#         expect: {rule: protect-enterprise, action: skip}
#       - name: a real event, kept as a file
#         event: events/payment_failed.json   # or an inline mapping; a path is relative to this file
#         expect: {rule: null, action: none}  # no rule matches
#       - name: acme-eu writes off small balances
#         site: acme-eu                       # optional: decided as that site's event (rules' `sites:`)
#         invoice: {id: inv_9, status: not_paid, amount_due: 300, currency_code: EUR}
#         expect: {rule: eu-small-balances, action: write_off}
#
# `expect.action` is write_off, skip, none, or awaits_approval (a live write-off above a tier of
# `approvals:`: it would wait for approvers; write_off then means one under every tier). A write_off
# rule stopped by a guardrail (limits, invoice status ...) decides skip under its own name. Amounts
# are Chargebee's minor units (1250 is 12.50 USD); dates in the event data may be written as YAML
# dates and become Unix seconds as Chargebee sends them. A case without `site:` is decided for no
# site in particular: a rule limited to some sites then skips if it skips and does not apply if it
# writes off. The file is checked like rules.yaml: every problem at file:line:col.
def load_cases(
    path: str | os.PathLike[str], ruleset: RuleSet | None = None, sites: tuple[str, ...] | None = None
) -> CasesFile:
    """Read and check a cases file; with `ruleset`, expected rule names must exist in it; with `sites`
    (the deployment's), a case's `site:` must be one of them."""
    filename = os.fspath(path)
    try:
        text = read_limited(path, "cases file").decode("utf-8")
    except RulesError as exc:
        raise CasesError(exc.problems) from exc
    except UnicodeDecodeError as exc:
        raise CasesError([RuleProblem(filename, 1, 1, f"cannot read the cases file: {exc}")]) from exc
    problems = Problems(filename)
    root = compose(text, problems, check_tabs(text, problems))
    if root is None and not problems:
        problems.add(None, "the file is empty; it needs `cases:` with a list of cases")
    if problems:
        raise CasesError(problems.items)
    assert root is not None
    check_duplicate_keys(root, problems)
    if check_nodes(root, problems):
        raise CasesError(problems.items)
    base = Path(path).parent
    rules_path, cases = None, []
    if not isinstance(root, MappingNode):
        problems.add(root, f"a cases file is a mapping with `cases:`, not {describe(root)}")
    else:
        entries = {key: (key_node, value) for key, key_node, value in mapping_items(root, problems)}
        for key, (key_node, _) in entries.items():
            if key not in ("rules", "cases"):
                problems.add(key_node, f"unknown key '{key}'; a cases file has `rules` (optional) and `cases`")
        if "rules" in entries:
            value = _text(entries["rules"][1], "`rules`", problems)
            rules_path = base / value if value else None
        if "cases" not in entries:
            problems.add(root, "missing `cases:` with a list of cases")
        elif not isinstance(entries["cases"][1], SequenceNode):
            problems.add(entries["cases"][1], f"`cases` must be a list, not {describe(entries['cases'][1])}")
        else:
            seen: dict[str, int] = {}
            for index, node in enumerate(entries["cases"][1].value, start=1):
                case = _case(node, index, base, problems, ruleset, seen, sites)
                if case is not None:
                    cases.append(case)
    if problems:
        raise CasesError(sorted(problems.items, key=lambda p: (p.line, p.col)))
    return CasesFile(Path(path), rules_path, tuple(cases))


def run_cases(ruleset: RuleSet, cases: tuple[Case, ...] | list[Case], now: datetime) -> list[CaseResult]:
    """Decide every case with the real engine (the same `decide` the workers call)."""
    results = []
    for case in cases:
        at = case.at or now
        decision = decide(ruleset.for_site(case.site), case.event, at)
        approval = None
        if decision.action == "write_off" and not decision.dry_run:
            approval = approval_needed(ruleset.approvals, decision.currency, decision.amount_due_major)
        results.append(CaseResult(case, decision, at, approval))
    return results


def _case(
    node: Node,
    index: int,
    base: Path,
    problems: Problems,
    ruleset: RuleSet | None,
    seen: dict[str, int],
    sites: tuple[str, ...] | None = None,
) -> Case | None:
    if not isinstance(node, MappingNode):
        problems.add(node, f"case #{index} must be a mapping starting with `- name:`, not {describe(node)}")
        return None
    before = len(problems.items)
    entries: dict[str, tuple[ScalarNode, Node]] = {}
    for key, key_node, value in mapping_items(node, problems):
        if key not in CASE_KEYS:
            hint = did_you_mean(key, CASE_KEYS)
            problems.add(key_node, f"unknown key '{key}' in case #{index}; allowed: {', '.join(CASE_KEYS)}{hint}")
        else:
            entries.setdefault(key, (key_node, value))
    name = _text(entries["name"][1], f"the name of case #{index}", problems) if "name" in entries else None
    if "name" not in entries:
        problems.add(node, f"case #{index} has no `name`")
    elif name in seen:
        problems.add(entries["name"][1], f"duplicate case name '{name}' (first at line {seen[name]})")
    elif name:
        seen[name] = node.start_mark.line + 1
    label = f"case '{name}'" if name else f"case #{index}"
    event = _event(node, entries, label, base, problems)
    at = _moment(entries["at"][1], problems) if "at" in entries else None
    site = _site(entries["site"][1], sites, problems) if "site" in entries else None
    expect = _expect(node, entries, label, problems, ruleset)
    if len(problems.items) > before or event is None or expect is None or not name:
        return None
    return Case(name, node.start_mark.line + 1, event, at, expect[0], expect[1], site)


def _site(node: Node, sites: tuple[str, ...] | None, problems: Problems) -> str | None:
    """A case's `site:`: a Chargebee site name, one the deployment serves when `sites` is known."""
    value = _plain(node)
    if not isinstance(value, str) or not SITE_NAME.fullmatch(value):
        problems.add(node, f"`site` must be a Chargebee site name such as acme-eu, not {describe(node)}")
        return None
    if sites is not None and value not in sites:
        known = ", ".join(sites) or "none"
        problems.add(
            node, f"site '{value}' is not one this deployment serves (sites: {known}){did_you_mean(value, sites)}"
        )
        return None
    return value


def _event(
    node: MappingNode, entries: dict[str, tuple[ScalarNode, Node]], label: str, base: Path, problems: Problems
) -> dict[str, Any] | None:
    if ("event" in entries) == ("invoice" in entries):
        problems.add(node, f"{label} needs exactly one of `event` (a file or a mapping) or `invoice`")
        return None
    if "event" in entries:
        for extra in ("customer", "subscription", "event_type"):
            if extra in entries:
                problems.add(entries[extra][0], f"`{extra}` goes with `invoice:`; with `event:` put it in the event")
        value = entries["event"][1]
        if isinstance(value, ScalarNode):
            return _event_file(value, base, problems)
        event = _data(value, problems)
        if not isinstance(event, dict):
            problems.add(value, f"`event` must be a file name or a mapping, not {describe(value)}")
            return None
        return event
    invoice = _data(entries["invoice"][1], problems)
    if not isinstance(invoice, dict):
        problems.add(
            entries["invoice"][1],
            f"`invoice` must be a mapping of invoice fields, not {describe(entries['invoice'][1])}",
        )
        return None
    content: dict[str, Any] = {"invoice": invoice}
    for resource in ("customer", "subscription"):
        if resource in entries:
            value = _data(entries[resource][1], problems)
            if not isinstance(value, dict):
                problems.add(entries[resource][1], f"`{resource}` must be a mapping of its fields")
            content[resource] = value
    event_type = "payment_failed"
    if "event_type" in entries:
        event_type = _text(entries["event_type"][1], "`event_type`", problems) or event_type
    return {
        "id": f"case-{invoice.get('id', 'invoice')}",
        "event_type": event_type,
        "api_version": "v2",
        "content": content,
    }


def _event_file(node: ScalarNode, base: Path, problems: Problems) -> dict[str, Any] | None:
    path = base / node.value
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            problems.add(node, f"the event file {path} is larger than {MAX_FILE_BYTES // 1024} KiB")
            return None
        event = json.loads(data.decode("utf-8"))
    except OSError as exc:
        problems.add(node, f"cannot read the event file {path}: {exc.strerror or exc}")
        return None
    except ValueError as exc:
        problems.add(node, f"the event file {path} is not valid JSON: {exc}")
        return None
    if not isinstance(event, dict):
        problems.add(node, f"the event file {path} must hold a JSON object")
        return None
    return event


def _expect(
    node: MappingNode,
    entries: dict[str, tuple[ScalarNode, Node]],
    label: str,
    problems: Problems,
    ruleset: RuleSet | None,
) -> tuple[str | None, str] | None:
    if "expect" not in entries:
        problems.add(node, f"{label} has no `expect`, e.g. `expect: {{rule: protect-enterprise, action: skip}}`")
        return None
    value = entries["expect"][1]
    if not isinstance(value, MappingNode):
        problems.add(value, f"`expect` must be a mapping with `rule` and `action`, not {describe(value)}")
        return None
    fields = {key: (key_node, item) for key, key_node, item in mapping_items(value, problems)}
    for key, (key_node, _) in fields.items():
        if key not in EXPECT_KEYS:
            problems.add(
                key_node, f"unknown key '{key}' in expect; use rule and action{did_you_mean(key, EXPECT_KEYS)}"
            )
    if "action" not in fields:
        problems.add(value, f"`expect` of {label} has no `action` (write_off, skip, none or awaits_approval)")
        return None
    action_node = fields["action"][1]
    action = _plain(action_node)
    if action not in ACTIONS:
        hint = did_you_mean(action, ACTIONS) if isinstance(action, str) else ""
        problems.add(
            action_node,
            f"expected action must be write_off, skip, none or awaits_approval, not {describe(action_node)}{hint}",
        )
        return None
    rule = _plain(fields["rule"][1]) if "rule" in fields else None
    if rule is not None and not isinstance(rule, str):
        problems.add(fields["rule"][1], f"expected rule must be a rule name or null, not {describe(fields['rule'][1])}")
        return None
    if action == "none" and rule is not None:
        problems.add(fields["rule"][1], "with `action: none` no rule decides; use `rule: null` or leave it out")
        return None
    if action != "none" and rule is None:
        problems.add(value, f"`expect` of {label} must name the rule that decides {action}")
        return None
    if ruleset is not None and rule is not None and rule not in (names := [r.name for r in ruleset.every_rule]):
        problems.add(fields["rule"][1], f"there is no rule '{rule}' in {ruleset.filename}{did_you_mean(rule, names)}")
        return None
    return rule, action


def _plain(node: Node) -> Any:
    if not isinstance(node, ScalarNode):
        return node
    try:
        return scalar_value(node)
    except ScalarValueError:
        return node


def _text(node: Node, what: str, problems: Problems) -> str | None:
    value = _plain(node)
    if not isinstance(value, str) or not value:
        problems.add(node, f"{what} must be text, not {describe(node)}")
        return None
    return value


def _moment(node: Node, problems: Problems) -> datetime | None:
    text = node.value if isinstance(node, ScalarNode) else ""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        problems.add(node, f"`at` must be an ISO time such as 2026-03-01T00:00:00Z, not {describe(node)}")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _data(node: Node, problems: Problems) -> Any:
    """Plain Python data from event/invoice YAML; YAML dates become Unix seconds (UTC)."""
    if isinstance(node, MappingNode):
        return {key: _data(value, problems) for key, _, value in mapping_items(node, problems)}
    if isinstance(node, SequenceNode):
        return [_data(item, problems) for item in node.value]
    if node.tag == _TIMESTAMP:
        value = yaml.constructor.SafeConstructor().construct_yaml_timestamp(node)
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day) if isinstance(value, date) else value
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp())
    try:
        return scalar_value(node)  # type: ignore[arg-type]
    except ScalarValueError as exc:
        problems.add(node, str(exc))
        return None
