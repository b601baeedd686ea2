"""Waiting for Redis: at a process's start (`reactor worker`, `reactor cron`, the web's first look)
and after an outage (the worker's restart loop in reactor/jobs/worker.py).

After a host reboot, a Redis failover or a platform restart the reactor's processes often come up
before Redis does. Only an unreachable Redis is waited for (refused or timed-out connections, a
name that does not resolve yet, Redis still loading its data); a refused password (Redis's, or a
sentinel's) or a command Redis rejects is a bad configuration and is raised at once. The pauses between tries come from
redis-py's `ExponentialBackoff`, capped; the wait is logged once when it begins, again every
REMIND_EVERY seconds while it lasts, and once when Redis answers. Log lines name Redis by host,
port and database (or Sentinel service and sentinels) only: REDIS_URL may carry a password. Behind
Sentinel, a primary that no sentinel names yet (a failover under way) is waited for like any
unreachable Redis.
"""

from __future__ import annotations

import logging
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


class RedisUnreachable(Exception):
    """Redis did not answer within the deadline; the message says where and the last error."""


def redis_address(connection: redis.Redis) -> str:
    """Where `connection` points, without credentials (reactor/redis_connect.py's `describe`)."""
    return describe(connection)


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` means Redis is not there (yet), as opposed to refusing us."""
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return False
    if isinstance(exc, MasterNotFoundError) and "AuthenticationError" in str(exc):
        return False  # a sentinel refused our sentinel_password: redis-py names each sentinel's error
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError)


def refusal(url: str, timeout: float = 2.0) -> str | None:
    """One line saying why Redis at `url` refuses us (a wrong password, a sentinel's, a command it
    rejects), after one PING; None when it answers or cannot be reached (that is waited for). The
    line names Redis by `describe` only, and redis-py's errors do not quote the password."""
    connection = connect(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        connection.ping()
    except redis.RedisError as exc:
        if not unreachable(exc):
            return f"Redis at {describe(connection)} refused us: {exc}"
    finally:
        connection.close()
    return None


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
    while True:
        try:
            connection.ping()
        except redis.RedisError as exc:
            if not unreachable(exc):
                raise
            error = exc
        else:
            if failures:
                log.warning("Redis at %s answers, after %.0f s of waiting", address, clock() - started)
            return clock() - started
        waited = clock() - started
        if deadline is not None and waited >= deadline:
            raise RedisUnreachable(f"cannot reach Redis at {address} after {waited:.0f} s: {error}")
        if failures == 0:
            until = "until it answers" if deadline is None else f"for up to {deadline:g} s (REACTOR_REDIS_WAIT)"
            pauses = f"pauses up to {LONGEST_PAUSE:g} s"
            log.warning("waiting for Redis at %s (%s); trying again %s, with %s", address, error, until, pauses)
        elif clock() >= remind_at:
            log.warning("still waiting for Redis at %s after %.0f s (%s)", address, waited, error)
            remind_at = clock() + REMIND_EVERY
        pause = backoff.compute(failures)
        if deadline is not None:
            pause = min(pause, max(0.0, started + deadline - clock()))
        sleep(pause)
        failures += 1
