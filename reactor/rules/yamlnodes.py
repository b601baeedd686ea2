"""YAML with positions: compose the node tree and collect problems at file:line:col.

We never let PyYAML build Python objects for the whole file. `yaml.compose` keeps every
node's start mark, so every problem can point at the exact spot ops must fix, and it keeps
duplicate keys (which `safe_load` silently collapses to the last one, a classic way to lose a
condition without noticing). Scalars are converted one by one, with YAML 1.2 booleans:
only `true`/`false` are booleans, so `auto_collection: off` stays the text "off".
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .model import RuleProblem, RulesError

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_LEADING_WS = re.compile(r"[ \t]*")


class Problems:
    """Collects every problem of one file; `raise_if_any` refuses the file with all of them."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.items: list[RuleProblem] = []

    def add(self, where: Node | tuple[int, int] | None, message: str) -> None:
        """Record `message` at a node's start (or an explicit 1-based (line, col))."""
        if where is None:
            line, col = 1, 1
        elif isinstance(where, tuple):
            line, col = where
        else:
            line, col = where.start_mark.line + 1, where.start_mark.column + 1
        self.items.append(RuleProblem(self.filename, line, col, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            unique = dict.fromkeys(sorted(self.items, key=lambda p: (p.line, p.col)))
            raise RulesError(list(unique))


def position(node: Node) -> tuple[int, int]:
    """1-based (line, col) of a node."""
    return node.start_mark.line + 1, node.start_mark.column + 1


def check_tabs(text: str, problems: Problems) -> set[int]:
    """Report tabs in indentation (YAML forbids them; editors hide them). Returns their lines."""
    lines: set[int] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        indent = _LEADING_WS.match(line).group()  # type: ignore[union-attr]
        if "\t" in indent:
            problems.add(
                (number, indent.index("\t") + 1),
                "a tab character is used for indentation; YAML indentation must use spaces",
            )
            lines.add(number)
    return lines


def compose(text: str, problems: Problems, tab_lines: set[int]) -> Node | None:
    """Parse `text` into a node tree, or record the syntax error and return None."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        if line not in tab_lines:
            problems.add((line, col), _syntax_sentence(exc))
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line = before.count("\n") + 1
        col = exc.position - (before.rfind("\n") + 1) + 1
        problems.add((line, col), f"the file contains a character YAML does not allow (#x{exc.character:04x})")
    except yaml.YAMLError as exc:
        problems.add(None, f"YAML error: {exc}")
    except RecursionError:
        problems.add(None, "the file is nested too deeply to be a rule file")
    return None


def _syntax_sentence(exc: yaml.MarkedYAMLError) -> str:
    problem = (exc.problem or "invalid YAML").strip()
    sentence = f"YAML syntax error: {problem}"
    if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
        sentence += f" ({exc.context} at line {exc.context_mark.line + 1})"
    if "mapping values are not allowed" in problem:
        sentence += "; check the indentation, or quote a value that contains ': '"
    elif "'\\t'" in problem:
        sentence += "; YAML indentation must use spaces, not tabs"
    return sentence


def check_duplicate_keys(root: Node, problems: Problems) -> None:
    """Report every repeated key in a mapping, pointing at the repeat and naming the first line."""
    stack, seen_nodes = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            first_line: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    if key.value in first_line:
                        problems.add(
                            key,
                            f"duplicate key '{key.value}' (first at line {first_line[key.value]}); "
                            "YAML would silently keep only the last one",
                        )
                    else:
                        first_line[key.value] = key.start_mark.line + 1
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def mapping_items(node: MappingNode, problems: Problems) -> list[tuple[str, ScalarNode, Node]]:
    """(key text, key node, value node) for each entry; keys that are not plain text are reported."""
    items = []
    for key, value in node.value:
        if isinstance(key, ScalarNode) and key.value != "":
            items.append((key.value, key, value))
        else:
            problems.add(key, f"a key must be a plain name, not {describe(key)}")
    return items


class ScalarValueError(ValueError):
    """A scalar that rules cannot use (a date, binary data, a custom tag ...)."""


def scalar_value(node: ScalarNode) -> Any:
    """The Python value of a scalar node: str, int, float, bool or None."""
    tag, text = node.tag, node.value
    if tag == _STR:
        return text
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return {"true": True, "false": False}.get(text.lower(), text)
    if tag in (_INT, _FLOAT):
        if ":" in text:  # YAML 1.1 sexagesimal (1:30 == 90) surprises everyone; keep it text
            return text
        try:
            return yaml.constructor.SafeConstructor().construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            raise ScalarValueError(f"'{text}' is not a valid number") from exc
    raise ScalarValueError(f"'{text}' is read by YAML as {tag.rsplit(':', 1)[-1]}; quote it to use it as text")


def describe(node: Node) -> str:
    """How a node reads in a sentence: "a list", "a mapping", "the number 5", "the text 'x'"."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    try:
        value = scalar_value(node)  # type: ignore[arg-type]
    except ScalarValueError:
        return f"'{node.value}'"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {node.value}"
    return f"the text '{value}'"
