"""Dead letters: RQ's FailedJobRegistry, seen the way on-call needs it at 3 a.m.

letters.py   DeadLetter, one failed job as on-call reads it; redaction, job ids, the refusals
registry.py  DeadLetters: list, show, replay and purge them, each replay and purge audited
"""

from .letters import (
    REDACTED,
    DeadLetter,
    DeadLetterError,
    EventExpired,
    NotADeadLetter,
    NotAJobId,
    redact,
    replay_job_id,
    select,
)
from .registry import FAILURE_OUTCOMES, DeadLetters

__all__ = [
    "FAILURE_OUTCOMES",
    "REDACTED",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetters",
    "EventExpired",
    "NotADeadLetter",
    "NotAJobId",
    "redact",
    "replay_job_id",
    "select",
]
