"""YAML with positions: compose the node tree and collect problems at file:line:col.

We never let PyYAML build Python objects for the whole file. `yaml.compose` keeps every
node's start mark, so every problem can point at the exact spot ops must fix, and it keeps
duplicate keys (which `safe_load` silently collapses to the last one, a classic way to lose a
condition without noticing). Scalars are converted one by one, with YAML 1.2 booleans:
only `true`/`false` are booleans, so `auto_collection: off` stays the text "off".

Files are read within limits (MAX_FILE_BYTES, MAX_NESTING) and composed with libyaml's C parser when
PyYAML has it: its nodes keep the same start marks (line and column), and it composes a rules file
about ten times faster than the pure-Python composer (docs/benchmarks.md, "Figures behind choices
in the code").
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .problems import ProblemKind, Problems, RuleProblem, RulesError

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_LEADING_WS = re.compile(r"[ \t]*")
_STANDARD_TAG = "tag:yaml.org,2002:"
_PYTHON_TAG = "tag:yaml.org,2002:python/"

MAX_FILE_BYTES = 256 * 1024
"""Largest rule (or cases) file read, refused at 1:1 before any parsing. The shipped rules.yaml is
8.3 KiB and bench/rules_50.yaml (50 rules) 11.5 KiB, so this leaves room for about a thousand rules
(loader.MAX_RULES); a file at the limit loads in about half a second with the C parser. A 10 MB file
used to hold every process for 10 s, a 50 MB one for minutes."""
MAX_EXPANDED_NODES = MAX_FILE_BYTES
"""Most YAML nodes (keys, values, list items) a file may hold once every alias (`*name`) is read as
the copy of its anchored node it stands for, as the loader and every process read it. A file
without aliases cannot hold more (a node takes at least a byte); a 100 KiB file of aliases used to
hold 5 million `in` values (12 s and 650 MB in `rules check`)."""
MAX_NESTING = 100
"""Deepest YAML nesting accepted, reported at the first node past it. Rules need a handful of levels
(conditions may nest 32 deep, conditions.MAX_DEPTH); libyaml stops at 1000 on its own, and the pure
composer is recursive, so without a limit deep nesting would end in RecursionError with no position."""


class _PurePositionsLoader(yaml.SafeLoader):
    """The pure-Python composer, stopped at MAX_NESTING with the position of the node too deep."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, "exceeded maximum nesting depth", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_LOADER: Any = getattr(yaml, "CSafeLoader", None) or _PurePositionsLoader


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
                ProblemKind.SYNTAX,
            )
            lines.add(number)
    return lines


def read_limited(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of a file of at most MAX_FILE_BYTES; RulesError at 1:1 when it is larger or unreadable.

    Never reads more than one byte past the limit, whatever the file (a growing log, /dev/zero)."""
    filename = os.fspath(path)
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        problem = RuleProblem(filename, 1, 1, f"cannot read the {what}: {reason}", ProblemKind.UNREADABLE)
        raise RulesError([problem]) from exc
    problem = size_problem(len(data), what)
    if problem is not None:
        raise RulesError([RuleProblem(filename, 1, 1, problem, ProblemKind.TOO_LARGE)])
    return data


def size_problem(size: int, what: str) -> str | None:
    """The sentence refusing a file of `size` bytes, or None when it is within MAX_FILE_BYTES."""
    if size <= MAX_FILE_BYTES:
        return None
    return (
        f"the {what} is too large: more than {MAX_FILE_BYTES // 1024} KiB ({MAX_FILE_BYTES} bytes); "
        "a thousand rules of everyday size take about 220 KiB"
    )


def compose(text: str, problems: Problems, tab_lines: set[int]) -> Node | None:
    """Parse `text` into a node tree, or record the syntax error and return None."""
    try:
        return yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        if line not in tab_lines:
            too_deep = "exceeded maximum nesting depth" in (exc.problem or "")
            problems.add((line, col), _syntax_sentence(exc), ProblemKind.OVER_LIMIT if too_deep else ProblemKind.SYNTAX)
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line = before.count("\n") + 1
        col = exc.position - (before.rfind("\n") + 1) + 1
        problems.add(
            (line, col),
            f"the file contains a character YAML does not allow (#x{exc.character:04x})",
            ProblemKind.NOT_TEXT,
        )
    except yaml.YAMLError as exc:
        problems.add(None, f"YAML error: {exc}", ProblemKind.SYNTAX)
    except UnicodeEncodeError as exc:  # libyaml reads UTF-8: a lone surrogate in a str cannot be encoded
        before = text[: exc.start]
        line, col = before.count("\n") + 1, exc.start - (before.rfind("\n") + 1) + 1
        problems.add(
            (line, col), "the file contains a character that is not valid text (a lone surrogate)", ProblemKind.NOT_TEXT
        )
    return None


def _syntax_sentence(exc: yaml.MarkedYAMLError) -> str:
    problem = (exc.problem or "invalid YAML").strip()
    sentence = f"YAML syntax error: {problem}"
    if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
        sentence += f" ({exc.context} at line {exc.context_mark.line + 1})"
    if "exceeded maximum nesting depth" in problem:
        return f"the file is nested too deeply here (more than {MAX_NESTING} levels); rules need only a few"
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
                            ProblemKind.DUPLICATE_KEY,
                        )
                    else:
                        first_line[key.value] = key.start_mark.line + 1
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def check_nodes(root: Node, problems: Problems) -> bool:
    """Report nodes nested deeper than MAX_NESTING, YAML tags a rule file must not use, and aliases
    that expand past MAX_EXPANDED_NODES; True if any. A Python tag (`!!python/object/apply:os.system`)
    is never executed (nodes are composed, not constructed), but it is named as such so that no one
    mistakes it for a typo."""
    return _check_depth_and_tags(root, problems) or _check_expansion(root, problems)


def _check_expansion(root: Node, problems: Problems) -> bool:
    """Report the first node (in document order, innermost first) whose expansion holds more than
    MAX_EXPANDED_NODES nodes, counting a node shared through aliases once for every use, or a node
    that contains itself; True if so. Each distinct node is visited once."""
    sizes: dict[int, int] = {}
    expanding: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = _children(node)
        if children_done:
            expanding.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[id(node)] > MAX_EXPANDED_NODES:
                problems.add(node, _EXPANDS_TOO_FAR, ProblemKind.OVER_LIMIT)
                return True
        elif id(node) in expanding:  # reached again from inside itself, through an alias
            problems.add(
                node,
                "this contains itself through a YAML alias (*name): read as a copy, it never ends",
                ProblemKind.OVER_LIMIT,
            )
            return True
        elif id(node) not in sizes:
            expanding.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(children) if id(child) not in sizes)
    return False


_EXPANDS_TOO_FAR = (
    f"with its YAML aliases (*name) read as copies, this holds more than {MAX_EXPANDED_NODES} values; "
    "a rule file without aliases never does"
)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _check_depth_and_tags(root: Node, problems: Problems) -> bool:
    found = False
    stack: list[tuple[Node, int]] = [(root, 1)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:  # aliases share nodes; each is checked once
            continue
        seen.add(id(node))
        if depth > MAX_NESTING:
            problems.add(
                node, f"the file is nested too deeply here (more than {MAX_NESTING} levels)", ProblemKind.OVER_LIMIT
            )
            return True
        sentence = tag_problem(node.tag)
        if sentence is not None:
            problems.add(node, sentence, ProblemKind.TAG)
            found = True
        if isinstance(node, MappingNode):
            stack.extend((child, depth + 1) for pair in reversed(node.value) for child in reversed(pair))
        elif isinstance(node, SequenceNode):
            stack.extend((child, depth + 1) for child in reversed(node.value))
    return found


def tag_problem(tag: str) -> str | None:
    """Why an explicit YAML tag is refused, or None for the standard ones."""
    if tag.startswith(_PYTHON_TAG):
        shown = "!!python/" + tag[len(_PYTHON_TAG) :]
        return f"the Python tag '{shown}' is not allowed: a rule file is plain data, never Python objects"
    if not tag.startswith(_STANDARD_TAG):
        return f"the custom YAML tag '{tag}' is not allowed in a rule file; remove it"
    return None


def mapping_items(node: MappingNode, problems: Problems) -> list[tuple[str, ScalarNode, Node]]:
    """(key text, key node, value node) for each entry; keys that are not plain text are reported."""
    items = []
    for key, value in node.value:
        if isinstance(key, ScalarNode) and key.value != "":
            items.append((key.value, key, value))
        else:
            problems.add(key, f"a key must be a plain name, not {describe(key)}", ProblemKind.WRONG_TYPE)
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
    sentence = tag_problem(tag)
    if sentence is not None:
        raise ScalarValueError(sentence)
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
