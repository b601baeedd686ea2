"""Notices: what a person must act on, written by whichever process notices it and sent as a digest.

`Notices.add` appends one to a capped Redis stream; `reactor cron` sends them (reactor/console/notify.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import redis

from .keys import Keys
from .redaction import redact

log = logging.getLogger(__name__)

MAX_NOTICES = 10_000
"""Notices kept while the receiver is away; older ones are trimmed (the digest says how many)."""

MAX_TEXT = 300
"""Characters of one notice's line; a longer one is cut."""

KINDS = (
    "dead_letter",
    "held",
    "undone",
    "budget",
    "rules_refused",
    "chargebee_auth",
    "audit_archive",
    "audit_verify",
    "approval",
    "approval_late",
    "recovery",
)


class Notices:
    """Appends notices for the digest; does nothing when notifications are off (`enabled` False).

    A held write-off, an undone one, a budget used up, a refused rules edit, a Chargebee key refused,
    a new dead letter: the process that sees one appends it here (one round trip; a Redis error is
    logged, never raised into the job or the reload that noticed it). Nothing is sent from there:
    `reactor cron` drains the stream into one message every REACTOR_NOTIFY_INTERVAL seconds, so a
    burst of 500 dead letters is one message and a receiver that is down delays nobody's write-off.
    With REACTOR_NOTIFY_URL unset nothing is appended.

    A notice is a kind and one line for people, never an event body or a credential: the line names
    the invoice, the rule, the job and why. It is redacted as it is appended (reactor/redaction.py),
    and the sender scrubs every configured secret from the message too.
    """

    def __init__(self, connection: redis.Redis, prefix: str = "reactor", *, enabled: bool = True):
        self.redis = connection
        self.keys = Keys(prefix)
        self.enabled = enabled

    def add(self, kind: str, text: str, *, once: str | None = None, once_ttl: int = 3600) -> bool:
        """Append one notice of `kind` (one of KINDS). With `once`, only the first add of that name
        within `once_ttl` seconds appends (a budget used up is told once a window, not per write-off).
        True when appended; never raises."""
        if not self.enabled:
            return False
        try:
            # `{p}:notices:once:<name>`: this notice was appended already (SET NX, for `once_ttl`).
            if once is not None and not self.redis.set(self.keys.notice_once(once), "1", nx=True, ex=once_ttl):
                return False
            self.redis.eval(
                _APPEND,
                2,
                self.keys.notices(),
                self.keys.notices_seq(),
                kind,
                redact(text)[:MAX_TEXT],  # redacted whole, then cut: a cut could leave half a secret
                datetime.now(timezone.utc).isoformat(timespec="seconds"),
                MAX_NOTICES,
            )
            return True
        except redis.RedisError as exc:
            log.warning("could not queue a %s notice: %s", kind, exc)
            return False


# KEYS[1] the stream `{p}:notices` (entries: kind, text, at, n), capped at MAX_NOTICES; KEYS[2]
# `{p}:notices:seq`, the last sequence number given; ARGV kind, text, at, cap. One script, so the
# sequence numbers in the stream have no gap but the ones trimming made: a gap tells the sender
# notices were trimmed.
_APPEND = """
local n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'kind', ARGV[1], 'text', ARGV[2], 'at', ARGV[3], 'n', n)
return n
"""
