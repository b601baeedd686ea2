"""Load rules.yaml: validate the whole file, report every problem at file:line:col, compile.

Ops edit this file by hand and a mistake can move money, so the loader is strict and talkative:
a file with any problem is refused whole, and every problem is reported at once with its
position and one plain sentence (with a did-you-mean for typos), so one round of fixes is enough.
Warnings (a condition that is always or never true, a skip rule on events without an invoice:
lint.py) do not refuse the file; they ride along on RuleSet.warnings for `reactor rules check`.

Every process reads this file (the web workers for /readyz, every job), so its cost is bounded before
parsing: a file over yamlnodes.MAX_FILE_BYTES is refused at 1:1 unread, one over MAX_RULES rules or
conditions.MAX_CONDITIONS conditions at the first one too many.
"""

from __future__ import annotations

import hashlib
import os
import re

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .approvals import parse_approvals
from .comments import template_problems
from .conditions import ConditionCompiler
from .event_types import KNOWN_EVENT_TYPES
from .fields import did_you_mean
from .lint import check_on, condition_warnings
from .model import Limits, Rule, RuleSet
from .money import MoneyThreshold
from .operators import OperandError, _decimal
from .problems import ProblemKind, RuleProblem, RulesError
from .yamlnodes import (
    Problems,
    ScalarValueError,
    check_duplicate_keys,
    check_nodes,
    check_tabs,
    compose,
    describe,
    mapping_items,
    position,
    read_limited,
    scalar_value,
    size_problem,
)

TOP_KEYS = ("version", "mode", "limits", "approvals", "rules")
RULE_KEYS = (
    "name",
    "description",
    "on",
    "sites",
    "when",
    "action",
    "comment",
    "while_collecting",
    "apply_credits_first",
)

LIMIT_KEYS = ("max_write_off", "max_per_day", "max_count_per_hour")
MODES = ("live", "dry_run")
ACTIONS = ("write_off", "skip")
WHILE_COLLECTING = ("wait", "write_off")
"""`while_collecting:` values. `wait` (the default): the engine leaves an invoice alone while
Chargebee is still collecting it (reactor/rules/safety.py); `write_off`: the rule means it anyway."""
SITE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
"""A Chargebee site name, as in `<name>.chargebee.com` (the same pattern as reactor/sites.py's: the
rules core reads no settings)."""
SUPPORTED_VERSION = 1
DEFAULT_MODE = "dry_run"
"""A file without `mode:` only records decisions: acting on money must be asked for explicitly."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_RULES = 1000
"""Rules in one file. bench/rules_50.yaml decides in microseconds with 50; a thousand rules of its
kind take about 220 KiB of yamlnodes.MAX_FILE_BYTES (256 KiB)."""


def load_rules(path: str | os.PathLike[str], sites: tuple[str, ...] | None = None) -> RuleSet:
    """Read and compile a rule file; RulesError (at 1:1) also when it cannot be read or is too large.
    With `sites` (the Chargebee sites the deployment serves), a `sites:` naming any other is refused.

    The RuleSet returned decides for no site in particular (`RuleSet.for_site(None)`): a rule limited
    to some sites is left out when it writes off and kept when it skips. `for_site(name)` is the view
    of one site's events."""
    filename = os.fspath(path)
    data = read_limited(path, "rule file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line, col = before.count(b"\n") + 1, exc.start - (before.rfind(b"\n") + 1) + 1
        problem = RuleProblem(filename, line, col, "the file is not valid UTF-8 text", ProblemKind.NOT_TEXT)
        raise RulesError([problem]) from exc
    return _parse(text, filename, data, sites)


def parse_rules(text: str, filename: str = "rules.yaml", sites: tuple[str, ...] | None = None) -> RuleSet:
    """Compile rule-file text; `filename` only labels the problems; `sites` as for load_rules."""
    # a str has at most as many characters as bytes: a huge one is refused before it is encoded
    problem = size_problem(len(text), "rule file")
    data = text if isinstance(text, bytes) or problem is not None else text.encode("utf-8", "surrogatepass")
    problem = problem or size_problem(len(data), "rule file")
    if problem is not None:
        raise RulesError([RuleProblem(filename, 1, 1, problem, ProblemKind.TOO_LARGE)])
    if isinstance(text, bytes):
        return _parse(text.decode("utf-8", "replace"), filename, text, sites)
    return _parse(text, filename, data, sites)


def _parse(text: str, filename: str, data: bytes, sites: tuple[str, ...] | None = None) -> RuleSet:
    problems, warnings = Problems(filename), Problems(filename)
    tab_lines = check_tabs(text, problems)
    root = compose(text, problems, tab_lines)
    if root is None:
        if not problems:
            problems.add(None, "the file is empty; it needs at least `version: 1` and `rules:`", ProblemKind.EMPTY)
        problems.raise_if_any()
    assert root is not None
    check_duplicate_keys(root, problems)
    if check_nodes(root, problems):  # too deep, or Python tags: nothing further is worth reading
        problems.raise_if_any()
    if not isinstance(root, MappingNode):
        problems.add(
            root,
            f"the file must be a mapping with version, mode, limits and rules, not {describe(root)}",
            ProblemKind.NOT_RULES,
        )
        problems.raise_if_any()
    version = hashlib.sha256(data).hexdigest()[:12]
    ruleset = _ruleset(root, problems, warnings, filename, version)  # type: ignore[arg-type]
    problems.raise_if_any()
    assert ruleset is not None
    if sites is not None:
        check_sites(ruleset, sites, problems)
        problems.raise_if_any()
    return ruleset.for_site(None)


def check_sites(ruleset: RuleSet, sites: tuple[str, ...], problems: Problems) -> None:
    """Every name in a rule's `sites:` must be one of `sites`, the deployment's: a misspelt name would
    leave a protective rule protecting nothing."""
    for rule in ruleset.every_rule:
        for name, line, col in rule.site_positions:
            if name not in sites:
                known = ", ".join(sites) or "none"
                problems.add(
                    (line, col),
                    f"rule '{rule.name}' names site '{name}', which this deployment does not serve "
                    f"(sites: {known}){did_you_mean(name, sites)}",
                    ProblemKind.UNKNOWN_SITE,
                )


def _entries(
    node: MappingNode, problems: Problems, allowed: tuple[str, ...], where: str
) -> dict[str, tuple[Node, Node]]:
    """Known keys of a mapping (first occurrence wins); unknown keys are reported."""
    entries: dict[str, tuple[Node, Node]] = {}
    for key, key_node, value in mapping_items(node, problems):
        if key not in allowed:
            problems.add(
                key_node,
                f"unknown key '{key}' in {where}; allowed keys are {', '.join(allowed)}{did_you_mean(key, allowed)}",
                ProblemKind.UNKNOWN_KEY,
            )
        else:
            entries.setdefault(key, (key_node, value))
    return entries


def _ruleset(root: MappingNode, problems: Problems, warnings: Problems, filename: str, version: str) -> RuleSet | None:
    top = _entries(root, problems, TOP_KEYS, "the top level")
    if "version" not in top:
        problems.add(
            root,
            f"missing `version`; add `version: {SUPPORTED_VERSION}` at the top of the file",
            ProblemKind.MISSING_KEY,
        )
    else:
        node = top["version"][1]
        if _plain(node) != SUPPORTED_VERSION or isinstance(_plain(node), bool):
            shown = node.value if isinstance(node, ScalarNode) else describe(node)
            problems.add(node, f"unsupported version {shown}; this reactor understands `version: 1`")
    mode = DEFAULT_MODE
    if "mode" in top:
        node = top["mode"][1]
        value = _plain(node)
        if value in MODES:
            mode = value
        else:
            hint = did_you_mean(value, MODES) if isinstance(value, str) else ""
            shown = f"'{value}'" if isinstance(value, str) else describe(node)
            problems.add(node, f"mode must be live or dry_run, not {shown}{hint}")
    limits = _limits(top["limits"][1], problems) if "limits" in top else Limits()
    approvals = parse_approvals(top["approvals"][1], problems) if "approvals" in top else ()
    rules: list[Rule] = []
    if "rules" not in top:
        problems.add(
            root,
            "missing `rules`; add `rules:` with a list of rules (it may be empty: `rules: []`)",
            ProblemKind.MISSING_KEY,
        )
    elif not isinstance(top["rules"][1], SequenceNode):
        node = top["rules"][1]
        if not (isinstance(node, ScalarNode) and _plain(node) is None):
            problems.add(
                node,
                f"`rules` must be a list of rules, each starting with `- name:`, not {describe(node)}",
                ProblemKind.WRONG_TYPE,
            )
    elif len(top["rules"][1].value) > MAX_RULES:
        too_many = top["rules"][1].value[MAX_RULES]
        problems.add(
            too_many,
            f"the rule file has more than {MAX_RULES} rules; this is rule #{MAX_RULES + 1}",
            ProblemKind.OVER_LIMIT,
        )
    else:
        compiler, first_seen = ConditionCompiler(problems), {}
        for index, item in enumerate(top["rules"][1].value, start=1):
            rule = _rule(item, index, problems, warnings, compiler, first_seen)
            if rule is not None:
                rules.append(rule)
    if problems:
        return None
    found = tuple(dict.fromkeys(sorted(warnings.items, key=lambda p: (p.line, p.col))))
    return RuleSet(
        version=version,
        mode=mode,
        rules=tuple(rules),
        limits=limits,
        filename=filename,
        warnings=found,
        approvals=approvals,
    )


def _plain(node: Node) -> object:
    """A scalar's value, or the node itself when it is not a usable scalar."""
    if not isinstance(node, ScalarNode):
        return node
    try:
        return scalar_value(node)
    except ScalarValueError:
        return node


def _limits(node: Node, problems: Problems) -> Limits:
    if not isinstance(node, MappingNode):
        problems.add(
            node,
            f"`limits` must be a mapping such as `max_write_off: {{USD: 500}}`, not {describe(node)}",
            ProblemKind.WRONG_TYPE,
        )
        return Limits()
    entries = _entries(node, problems, LIMIT_KEYS, "limits")
    money = {
        name: _money_limit(entries[name][1], name, problems)
        for name in ("max_write_off", "max_per_day")
        if name in entries
    }
    count = _count_limit(entries["max_count_per_hour"][1], problems) if "max_count_per_hour" in entries else None
    return Limits(money.get("max_write_off"), money.get("max_per_day"), count)


def _money_limit(value: Node, name: str, problems: Problems) -> MoneyThreshold | None:
    """`name: 500` (any currency) or `name: {USD: 500, EUR: 450}`, in major units."""
    try:
        if isinstance(value, MappingNode):
            if not value.value:
                raise OperandError(f"limits.{name} has an empty currency map; give e.g. {{USD: 500}}", value)
            amounts, bad = {}, False
            for cur_node, amount_node in value.value:  # every bad entry is reported, not just the first
                code = cur_node.value if isinstance(cur_node, ScalarNode) else ""
                try:
                    if not re.fullmatch(r"[A-Z]{3}", code):
                        raise OperandError(
                            f"currency codes are three capital letters such as USD, not {describe(cur_node)}", cur_node
                        )
                    amounts[code] = _positive(amount_node, name)
                except OperandError as exc:
                    problems.add(exc.node or amount_node, str(exc))
                    bad = True
            return None if bad else MoneyThreshold(per_currency=amounts)
        return MoneyThreshold(any_currency=_positive(value, name))
    except OperandError as exc:
        problems.add(exc.node or value, str(exc))
    return None


def _count_limit(node: Node, problems: Problems) -> int | None:
    value = _plain(node)
    if type(value) is not int or value < 1:
        problems.add(
            node, f"limits.max_count_per_hour must be a whole number of write-offs (1 or more), not {describe(node)}"
        )
        return None
    return value


def _positive(node: Node, name: str = "max_write_off") -> object:
    amount = _decimal(node, f"limits.{name}")
    if amount <= 0:
        raise OperandError(f"limits.{name} must be a positive amount, not {amount}", node)
    return amount


def _rule(
    node: Node,
    index: int,
    problems: Problems,
    warnings: Problems,
    compiler: ConditionCompiler,
    first_seen: dict[str, int],
) -> Rule | None:
    if not isinstance(node, MappingNode):
        problems.add(
            node,
            f"rule #{index} must be a mapping starting with `- name:`, not {describe(node)}",
            ProblemKind.WRONG_TYPE,
        )
        return None
    before = len(problems.items)
    entries = _entries(node, problems, RULE_KEYS, f"rule #{index}")
    name = _rule_name(node, entries, index, problems, first_seen)
    label = f"rule '{name}'" if name else f"rule #{index}"
    on = _on(entries["on"][1], problems) if "on" in entries else None
    sites, site_positions = _sites(entries["sites"][1], problems) if "sites" in entries else (None, ())
    action = _action(node, entries, label, problems)
    condition = None
    if "when" not in entries:
        problems.add(
            node, f"{label} has no `when`; give the conditions under which it applies", ProblemKind.MISSING_KEY
        )
    else:
        condition = compiler.compile(entries["when"][1])
    if on is not None and action is not None:
        check_on(entries["on"][1], action, label, problems, warnings)
    comment = _comment(entries, action, label, problems)
    while_collecting = _while_collecting(entries, action, label, problems)
    credits_first = _apply_credits_first(entries, action, label, problems)
    description = None
    if "description" in entries:
        description = _plain(entries["description"][1])
        if not isinstance(description, str):
            problems.add(entries["description"][1], f"the description of {label} must be text", ProblemKind.WRONG_TYPE)
    if len(problems.items) > before or condition is None or name is None or action is None:
        return None
    for line, col, sentence in condition_warnings(condition):
        warnings.add((line, col), f"in {label}, {sentence}")
    line, col = position(node)
    return Rule(
        name,
        action,
        condition,
        on,
        comment,
        description,
        line,
        col,
        while_collecting=while_collecting,
        apply_credits_first=credits_first,
        sites=sites,
        site_positions=site_positions,
    )


def _rule_name(
    node: MappingNode,
    entries: dict[str, tuple[Node, Node]],
    index: int,
    problems: Problems,
    first_seen: dict[str, int],
) -> str | None:
    if "name" not in entries:
        problems.add(node, f"rule #{index} has no `name`; every rule needs a unique name", ProblemKind.MISSING_KEY)
        return None
    name_node = entries["name"][1]
    name = _plain(name_node)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.add(
            name_node,
            f"the name of rule #{index} must be 1 to 64 letters, digits, '-', '_' or '.', "
            f"starting with a letter or digit, not {describe(name_node)}",
        )
        return None
    if name in first_seen:
        problems.add(
            name_node,
            f"duplicate rule name '{name}' (first used at line {first_seen[name]}); names must be unique "
            "because decisions and idempotency keys refer to them",
            ProblemKind.DUPLICATE_NAME,
        )
    else:
        first_seen[name] = position(name_node)[0]
    return name


def _on(node: Node, problems: Problems) -> frozenset[str] | None:
    items = node.value if isinstance(node, SequenceNode) else [node]
    if not items:
        problems.add(node, "`on` is an empty list; remove it to match every event type, or name some")
        return None
    types = []
    for item in items:
        value = _plain(item)
        if not isinstance(value, str):
            problems.add(
                item,
                f"`on` takes event type names such as payment_failed, not {describe(item)}",
                ProblemKind.WRONG_TYPE,
            )
        elif value not in KNOWN_EVENT_TYPES:
            problems.add(
                item,
                f"unknown event type '{value}' in `on`{did_you_mean(value, KNOWN_EVENT_TYPES)}",
                ProblemKind.UNKNOWN_EVENT_TYPE,
            )
        else:
            types.append(value)
    return frozenset(types)


def _sites(node: Node, problems: Problems) -> tuple[frozenset[str] | None, tuple[tuple[str, int, int], ...]]:
    """`sites: [acme-eu, acme-us]` (or one name): the Chargebee sites a rule applies to."""
    items = node.value if isinstance(node, SequenceNode) else [node]
    if not items:
        problems.add(node, "`sites` is an empty list; remove it to apply the rule to every site, or name some")
        return None, ()
    found: list[tuple[str, int, int]] = []
    for item in items:
        value = _plain(item)
        if not isinstance(value, str) or not SITE_NAME.fullmatch(value):
            shown = f"'{value}'" if isinstance(value, str) else describe(item)
            problems.add(
                item,
                f"`sites` takes Chargebee site names (lower-case letters, digits and dashes, as in "
                f"<name>.chargebee.com), not {shown}",
                ProblemKind.WRONG_TYPE,
            )
        else:
            found.append((value, *position(item)))
    return frozenset(name for name, _, _ in found), tuple(found)


def _action(node: MappingNode, entries: dict[str, tuple[Node, Node]], label: str, problems: Problems) -> str | None:
    if "action" not in entries:
        problems.add(node, f"{label} has no `action`; use write_off or skip", ProblemKind.MISSING_KEY)
        return None
    action_node = entries["action"][1]
    value = _plain(action_node)
    if value in ACTIONS:
        return value  # type: ignore[return-value]
    hint = did_you_mean(value, ACTIONS) if isinstance(value, str) else ""
    shown = f"'{value}'" if isinstance(value, str) else describe(action_node)
    problems.add(action_node, f"unknown action {shown} in {label}; use write_off or skip{hint}")
    return None


def _comment(entries: dict[str, tuple[Node, Node]], action: str | None, label: str, problems: Problems) -> str | None:
    if "comment" not in entries:
        return None
    node = entries["comment"][1]
    value = _plain(node)
    if not isinstance(value, str):
        problems.add(node, f"the comment of {label} must be text, not {describe(node)}", ProblemKind.WRONG_TYPE)
        return None
    if action == "skip":
        problems.add(
            node,
            f"{label} skips, and only write_off rules use a comment; use `description` for notes",
            ProblemKind.MISPLACED,
        )
    for sentence in template_problems(value):
        problems.add(node, sentence)
    return value


def _while_collecting(entries: dict[str, tuple[Node, Node]], action: str | None, label: str, problems: Problems) -> str:
    """`while_collecting: write_off` lets a write_off rule act while Chargebee still collects."""
    if "while_collecting" not in entries:
        return "wait"
    node = entries["while_collecting"][1]
    value = _plain(node)
    if value not in WHILE_COLLECTING:
        hint = did_you_mean(value, WHILE_COLLECTING) if isinstance(value, str) else ""
        shown = f"'{value}'" if isinstance(value, str) else describe(node)
        problems.add(node, f"while_collecting of {label} must be wait or write_off, not {shown}{hint}")
        return "wait"
    if action == "skip":
        problems.add(
            node, f"{label} skips, and only write_off rules use while_collecting; remove it", ProblemKind.MISPLACED
        )
    return value  # type: ignore[return-value]


def _apply_credits_first(
    entries: dict[str, tuple[Node, Node]], action: str | None, label: str, problems: Problems
) -> bool:
    """`apply_credits_first: true`: the customer's refundable credits go on the invoice before the
    write-off, which then takes only what is left (reactor/jobs/credits.py)."""
    if "apply_credits_first" not in entries:
        return False
    node = entries["apply_credits_first"][1]
    value = _plain(node)
    if not isinstance(value, bool):
        problems.add(
            node, f"apply_credits_first of {label} must be true or false, not {describe(node)}", ProblemKind.WRONG_TYPE
        )
        return False
    if action == "skip":
        problems.add(
            node, f"{label} skips, and only write_off rules use apply_credits_first; remove it", ProblemKind.MISPLACED
        )
    return value
