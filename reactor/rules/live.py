"""The rules in force for a running process: the last good version of a rules file.

`current()` costs one `stat()` when nothing changed, so callers ask for it on every job and every
readiness probe. An edit that does not load is refused: the last good rules stay in force, and
the problems are kept for /readyz (their position and kind only: reactor/rules/problems.py), the
dashboard and the logs. A process that never had good rules fails loudly.

A `reporter` hears of every reload, accepted or refused, with the content digest; it is how refused
edits are counted across processes and hosts. It is passed in where the LiveRules are built: the
web's `create_app` and the worker's `build_context` pass a reactor.reloads.RulesReloadReporter.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from .loader import load_rules
from .model import RuleSet
from .problems import RulesError
from .yamlnodes import MAX_FILE_BYTES

log = logging.getLogger(__name__)

Reporter = Callable[[str, str, str, list[str]], None]
"""reporter(outcome "accepted" | "refused", content digest, path, error lines)"""


class LiveRules:
    def __init__(
        self,
        path: str | os.PathLike,
        loader: Callable[[Path], RuleSet] = load_rules,
        reporter: Reporter | None = None,
        site: str | None = None,
    ):
        self.path = Path(path)
        self.site = site  # the Chargebee site whose view of the rules `current()` gives (RuleSet.for_site)
        self._loader = loader
        self._reporter = reporter
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._rules: RuleSet | None = None
        self.error: RulesError | None = None
        self.loaded_at: datetime | None = None
        self.refused_reloads = 0
        self.refused_at: datetime | None = None
        self.refused_digest: str | None = None

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> RuleSet:
        """The rules in force (for `site`, when given); reloads when the file changed. Raises
        RulesError only if none ever loaded."""
        stamp = self._file_stamp()
        if stamp == self._stamp and self._rules is not None:
            return self._rules if self.site is None else self._rules.for_site(self.site)
        with self._lock:
            if stamp != self._stamp or self._rules is None:
                self._reload(stamp)
            if self._rules is None:
                assert self.error is not None
                raise self.error
            return self._rules if self.site is None else self._rules.for_site(self.site)

    def _digest(self) -> str:
        """The refused file's digest, from no more than the bytes the loader reads (a refused 1 GB
        file costs no more than one at the size limit)."""
        try:
            with self.path.open("rb") as file:
                return hashlib.sha256(file.read(MAX_FILE_BYTES + 1)).hexdigest()[:12]
        except OSError:
            return "unreadable"

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        self._stamp = stamp
        try:
            rules = self._loader(self.path)
        except RulesError as exc:
            self.error = exc
            self.refused_at = datetime.now(timezone.utc)
            self.refused_digest = self._digest()
            errors = [str(p) for p in exc.problems]
            if self._rules is not None:
                self.refused_reloads += 1
                log.error(
                    "rules edit refused, keeping version %s: %s",
                    self._rules.version,
                    "; ".join(errors),
                    extra={"rules_version": self._rules.version},
                )
            else:
                log.error("rules file refused, no rules in force: %s", "; ".join(errors))
            self._report("refused", self.refused_digest, errors)
            return
        previous = self._rules.version if self._rules else None
        self._rules, self.error = rules, None
        self.loaded_at = datetime.now(timezone.utc)
        if previous and previous != rules.version:
            log.info(
                "rules reloaded: version %s replaces %s",
                rules.version,
                previous,
                extra={"rules_version": rules.version},
            )
            self._report("accepted", rules.version, [])

    def _report(self, outcome: str, digest: str, errors: list[str]) -> None:
        if self._reporter is None:
            return
        try:
            self._reporter(outcome, digest, str(self.path), errors)
        except Exception:  # reporting must never cost the rules in force
            log.exception("rules reload reporter failed")

    def status(self, detail: bool = False) -> dict[str, object]:
        """For /readyz: the version in force and any refused edit, each problem as its position and
        kind (`RuleProblem.public`: the file's text may hold anything, a `.env`'s passwords too).
        With `detail`, for readers behind a login, each problem's whole sentence."""
        try:
            rules = self.current()
        except RulesError:
            rules = None
        return {
            "path": str(self.path),
            "version": rules.version if rules else None,
            "mode": rules.mode if rules else None,
            "rules": len(rules.rules) if rules else 0,
            "loaded_at": self.loaded_at.isoformat(timespec="seconds") if self.loaded_at else None,
            "errors": [str(p) if detail else p.public for p in self.error.problems] if self.error else [],
            "refused_version": self.refused_digest if self.error else None,
            "refused_at": self.refused_at.isoformat(timespec="seconds") if self.error and self.refused_at else None,
            "refused_reloads": self.refused_reloads,
        }
