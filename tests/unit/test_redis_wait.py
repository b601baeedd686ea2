"""Waiting for Redis (reactor/redis_wait.py): how often it tries, what it says, when it gives up.
Pure: a stand-in connection and a clock that only the pauses move; real processes waiting for a
real redis-server are in tests/integration/test_redis_at_start.py."""

from __future__ import annotations

import logging

import pytest
import redis

from reactor.redis_wait import LONGEST_PAUSE, REMIND_EVERY, RedisUnreachable, redis_address, wait_for_redis


class Unanswered:
    """A connection whose PING fails `failures` times with `error`, then answers."""

    def __init__(self, failures: int, error: Exception | None = None):
        self.failures = failures
        self.error = error or redis.ConnectionError("Error 111 connecting to 10.0.0.5:6380. Connection refused.")
        self.pings = 0
        self.connection_pool = redis.ConnectionPool(host="10.0.0.5", port=6380, db=2, password="hunter2")

    def ping(self) -> bool:
        self.pings += 1
        if self.pings <= self.failures:
            raise self.error
        return True


class Clock:
    """Time that passes only in sleep()."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def wait(connection: Unanswered, clock: Clock, deadline: float | None = None) -> float:
    return wait_for_redis(connection, deadline=deadline, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


def test_a_redis_that_answers_is_not_waited_for(caplog):
    clock = Clock()
    with caplog.at_level(logging.INFO):
        assert wait(Unanswered(0), clock) == 0
    assert clock.pauses == [] and "10.0.0.5" not in caplog.text


def test_the_pauses_double_up_to_the_cap_and_the_wait_is_said_once_then_at_a_low_rate(caplog):
    clock, connection = Clock(), Unanswered(failures=30)
    with caplog.at_level(logging.WARNING):
        waited = wait(connection, clock)
    assert connection.pings == 31 and waited == sum(clock.pauses)
    assert clock.pauses[:4] == [0.5, 1, 2, 4] and max(clock.pauses) == LONGEST_PAUSE
    assert clock.pauses[-1] == LONGEST_PAUSE
    lines = [line for line in caplog.messages if "10.0.0.5" in line]  # this wait's, not another thread's
    assert lines[0].startswith("waiting for Redis at 10.0.0.5:6380/2 (Error 111 connecting")
    assert lines[0].endswith("; trying again until it answers, with pauses up to 30 s")
    reminders = [line for line in lines if line.startswith("still waiting for Redis")]
    assert len(reminders) == int(waited // REMIND_EVERY)  # one a REMIND_EVERY, not one a try
    assert lines[-1] == f"Redis at 10.0.0.5:6380/2 answers, after {waited:.0f} s of waiting"
    assert len(lines) == 2 + len(reminders)
    assert "hunter2" not in caplog.text


def test_the_deadline_gives_up_with_the_last_error_and_no_pause_runs_past_it():
    clock, connection = Clock(), Unanswered(failures=1000)
    with pytest.raises(RedisUnreachable, match=r"cannot reach Redis at 10.0.0.5:6380/2 after 10 s: Error 111"):
        wait(connection, clock, deadline=10)
    assert sum(clock.pauses) == 10 and clock.pauses[-1] < 8  # 0.5 + 1 + 2 + 4 = 7.5, then the 2.5 left


def test_a_deadline_of_zero_is_the_old_fast_failure(caplog):
    clock = Clock()
    with caplog.at_level(logging.WARNING), pytest.raises(RedisUnreachable, match="after 0 s"):
        wait(Unanswered(failures=1), clock, deadline=0)
    assert clock.pauses == [] and "10.0.0.5" not in caplog.text


@pytest.mark.parametrize(
    "error",
    [redis.AuthenticationError("invalid password"), redis.ResponseError("ERR unknown command 'PING'")],
)
def test_redis_refusing_us_is_raised_at_once_not_waited_for(error):
    clock = Clock()
    with pytest.raises(type(error)):
        wait(Unanswered(failures=1, error=error), clock)
    assert clock.pauses == []


@pytest.mark.parametrize(
    "error",
    [redis.TimeoutError("Timeout connecting to server"), redis.BusyLoadingError("Redis is loading the dataset")],
)
def test_a_silent_or_loading_redis_is_waited_for(error):
    clock = Clock()
    wait(Unanswered(failures=2, error=error), clock)
    assert clock.pauses == [0.5, 1]


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://:hunter2@redis.internal:6380/3", "redis.internal:6380/3"),
        ("rediss://default:hunter2@cache.example:25061", "cache.example:25061/0"),
        ("unix:///run/redis.sock?db=1&password=hunter2", "unix:/run/redis.sock/1"),
    ],
)
def test_redis_is_named_by_address_never_with_its_password(url, address):
    assert redis_address(redis.Redis.from_url(url)) == address
