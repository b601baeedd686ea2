"""One budget of Chargebee calls for every worker on every machine, kept in Redis.

`ChargebeeRateLimit.acquire()` before every request takes a slot of a strict moving window shared
by all processes; `pause()` after a 429 stops every worker until Chargebee's Retry-After.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from .errors import Throttled

DEFAULT_PAUSE = 60.0
"""Seconds every worker waits after a 429 that carries no Retry-After: Chargebee's limit resets
"in approximately a minute"."""

# Sets the pause only when it ends later than the one already set, so a short Retry-After cannot
# cut a longer pause short. The pause is a key's TTL: Redis's clock, not the workers', decides.
# KEYS[2] counts the 429s (reactor_chargebee_429s_total on /metrics).
_EXTEND_PAUSE = """
redis.call('INCR', KEYS[2])
local current = redis.call('PTTL', KEYS[1])
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Waiting:
    """How long, and on which clock, a caller waits for a free slot.

    A caller that finds no free slot waits, but never longer than `max_wait` seconds: then
    `Throttled` (errors.py) is raised and the job is deferred (reactor/jobs/retries.py), which is
    not a failure and uses up no retry. Tests pass their own `sleep` and `clock`.
    """

    max_wait: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


class ChargebeeRateLimit:
    """The shared call budget of one Chargebee site. Call `acquire()` before every request and
    `pause(seconds)` after a 429.

    Chargebee limits API calls per site and per minute (150 on test sites; 150, 1000 or 3500 on
    live plans depending on the plan) and answers 429 once the limit is passed. A limit per
    process would let N workers make N times the budget, so the count lives in the Redis all
    workers share: never more than `calls` requests in any `window` seconds, counted by every
    process together (the `limits` package's `MovingWindowRateLimiter` on `RedisStorage`). Slots
    are stamped with each machine's clock, so the machines should keep time (NTP).
    """

    def __init__(
        self,
        connection: redis.Redis,
        calls: int,
        window: int = 60,
        *,
        scope: str = "chargebee",
        key_prefix: str = "reactor",
        waiting: Waiting = Waiting(),
    ):
        if calls < 1 or window < 1:
            raise ValueError("a rate limit needs at least one call per window of at least one second")
        self.calls = calls
        self.window = window
        self.max_wait = waiting.max_wait
        self.scope = scope
        self.item = RateLimitItemPerSecond(calls, window)
        storage = RedisStorage("redis://", connection_pool=connection.connection_pool, key_prefix=f"{key_prefix}:rl")
        self.limiter = MovingWindowRateLimiter(storage)
        self.redis = connection
        self.pause_key = f"{key_prefix}:rl:paused:{scope}"
        self.count_key = f"{key_prefix}:rl:429s"  # Keys.chargebee_429s (the chargebee wing reads no keys module)
        self._extend_pause = connection.register_script(_EXTEND_PAUSE)
        self._sleep = waiting.sleep
        self._clock = waiting.clock

    def __repr__(self) -> str:
        return f"ChargebeeRateLimit({self.calls} calls per {self.window}s, scope={self.scope!r})"

    def acquire(self) -> None:
        """Take one call slot, waiting for it (and for a pause to end) up to `max_wait` seconds.

        Raises Throttled, carrying the expected wait as `retry_after`, when the wait would be
        longer: the caller gives its worker back instead of holding it idle.
        """
        deadline = self._clock() + self.max_wait
        while True:
            wait = self.paused_for()
            if wait <= 0:
                if self.limiter.hit(self.item, self.scope):
                    return
                reset, _remaining = self.limiter.get_window_stats(self.item, self.scope)
                wait = max(reset - time.time(), 0.01)
            left = deadline - self._clock()
            if wait > left:
                raise Throttled(
                    f"no Chargebee call slot free within {self.max_wait:g}s "
                    f"(limit {self.calls} per {self.window}s, shared by all workers)",
                    status=None,
                    retry_after=wait,
                )
            # A little jitter, so that workers woken by the same freed slot do not all race for it.
            self._sleep(wait + random.uniform(0, min(0.05, max(left - wait, 0))))

    def free_in(self) -> float:
        """Seconds until a call slot is free (a pause included), without taking one: 0 when one is."""
        wait = self.paused_for()
        if wait > 0:
            return wait
        if self.limiter.test(self.item, self.scope):
            return 0.0
        reset, _remaining = self.limiter.get_window_stats(self.item, self.scope)
        return max(reset - time.time(), 0.01)

    def paused_for(self) -> float:
        """Seconds left of a pause set after a 429 (0 when there is none)."""
        remaining = self.redis.pttl(self.pause_key)
        return remaining / 1000 if remaining and remaining > 0 else 0.0

    def pause(self, seconds: float | None) -> None:
        """Stop every worker's calls for `seconds` (Chargebee's Retry-After; DEFAULT_PAUSE if None),
        and count the 429."""
        # The pause is shared, not per worker, because Chargebee's own window may count calls we
        # did not make (another integration on the same site, the console).
        seconds = DEFAULT_PAUSE if seconds is None else seconds
        milliseconds = max(1, int(seconds * 1000))
        self._extend_pause(keys=[self.pause_key, self.count_key], args=[milliseconds, "429"])

    def reset(self) -> None:
        """Forget the counted calls and any pause (tests, and ops after changing the limit)."""
        self.limiter.clear(self.item, self.scope)
        self.redis.delete(self.pause_key)
