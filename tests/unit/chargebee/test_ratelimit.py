"""The shared call budget, on a real Redis: strict moving window, bounded waits, the 429 pause."""

from __future__ import annotations

import time

import pytest

from reactor.chargebee import RetryableError, Throttled
from reactor.chargebee.ratelimit import DEFAULT_PAUSE, ChargebeeRateLimit, Waiting


def limit(redis_conn, calls: int = 3, window: int = 1, max_wait: float = 5.0, **waiting) -> ChargebeeRateLimit:
    return ChargebeeRateLimit(redis_conn, calls, window, scope="test", waiting=Waiting(max_wait, **waiting))


def test_calls_within_the_budget_do_not_wait(redis_conn):
    slept: list[float] = []
    budget = limit(redis_conn, calls=5, window=10, sleep=slept.append)
    for _ in range(5):
        budget.acquire()
    assert slept == []


def test_a_call_over_the_budget_waits_until_the_oldest_slot_leaves_the_window(redis_conn):
    budget = limit(redis_conn, calls=3, window=1)
    first = time.monotonic()
    for _ in range(3):
        budget.acquire()
    budget.acquire()
    assert time.monotonic() - first >= 0.95


def test_two_clients_on_one_redis_share_one_budget(redis_conn):
    """Two workers are two ChargebeeRateLimit objects: they must not get a budget each."""
    one, two = limit(redis_conn, calls=2, window=30, max_wait=0.2), limit(redis_conn, calls=2, window=30, max_wait=0.2)
    one.acquire()
    two.acquire()
    with pytest.raises(Throttled):
        one.acquire()
    with pytest.raises(Throttled):
        two.acquire()


def test_a_wait_longer_than_max_wait_raises_throttled_with_the_expected_wait(redis_conn):
    slept: list[float] = []
    budget = limit(redis_conn, calls=1, window=30, max_wait=0.1, sleep=slept.append)
    budget.acquire()
    with pytest.raises(Throttled) as caught:
        budget.acquire()
    assert slept == [], "it must not sleep when the wait is known to be too long"
    assert 25 < caught.value.retry_after <= 30
    assert isinstance(caught.value, RetryableError), "callers that retry on RetryableError retry a throttled call"


def test_a_429_pause_stops_every_client_for_the_retry_after(redis_conn):
    one, two = limit(redis_conn, calls=100, window=60, max_wait=5), limit(redis_conn, calls=100, window=60, max_wait=5)
    one.pause(1.0)
    started = time.monotonic()
    two.acquire()
    assert time.monotonic() - started >= 0.9


def test_a_pause_longer_than_max_wait_defers_instead_of_waiting(redis_conn):
    budget = limit(redis_conn, max_wait=0.2)
    budget.pause(None)
    with pytest.raises(Throttled) as caught:
        budget.acquire()
    assert DEFAULT_PAUSE - 2 < caught.value.retry_after <= DEFAULT_PAUSE


def test_a_shorter_retry_after_does_not_cut_a_longer_pause_short(redis_conn):
    budget = limit(redis_conn)
    budget.pause(30)
    budget.pause(1)
    assert budget.paused_for() > 25


def test_reset_forgets_slots_and_pause(redis_conn):
    budget = limit(redis_conn, calls=1, window=30, max_wait=0.1)
    budget.acquire()
    budget.pause(30)
    budget.reset()
    budget.acquire()
    assert budget.paused_for() == 0


def test_a_limit_below_one_call_is_refused(redis_conn):
    with pytest.raises(ValueError):
        limit(redis_conn, calls=0)
