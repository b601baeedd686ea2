"""Waiting for Redis: at a process's start (`reactor worker`, `reactor cron`, the web's first look)
and after an outage (the worker's restart loop in reactor/jobs/worker.py).

After a host reboot, a Redis failover or a platform restart the reactor's processes often come up
before Redis does. Only an unreachable Redis is waited for (refused or timed-out connections, a
name that does not resolve yet, Redis still loading its data); a refused password (Redis's, or a
sentinel's) or a command Redis rejects is a bad configuration and is raised at once. The pauses between tries come from
redis-py's `ExponentialBackoff`, capped; the wait is logged once when it begins (a first try that
has no answer after SLOW_TRY seconds, a hung sentinel or a Redis behind a partition, is said then,
not at its socket timeout), again every REMIND_EVERY seconds while it lasts, and once when Redis
answers. A deadline is kept within a try: one still running when it passes is given up on. Log lines name Redis by host,
port and database (or Sentinel service and sentinels) only: REDIS_URL may carry a password. Behind
Sentinel, a primary that no sentinel names yet (a failover under way) is waited for like any
unreachable Redis. Once Redis answers, a `maxmemory-policy` that may evict keys is refused
(`eviction_refusal`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

import redis
from redis.backoff import AbstractBackoff, ExponentialBackoff
from redis.sentinel import MasterNotFoundError

from .redis_connect import connect, describe

log = logging.getLogger(__name__)

FIRST_PAUSE = 0.5
"""Seconds before the second try; each later pause doubles, up to LONGEST_PAUSE."""
LONGEST_PAUSE = 30.0
REMIND_EVERY = 300.0
"""Seconds between the lines that say the wait goes on."""
SLOW_TRY = 1.0
"""Seconds a try may take before the wait is said, while the try goes on."""


class RedisUnreachable(Exception):
    """Redis did not answer within the deadline; the message says where and the last error."""


def redis_address(connection: redis.Redis) -> str:
    """Where `connection` points, without credentials (reactor/redis_connect.py's `describe`)."""
    return describe(connection)


def explain(exc: BaseException) -> str:
    """`exc` for a log line. redis-py's MasterNotFoundError holds the repr of each sentinel's client
    (hundreds of characters of connection settings): keep its first words and each sentinel's error."""
    text = str(exc)
    if isinstance(exc, MasterNotFoundError) and " : " in text:
        head, _, tail = text.partition(" : ")
        errors = re.findall(r">\)>\)> - ([^,]+)", tail)
        return f"{head} (the sentinels: {', '.join(errors)})" if errors else head
    return text


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` means Redis is not there (yet), as opposed to refusing us."""
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return False
    if isinstance(exc, MasterNotFoundError) and "AuthenticationError" in str(exc):
        return False  # a sentinel refused our sentinel_password: redis-py names each sentinel's error
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError)


def refusal(url: str, timeout: float = 2.0) -> str | None:
    """One line saying why Redis at `url` refuses us (a wrong password, a sentinel's, a command it
    rejects) or why we refuse it (`eviction_refusal`), after one PING; None when it answers and is
    fine, or cannot be reached (that is waited for). The line names Redis by `describe` only, and
    redis-py's errors do not quote the password."""
    connection = connect(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        connection.ping()
        return eviction_refusal(connection)
    except redis.RedisError as exc:
        if not unreachable(exc):
            return f"Redis at {describe(connection)} refused us: {explain(exc)}"
    finally:
        connection.close()
    return None


def eviction_refusal(connection: redis.Redis) -> str | None:
    """One line refusing a Redis whose `maxmemory-policy` may evict keys, None for `noeviction`.

    The marks, the stored events (the dedupe marks), RQ's jobs and the audit are keys with a
    lifetime: any other policy may drop them when Redis fills up, a lost or doubled event. Read from
    `INFO memory`, which managed Redis answers where CONFIG is renamed or disabled. An INFO refused
    or without the field (a proxy) is not refused: a warning, once per process, says so."""
    try:
        policy = connection.info("memory").get("maxmemory_policy")
    except redis.ResponseError as exc:  # INFO renamed, disabled or not allowed to this user
        _policy_unread(connection, explain(exc))
        return None
    if isinstance(policy, bytes):
        policy = policy.decode(errors="replace")
    if policy is None:
        _policy_unread(connection, "INFO memory has no maxmemory_policy")
        return None
    if policy == "noeviction":
        return None
    return (
        f"Redis at {describe(connection)} has maxmemory-policy {policy}, which may evict keys with a lifetime "
        "(the marks, the stored events, RQ's jobs, the audit) when it is full: set maxmemory-policy noeviction "
        "(redis-cli CONFIG SET maxmemory-policy noeviction, or your provider's setting)"
    )


_policy_warned = False


def _policy_unread(connection: redis.Redis, why: str) -> None:
    global _policy_warned
    if not _policy_warned:
        _policy_warned = True
        log.warning(
            "cannot read the maxmemory-policy of Redis at %s (%s); make sure it is noeviction, or keys may be evicted",
            describe(connection),
            why,
        )


def wait_for_redis(
    connection: redis.Redis,
    deadline: float | None = None,
    backoff: AbstractBackoff | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Return once Redis answers a PING, with the seconds that took.

    Raises RedisUnreachable when `deadline` seconds pass first (None: wait forever), and any error
    that is not `unreachable` at once."""
    backoff = backoff or ExponentialBackoff(cap=LONGEST_PAUSE, base=FIRST_PAUSE)
    address = redis_address(connection)
    started = clock()
    remind_at = started + REMIND_EVERY
    failures = 0
    said = False  # the line that says we wait

    def say_waiting(why: object) -> None:
        nonlocal said
        if not said:
            until = "until it answers" if deadline is None else f"for up to {deadline:g} s (REACTOR_REDIS_WAIT)"
            pauses = f"pauses up to {LONGEST_PAUSE:g} s"
            log.warning("waiting for Redis at %s (%s); trying again %s, with %s", address, why, until, pauses)
            said = True

    while True:
        ping = _Ping(connection)
        if not ping.done.wait(SLOW_TRY):
            # A try that hangs (a sentinel or a Redis that drops packets) is said at once, not at its
            # socket timeout, and is not waited for past the deadline.
            say_waiting(f"no answer within {SLOW_TRY:g} s")
            left = None if deadline is None else max(0.0, started + deadline - clock())
            if not ping.done.wait(left):
                waited = clock() - started
                raise RedisUnreachable(f"cannot reach Redis at {address} after {waited:.0f} s: no answer")
        if ping.error is None:
            if failures or said:
                log.warning("Redis at %s answers, after %.0f s of waiting", address, clock() - started)
            return clock() - started
        if not isinstance(ping.error, redis.RedisError) or not unreachable(ping.error):
            raise ping.error
        error = explain(ping.error)
        waited = clock() - started
        if deadline is not None and waited >= deadline:
            raise RedisUnreachable(f"cannot reach Redis at {address} after {waited:.0f} s: {error}")
        if not said:
            say_waiting(error)
        elif clock() >= remind_at:
            log.warning("still waiting for Redis at %s after %.0f s (%s)", address, waited, error)
            remind_at = clock() + REMIND_EVERY
        pause = backoff.compute(failures)
        if deadline is not None:
            pause = min(pause, max(0.0, started + deadline - clock()))
        sleep(pause)
        failures += 1


class _Ping:
    """One PING, in a thread of its own (a greenlet under gunicorn's gevent), so that its caller can
    say that it waits, and give up at its deadline, while the PING still runs."""

    def __init__(self, connection: redis.Redis):
        self.error: BaseException | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(connection,), name="reactor-redis-ping", daemon=True).start()

    def _run(self, connection: redis.Redis) -> None:
        try:
            connection.ping()
        except BaseException as exc:  # handed to the caller, which raises what is not waited for
            self.error = exc
        finally:
            self.done.set()
