"""What the source says of itself: comments and docstrings cite only what a reader of the repository
can open, its own files and Chargebee's public docs (docs/design.md, "Sources")."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUFFIXES = {".py", ".sh", ".yaml", ".html"}
# Notes that are not in the repository: a reader cannot follow a reference to them.
UNREADABLE = re.compile(r"chargebee-api\.md|shared notes|\.\./shared/|/work/")


def sources() -> list[Path]:
    here = Path(__file__).resolve()
    found = [REPO / name for name in ("rules.yaml", "rules.cases.yaml", "Procfile")]
    for folder in ("reactor", "tests", "bench", "scripts", "examples", ".ci"):
        found += [p for p in (REPO / folder).rglob("*") if p.suffix in SUFFIXES and p.resolve() != here]
    return sorted(p for p in found if p.is_file())


def test_sources_cite_only_what_a_reader_can_open():
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sources()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if UNREADABLE.search(line)
    ]
    assert not found, "references a reader of the repository cannot open:\n" + "\n".join(found)


def test_the_check_reads_the_code():
    names = {p.relative_to(REPO).as_posix() for p in sources()}
    assert {"reactor/chargebee/client.py", "reactor/jobs/__init__.py", "rules.yaml"} <= names
