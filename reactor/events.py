"""The Chargebee event envelope: parse and validate it, store it, and deduplicate by event id.

Chargebee delivers at least once and retries for about 3 days 7 hours, so an event id is
remembered for `dedupe_ttl` (4 days by default). Accepting an event is one Redis transaction:
mark the id seen, store the raw body, enqueue its evaluation. Either all of it happens or none
of it does, so a Redis failure mid-way answers 503 and Chargebee's retry starts clean.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from rq import Queue, Retry

from .config import Settings
from .enqueue import EvaluationJobs, JobSpec

JOB_ID_SAFE = re.compile(r"[A-Za-z0-9_-]+")  # what RQ accepts in a job id
MAX_EVENT_ID_LENGTH = 40  # Chargebee's Event.id is at most 40 characters
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")  # \ud800 to \udfff, as JSON writes them


class EnvelopeError(ValueError):
    """The body is not a Chargebee event we can accept; the message says why (answered as 400)."""


@dataclass(frozen=True)
class Event:
    id: str
    event_type: str
    content: dict[str, Any]
    raw: bytes

    @property
    def invoice(self) -> dict[str, Any] | None:
        invoice = self.content.get("invoice")
        return invoice if isinstance(invoice, dict) else None

    @property
    def invoice_id(self) -> str | None:
        invoice = self.invoice
        value = invoice.get("id") if invoice else None
        return value if isinstance(value, str) and value else None


def parse_event(body: bytes) -> Event:
    """Validate the envelope just enough to act on it safely; everything else is kept as sent."""
    if not body:
        raise EnvelopeError("empty body: expected a Chargebee event as JSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise EnvelopeError("body is nested too deeply") from None
    except ValueError as exc:  # an integer longer than Python's int_max_str_digits (4300)
        raise EnvelopeError(f"body is not usable JSON: {str(exc)[:80]}") from None
    # A \ud800-style escape decodes to a lone surrogate, which no UTF-8 consumer downstream (Redis
    # keys, job descriptions, the audit stream, Chargebee's API) can encode. The strict UTF-8 decode
    # above already refused surrogates sent as bytes, so only a body with such an escape is walked.
    if _SURROGATE_ESCAPE.search(body):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            message = "body has an unpaired UTF-16 surrogate escape (e.g. \\ud800): not valid Unicode"
            raise EnvelopeError(message) from None
        except (RecursionError, ValueError):
            raise EnvelopeError("body is nested too deeply") from None
    if not isinstance(data, dict):
        raise EnvelopeError(f"expected a JSON object (a Chargebee event), got {type(data).__name__}")

    event_id = data.get("id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise EnvelopeError("missing field 'id': every Chargebee event has a string id")
    if len(event_id) > MAX_EVENT_ID_LENGTH or not event_id.isprintable() or event_id != event_id.strip():
        raise EnvelopeError(f"field 'id' is not a Chargebee event id (at most {MAX_EVENT_ID_LENGTH} printable chars)")
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or not _EVENT_TYPE.match(event_type):
        raise EnvelopeError("missing or malformed field 'event_type' (e.g. 'payment_failed')")
    content = data.get("content")
    if not isinstance(content, dict):
        raise EnvelopeError("missing field 'content': expected an object keyed by resource, e.g. content.invoice")
    api_version = data.get("api_version")
    if api_version is not None and api_version != "v2":
        raise EnvelopeError(f"api_version is {api_version!r}; configure the Chargebee webhook with API version v2")
    invoice = content.get("invoice")
    if invoice is not None:
        if not isinstance(invoice, dict):
            raise EnvelopeError("content.invoice must be an object")
        invoice_id = invoice.get("id")
        if not isinstance(invoice_id, str) or not invoice_id:
            raise EnvelopeError("content.invoice has no string 'id'")
    return Event(id=event_id, event_type=event_type, content=content, raw=body)


@dataclass(frozen=True)
class Keys:
    """Redis key names, all under one prefix so that several reactors can share a Redis."""

    prefix: str = "reactor"

    def seen(self, event_id: str) -> str:
        return f"{self.prefix}:seen:{event_id}"

    def event(self, event_id: str) -> str:
        return f"{self.prefix}:event:{event_id}"

    def counter(self) -> str:
        return f"{self.prefix}:counters:events"

    def lock(self, invoice_id: str) -> str:
        return f"{self.prefix}:lock:invoice:{invoice_id}"

    def done(self, invoice_id: str) -> str:
        return f"{self.prefix}:written_off:{invoice_id}"

    def audit(self) -> str:
        return f"{self.prefix}:audit"


@dataclass(frozen=True)
class Accepted:
    outcome: str  # "queued" | "duplicate" | "ignored"
    job_id: str | None = None


def evaluation_job_id(event_id: str) -> str:
    """`evaluate-<event id>`. RQ takes only letters, digits, `_` and `-` in a job id; Chargebee's event
    ids fit, but the envelope accepts any printable id, so another id gets a digest: still one job per id."""
    if JOB_ID_SAFE.fullmatch(event_id):
        return f"evaluate-{event_id}"
    return f"evaluate-x{hashlib.sha256(event_id.encode()).hexdigest()[:40]}"


# KEYS[1] the seen-mark, KEYS[2] the counters hash; ARGV[1] the dedupe TTL, then commands as
# (argument count, arguments...). A command that fails un-marks the event before the error is
# raised, so that Chargebee's retry of it is taken instead of answered as a duplicate.
_ACCEPT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], 'duplicate', 1)
  return 0
end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local ok = redis.pcall(unpack(ARGV, i + 1, i + n))
  if type(ok) == 'table' and ok.err then
    redis.call('DEL', KEYS[1])
    return redis.error_reply(ok.err)
  end
  i = i + n + 1
end
return 1
"""


def retry_policy(settings: Settings) -> Retry:
    """RQ's Retry for evaluation jobs: one attempt more than there are intervals."""
    intervals = list(settings.retry_intervals)
    return Retry(max=len(intervals), interval=intervals)


class EventStore:
    """Stored events and the dedupe marks, in Redis."""

    def __init__(
        self,
        connection: redis.Redis,
        queue: Queue,
        keys: Keys | None = None,
        dedupe_ttl: int = 4 * 24 * 3600,
        event_ttl: int = 30 * 24 * 3600,
        retry: Retry | None = None,
        job_timeout: int = 120,
    ):
        self.redis = connection
        self.keys = keys or Keys()
        self.dedupe_ttl = dedupe_ttl
        self.event_ttl = event_ttl
        self.jobs = EvaluationJobs(queue, retry=retry, job_timeout=job_timeout, failure_ttl=event_ttl)
        self._accept_script = connection.register_script(_ACCEPT)

    @classmethod
    def from_settings(cls, connection: redis.Redis, queue: Queue, settings: Settings) -> EventStore:
        """The store as the web and the workers use it: TTLs, retries and job timeout from settings."""
        return cls(
            connection,
            queue,
            Keys(settings.key_prefix),
            dedupe_ttl=settings.dedupe_ttl,
            event_ttl=settings.event_ttl,
            retry=retry_policy(settings),
            job_timeout=settings.job_timeout,
        )

    def accept(self, event: Event, evaluate: Callable[..., Any] | str) -> Accepted:
        """Store and enqueue an event once per id; redis errors propagate (the caller answers 503).

        One Lua script, one round trip: mark the id seen (SET NX), and only if that wins, store the
        event and run the commands RQ would send to enqueue its evaluation. A script runs alone in
        Redis, so of concurrent deliveries of one id exactly one is queued. Events that carry no
        invoice are counted only.
        """
        if event.invoice_id is None:
            self.redis.hincrby(self.keys.counter(), f"ignored:{event.event_type}", 1)
            return Accepted("ignored")
        job_id = evaluation_job_id(event.id)
        commands: list[Any] = [
            ("SET", self.keys.event(event.id), event.raw, "EX", self.event_ttl),
            ("HINCRBY", self.keys.counter(), f"queued:{event.event_type}", 1),
            *self.jobs.commands(evaluate, JobSpec(event.id, event.event_type, event.invoice_id, job_id)),
        ]
        keys = [self.keys.seen(event.id), self.keys.counter()]
        argv: list[Any] = [self.dedupe_ttl]
        for command in commands:
            argv.append(len(command))
            argv.extend(command)
        won = self._accept_script(keys=keys, args=argv)
        return Accepted("queued" if won else "duplicate", job_id)

    def load(self, event_id: str) -> dict[str, Any] | None:
        raw = self.redis.get(self.keys.event(event_id))
        if raw is None:
            return None
        return json.loads(raw)

    def save(self, event: Event) -> None:
        """Store without dedupe or enqueue (used by replays of events that came another way)."""
        self.redis.set(self.keys.event(event.id), event.raw, ex=self.event_ttl)

    def counters(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.redis.hgetall(self.keys.counter()).items()}
