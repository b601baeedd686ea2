"""Rules reloads as every process sees them, recorded once per edit in Redis.

Every web and worker process watches its own copy of rules.yaml (reactor/rules/live.py), so with
N processes an edit is seen N times. /metrics reads the counts and the dashboard the last refused
edit from here, so the Redis layout of reloads is written in one place.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime, timezone
from typing import Any

import redis

from .keys import Keys
from .notices import Notices
from .redaction import redact

log = logging.getLogger(__name__)

RELOAD_MARK_TTL = 30 * 86400
"""How long an edit stays counted: the same content seen again within it is not a new edit."""


class RulesReloadReporter:
    """Records rules reloads in Redis, once per distinct file content however many processes see it.

    Counting under a `SET NX` per (outcome, content digest) makes `reactor_rules_reloads_total`
    count edits, not processes, across hosts. The last refused edit is kept for the dashboard. The
    web builds one in `create_app`, the worker in `build_context`; both hand it to their `LiveRules`."""

    def __init__(self, connection: redis.Redis, prefix: str = "reactor", notices: Notices | None = None):
        self.redis = connection
        self.keys = Keys(prefix)
        self.notices = notices

    def __call__(self, outcome: str, digest: str, path: str, errors: list[str]) -> None:
        """The `LiveRules` reporter: a Redis error is logged, never raised into the rules in force."""
        # The sentences may quote the refused file, so what is written here is redacted.
        errors = [redact(error) for error in errors]
        try:
            # `{p}:rules:reload:<outcome>:<digest>`: this edit was counted (30 days); then the hash
            # `{p}:rules:reloads`, outcome (`accepted`, `refused`) → distinct edits.
            if self.redis.set(self.keys.rules_reload(outcome, digest), "1", nx=True, ex=RELOAD_MARK_TTL):
                self.redis.hincrby(self.keys.rules_reloads(), outcome, 1)
                # A refused edit is told once to a person, by the process that counted it.
                if outcome == "refused" and self.notices is not None:
                    first = errors[0] if errors else "refused"
                    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                    self.notices.add("rules_refused", f"{path} ({digest[:12]}): {first}{more}")
            if outcome == "refused":  # `{p}:rules:last_refused`, a hash; errors as a JSON list
                self.redis.hset(
                    self.keys.rules_last_refused(),
                    mapping={
                        "digest": digest,
                        "path": path,
                        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "process": f"{socket.gethostname()}:{os.getpid()}",
                        "errors": json.dumps(errors),
                    },
                )
        except redis.RedisError as exc:
            log.warning("could not record the rules reload in Redis: %s", exc)

    def counts(self) -> dict[str, int]:
        """Distinct edits by outcome (`accepted`, `refused`), for /metrics."""
        return {k.decode(): int(v) for k, v in self.redis.hgetall(self.keys.rules_reloads()).items()}

    def last_refused(self) -> dict[str, Any] | None:
        """The last refused edit (digest, path, at, process, errors), for the dashboard."""
        raw = self.redis.hgetall(self.keys.rules_last_refused())
        if not raw:
            return None
        data: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
        data["errors"] = json.loads(data.get("errors") or "[]")
        return data
