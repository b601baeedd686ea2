"""Store a parsed event and deduplicate by event id (the envelope is parsed in
reactor/ingest/envelope.py).

The body is stored packed (reactor/ingest/packing.py: deflate with a dictionary of Chargebee's
envelope), about a sixth of the JSON; bodies stored unpacked by earlier releases read as before.

Chargebee delivers at least once and retries for about 3 days 7 hours. The stored event is the dedupe
mark: it is written only if its key is not there (SET NX), and kept `event_ttl` (30 days by default)
or `dedupe_ttl` (4 days) if that is longer. Accepting an event is one Lua script: store the event if
new, append it to the inbox (or enqueue its evaluation), write its receipt. Either all of it happens or
none of it does, so a Redis failure mid-way answers 503 and Chargebee's retry starts clean.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from rq import Queue, Retry

from ..config import Settings
from ..keys import TRIAGE_JOB, Keys
from .enqueue import EvaluationJobs, JobSpec
from .envelope import Event
from .inbox import TRIAGE_JOB_TIMEOUT, Inbox
from .packing import pack, unpack
from .receipts import IGNORED_WHY, answer_receipt, receipt
from .replication import ReplicaAck
from .trace_list import APPEND_LUA, TRACE_CAP, TRACE_LUA, TRACE_TTL, append_command

log = logging.getLogger(__name__)

JOB_ID_SAFE = re.compile(r"[A-Za-z0-9_-]+")  # what RQ accepts in a job id (rq/job.py JOB_ID_PATTERN)


@dataclass(frozen=True)
class Accepted:
    outcome: str  # "queued" | "duplicate" | "ignored"
    job_id: str | None = None  # its evaluation job's; None when it went to the inbox


def evaluation_job_id(event_id: str, site: str | None = None) -> str:
    """`evaluate-<event id>`. RQ takes only letters, digits, `_` and `-` in a job id, and so does
    parse_event in an event id (reactor/ids.py). An id that came another way (typed into a command, or
    stored by an older release) may not fit: it gets a digest, still one job per id.

    RQ's job ids are one namespace for the whole Redis, and event ids are unique only within a
    Chargebee site: the job of a site other than the home site (`site`) ends in `--<site>`, so the
    same event id on two sites makes two jobs. The home site's ids are as before."""
    if JOB_ID_SAFE.fullmatch(event_id):
        job_id = f"evaluate-{event_id}"
    else:
        job_id = f"evaluate-x{hashlib.sha256(event_id.encode()).hexdigest()[:40]}"
    return job_id if site is None else f"{job_id}--{site}"


def job_id_site(settings: Settings) -> str | None:
    """The site whose name a job id carries (`evaluation_job_id`): None for the home site (and for
    settings scoped to no site), whose job ids are as they always were."""
    return settings.site_name if settings.key_prefix != settings.deployment_key_prefix else None


_SET_MARK = "reactor:set-mark"
"""The accept script's last pseudo-command, `(_SET_MARK, key, ttl)`: set `key` if it is not set, and
answer 2 instead of 1 if this set it (the inbox's drainer mark, reactor/ingest/inbox.py: the caller
then queues the triage job)."""

# The accept script. KEYS[1] the stored event, which is the dedupe mark; KEYS[2] the counters hash;
# KEYS[3] the invoice's trace. ARGV[1] the event's TTL, ARGV[2] its packed body, then from ARGV[3]
# commands as (argument count, name, arguments...): Redis commands, the trace's APPEND_COMMAND
# (reactor/ingest/trace_list.py), and _SET_MARK last if at all. A command that fails removes the event
# before the error is raised, so that Chargebee's retry of it is taken instead of answered as a
# duplicate. The receipt comes after the enqueue, which that removal does not undo: a trace that is not
# a list (its receipt would fail) refuses the event before anything is written, rather than leave it
# queued without its stored body. A duplicate is counted; its receipt is written by the caller. Returns
# 0 for a duplicate, 1 when stored, 2 when stored and this set the _SET_MARK mark.
_ACCEPT = (
    TRACE_LUA
    + """
-- a trace that is not a list refuses the event before anything is written
local refused = refuse_unless_trace(KEYS[3])
if refused then return refused end
-- store the event unless it is there: the dedupe mark; a duplicate is counted, nothing else
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], 'duplicate', 1)
  return 0
end
-- run the commands, each ARGV[i] = its argument count n, ARGV[i + 1] its name, then its arguments
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local name = ARGV[i + 1]
  -- _SET_MARK (key, ttl), last: set the key if it is not set; 2 if this set it
  if name == '"""
    + _SET_MARK
    + """' then
    if redis.call('SET', ARGV[i + 2], '1', 'NX', 'EX', ARGV[i + 3]) then return 2 end
    return 1
  end
  -- the trace's APPEND_COMMAND (trace, entry, cap, ttl), or a Redis command; a failure is kept
  local failure
  if name == APPEND_COMMAND then
    failure = append_trace_caught(ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
  else
    local answer = redis.pcall(unpack(ARGV, i + 1, i + n))
    if type(answer) == 'table' and answer.err then failure = answer.err end
  end
  -- a failed command unstores the event (the retry is taken) and answers the error
  if failure then
    redis.call('DEL', KEYS[1])
    return redis.error_reply(failure)
  end
  i = i + n + 1
end
return 1
"""
)


def triage_job_id(event_id: str, site: str | None = None) -> str:
    """`triage-<event id>`: the triage job the event woke (one per accepted event at most)."""
    return "triage-" + evaluation_job_id(event_id, site).removeprefix("evaluate-")


def retry_policy(settings: Settings) -> Retry:
    """RQ's Retry for evaluation jobs: one attempt more than there are intervals."""
    intervals = list(settings.retry_intervals)
    return Retry(max=len(intervals), interval=intervals)


@dataclass(frozen=True)
class StoreOptions:
    """How `EventStore` keeps events and runs their jobs; `from_settings` reads them from the settings."""

    dedupe_ttl: int = 4 * 24 * 3600  # the stored event is the dedupe mark: kept at least this long
    event_ttl: int = 30 * 24 * 3600  # how long a stored event (and a failed job) is kept for replays
    retry: Retry | None = None  # RQ's retries of an evaluation job (retry_policy)
    job_timeout: int = 120  # seconds an evaluation job may run
    triage: bool = False  # accepted events go to the inbox (reactor/ingest/inbox.py), not a job each

    @classmethod
    def from_settings(cls, settings: Settings) -> StoreOptions:
        """TTLs, retries, job timeout and triage as the web and the workers run them."""
        return cls(
            dedupe_ttl=settings.dedupe_ttl,
            event_ttl=settings.event_ttl,
            retry=retry_policy(settings),
            job_timeout=settings.job_timeout,
            triage=settings.triage,
        )


class EventStore:
    """Stored events, which are their own dedupe marks, in Redis."""

    def __init__(
        self,
        connection: redis.Redis,
        queue: Queue,
        keys: Keys | None = None,
        options: StoreOptions | None = None,
        replica_ack: ReplicaAck | None = None,
        site: str | None = None,
    ):
        options = options or StoreOptions()
        self.site = site  # the site its job ids name (`evaluation_job_id`); None: the home site
        self.redis = connection
        self.triage = options.triage  # accepted events go to the inbox (reactor/ingest/inbox.py), not a job each
        self.replica_ack = replica_ack  # None: never WAIT (the workers' sweep and replays)
        self.keys = keys or Keys()
        self.stored_ttl = max(options.event_ttl, options.dedupe_ttl)  # the stored event is the dedupe mark
        retry, event_ttl = options.retry, options.event_ttl
        self.jobs = EvaluationJobs(queue, retry=retry, job_timeout=options.job_timeout, failure_ttl=event_ttl)
        self.triage_jobs = EvaluationJobs(
            queue, retry=retry, job_timeout=TRIAGE_JOB_TIMEOUT, failure_ttl=event_ttl, at_front=True
        )
        self.inbox = Inbox(connection, self.keys)
        self._accept_script = connection.register_script(_ACCEPT)
        self._append_trace = connection.register_script(APPEND_LUA)

    @classmethod
    def from_settings(
        cls, connection: redis.Redis, queue: Queue, settings: Settings, replica_ack: ReplicaAck | None = None
    ) -> EventStore:
        """The store as the web and the workers use it: options from settings (StoreOptions); the web
        passes its `replica_ack` (REACTOR_REPLICA_ACK)."""
        options = StoreOptions.from_settings(settings)
        return cls(connection, queue, Keys(settings.key_prefix), options, replica_ack, job_id_site(settings))

    def accept(self, event: Event, evaluate: Callable[..., Any] | str) -> Accepted:
        """Store and enqueue an event once per id; redis errors propagate (the caller answers 503).

        One Lua script, one round trip: store the event if its key is not there (SET NX: the stored
        event is the dedupe mark), and only if that wins append it to the inbox (REACTOR_TRIAGE; the
        first event of a burst then queues the triage job, a second round trip) or run the commands RQ
        would send to enqueue its evaluation. A script runs alone in Redis, so of concurrent deliveries
        of one id exactly one is queued. Events that carry no invoice are counted and leave a receipt
        of their own (reactor/ingest/receipts.py), in one round trip. With a
        `replica_ack` that wants it, a replica must confirm the writes (reactor/ingest/replication.py)
        or NotReplicated is raised (the caller answers 503).
        """
        if event.invoice_id is None:
            self._ignored(event)
            return Accepted("ignored")
        job_id = evaluation_job_id(event.id, self.site)
        trace = self.keys.trace(event.invoice_id)
        if self.triage:  # the event waits in the inbox; the first of a burst wakes a triage job
            job_id = None
            enqueue: list[Any] = [("RPUSH", self.keys.inbox(), event.id)]
            wake: list[Any] = [(_SET_MARK, self.keys.inbox_drainer(), self.inbox.lease)]
        else:
            enqueue = self.jobs.commands(evaluate, JobSpec(event.id, event.event_type, event.invoice_id, job_id))
            wake = []
        commands: list[Any] = [
            ("HINCRBY", self.keys.counter(), f"queued:{event.event_type}", 1),
            *enqueue,
            # The receipt after: a failed enqueue above answers 503 before any receipt is written.
            append_command(trace, pack(receipt(event.id, event.event_type, event.invoice, "queued").encode())),
            *wake,  # last: the script answers 2 when no triage job is on its way
        ]
        keys = [self.keys.event(event.id), self.keys.counter(), trace]
        argv: list[Any] = [self.stored_ttl, pack(event.raw)]
        for command in commands:
            argv.append(len(command))
            argv.extend(command)
        won = self._run_accept(keys, argv)
        if won == 2:
            self._wake_triage(event)
        elif not won:
            self._receipt_of_duplicate(event, trace)
        return Accepted("queued" if won else "duplicate", job_id)

    def _ignored(self, event: Event) -> None:
        """Count an event that carries no invoice and keep its receipt, in one round trip (no
        transaction: the count and the receipt stand alone); redis errors propagate (503)."""
        entry = answer_receipt(event.id, event.event_type, "ignored", IGNORED_WHY)
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self.keys.counter(), f"ignored:{event.event_type}", 1)
            pipe.set(self.keys.receipt(event.id), entry, ex=self.stored_ttl)
            pipe.execute()

    def refused(self, event_id: str | None, event_type: str | None, why: str) -> None:
        """Keep the receipt of a delivery answered 400, under the event id its body carries (nothing
        without one: reactor/ingest/receipts.py); redis errors propagate (the caller answers 503)."""
        if event_id is not None:
            entry = answer_receipt(event_id, event_type, "rejected", why)
            self.redis.set(self.keys.receipt(event_id), entry, ex=self.stored_ttl)

    def _receipt_of_duplicate(self, event: Event, trace: str) -> None:
        """A redelivery in the invoice's trace, written after the answer is known: built and sent for
        duplicates only, not with every event (reactor/ingest/receipts.py)."""
        entry = pack(receipt(event.id, event.event_type, event.invoice, "duplicate").encode())
        self._append_trace(keys=[trace], args=[entry, TRACE_CAP, TRACE_TTL])

    def _wake_triage(self, event: Event) -> None:
        """Queue the triage job for the burst this event starts (it set the drainer mark). Sent only
        then, not with every event: RQ's writes are half the script's arguments. The event is stored
        and in the inbox already, so a failure here is not the webhook's: the mark is removed if Redis
        lets us, and a worker's maintenance queues a triage job for the inbox (at the latest once the
        mark has expired)."""
        spec = JobSpec(
            event.id, event.event_type, event.invoice_id or "", triage_job_id(event.id, self.site), kind="triage"
        )
        try:
            self.queue_jobs(self.triage_jobs, TRIAGE_JOB, [spec])
        except redis.RedisError as exc:
            log.warning("event %s is in the inbox, but its triage job could not be queued: %s", event.id, exc)
            with contextlib.suppress(redis.RedisError):
                self.inbox.release_drainer()

    def queue_jobs(self, jobs: EvaluationJobs, func: str, specs: list[JobSpec]) -> None:
        """Enqueue a job of `func` for each spec with RQ's own writes (reactor/ingest/enqueue.py), all
        in one transaction."""
        with self.redis.pipeline(transaction=True) as pipe:
            for spec in specs:
                for command in jobs.commands(func, spec):
                    pipe.execute_command(*command)
            pipe.execute()

    def _run_accept(self, keys: list[Any], argv: list[Any]) -> Any:
        ack = self.replica_ack
        if ack is None or not ack.wanted(self.redis):
            return self._accept_script(keys=keys, args=argv)
        try:
            won, confirmed = self._accept_and_wait(keys, argv, ack.timeout_ms)
        except redis.exceptions.NoScriptError:  # a Redis that never ran the script (a new primary)
            self.redis.script_load(_ACCEPT)
            won, confirmed = self._accept_and_wait(keys, argv, ack.timeout_ms)
        ack.check(confirmed)
        return won

    def _accept_and_wait(self, keys: list[Any], argv: list[Any], timeout_ms: int) -> list[Any]:
        """The accept script, then WAIT 1: WAIT counts the writes of its own connection and a script
        cannot call it, so both go down one connection in one round trip (a pipeline, not a
        transaction). Returns the script's answer and how many replicas confirmed."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(self._accept_script.sha, len(keys), *keys, *argv)
            pipe.execute_command("WAIT", 1, timeout_ms)
            return pipe.execute()

    def load(self, event_id: str) -> Event | None:
        """The stored event: packed (reactor/ingest/packing.py), or the raw JSON an older release stored."""
        stored = self.redis.get(self.keys.event(event_id))
        if stored is None:
            return None
        raw = unpack(stored)
        data = json.loads(raw)
        if not isinstance(data, dict):  # never stored by us: fail the job (a dead letter), as bad JSON does
            raise ValueError(f"the stored event {event_id} is not a JSON object")
        return Event.from_data(data, raw)

    def counters(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.redis.hgetall(self.keys.counter()).items()}
