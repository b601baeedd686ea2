"""What is wrong with a rules file: one problem at a file:line:col, the error that refuses a file with
all of its problems, and the collector the loader fills while it reads the file.

A problem has two wordings. Its `message` is the sentence ops fix the file by, and it may quote the
file (a key, a value, the whole of a file that is not YAML at all, such as a `.env` saved over
rules.yaml); it goes to `reactor rules check`, the logs and the dashboard. Its `kind` is words of
the code's own, never text from the file: `public` (file:line:col and the kind) is all that pages
anyone can read, such as /readyz, show."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from yaml.nodes import Node


class ProblemKind(str, Enum):
    """What sort of problem a rule file has, in fixed words (never the file's)."""

    UNREADABLE = "the file cannot be read"
    TOO_LARGE = "the file is too large"
    NOT_TEXT = "not valid text"
    SYNTAX = "YAML syntax error"
    EMPTY = "the file is empty"
    NOT_RULES = "not a rules file"
    DUPLICATE_KEY = "duplicate key"
    DUPLICATE_NAME = "duplicate rule name"
    OVER_LIMIT = "over a limit"
    TAG = "YAML tag not allowed"
    WRONG_TYPE = "wrong type of value"
    UNKNOWN_KEY = "unknown key"
    MISSING_KEY = "missing key"
    UNKNOWN_FIELD = "unknown field"
    UNKNOWN_OPERATOR = "unknown operator"
    UNKNOWN_EVENT_TYPE = "unknown event type"
    MISPLACED = "misplaced key"
    INVALID_VALUE = "invalid value"
    UNKNOWN_SITE = "unknown Chargebee site"


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong with a rule file, at a 1-based line and column.

    The same record serves for warnings (RuleSet.warnings): a file with only warnings loads."""

    file: str
    line: int
    col: int
    message: str
    kind: ProblemKind = ProblemKind.INVALID_VALUE

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

    @property
    def public(self) -> str:
        """file:line:col and the kind, without a word of the file: what unauthenticated pages show."""
        return f"{self.file}:{self.line}:{self.col}: {self.kind.value}"


class RulesError(ValueError):
    """A rule file was refused; `problems` lists every error found, in file order."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class Problems:
    """Collects every problem of one file; `raise_if_any` refuses the file with all of them."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.items: list[RuleProblem] = []

    def add(
        self, where: Node | tuple[int, int] | None, message: str, kind: ProblemKind = ProblemKind.INVALID_VALUE
    ) -> None:
        """Record `message` at a node's start (or an explicit 1-based (line, col))."""
        if where is None:
            line, col = 1, 1
        elif isinstance(where, tuple):
            line, col = where
        else:
            line, col = where.start_mark.line + 1, where.start_mark.column + 1
        self.items.append(RuleProblem(self.filename, line, col, message, kind))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            unique = dict.fromkeys(sorted(self.items, key=lambda p: (p.line, p.col)))
            raise RulesError(list(unique))
