"""What is wrong with a rules file: one problem at a file:line:col, the error that refuses a file with
all of its problems, and the collector the loader fills while it reads the file."""

from __future__ import annotations

from dataclasses import dataclass

from yaml.nodes import Node


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong with a rule file, at a 1-based line and column.

    The same record serves for warnings (RuleSet.warnings): a file with only warnings loads."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


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
