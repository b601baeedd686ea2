"""The budgets of rules.yaml `limits`: `max_per_day` (major units per currency per UTC day) and
`max_count_per_hour` (write-offs per UTC clock hour), reserved right before write_off in Redis
counters by one Lua script, so two workers cannot both take the last of a budget. What happens to
a write-off a budget refuses is in held.py.

Redis keys: `{prefix}:budget:day:<YYYY-MM-DD>` a hash, currency → minor units reserved that UTC day
(kept 2 days); `{prefix}:budget:hour:<YYYY-MM-DDTHH>` the count of that UTC hour (kept 2 hours).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from ..keys import Keys
from ..rules.diff import BudgetsUsed
from ..rules.model import Limits
from ..rules.money import minor_factor
from .refusals import BudgetRefused

# KEYS[1] the day's hash (currency → minor units), KEYS[2] the hour's count.
# ARGV: currency, amount (minor), day cap (minor, -1 none), hour cap (-1 none), enforce (1/0).
# Returns 0 when reserved, 1 when the day's amount would pass its cap, 2 when the hour's count would.
_RESERVE = """
local spent = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local count = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[5] == '1' then
  local cap, hourly = tonumber(ARGV[3]), tonumber(ARGV[4])
  if cap >= 0 and spent + tonumber(ARGV[2]) > cap then return 1 end
  if hourly >= 0 and count + 1 > hourly then return 2 end
end
redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], 172800)
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 7200)
return 0
"""


@dataclass
class Reservation:
    """Budget taken for one write-off; `give_back` when the write-off certainly did not happen."""

    connection: redis.Redis
    day_key: str
    hour_key: str
    currency: str
    amount: int

    def give_back(self) -> None:
        with self.connection.pipeline(transaction=True) as pipe:
            pipe.hincrby(self.day_key, self.currency, -self.amount)
            pipe.decr(self.hour_key)
            pipe.execute()


class _NoReservation(Reservation):
    """No budget limits in the rules: nothing counted, nothing to give back."""

    def give_back(self) -> None:
        pass


def budget_keys(prefix: str, now: datetime) -> tuple[str, str]:
    """The counters of the UTC day and UTC clock hour that contain `now`."""
    return Keys(prefix).budgets(now.astimezone(timezone.utc))


class Budgets:
    """The budgets of `limits` in Redis, under `prefix`."""

    def __init__(self, connection: redis.Redis, limits: Limits, *, prefix: str = "reactor") -> None:
        self.connection, self.limits, self.prefix = connection, limits, prefix

    def reserve(
        self, currency: str, amount: int, now: datetime, *, enforce: bool = True
    ) -> Reservation | BudgetRefused:
        """Take `amount` (minor units) of today's budget for `currency` and one of this hour's count.

        Returns the Reservation, or why the write-off must be held. A currency that `max_per_day`
        does not list has no budget, so its write-offs are held (as `max_write_off` blocks currencies
        it does not list). With no budget limits nothing is counted. `enforce=False` counts without
        checking (a person released the write-off)."""
        connection = self.connection
        day_limit, hour_limit = self.limits.max_per_day, self.limits.max_count_per_hour
        if day_limit is None and hour_limit is None:
            return _NoReservation(connection, "", "", currency, 0)
        day_cap = -1
        if day_limit is not None:
            major = day_limit.major_for(currency)
            day_cap = int(major * minor_factor(currency)) if major is not None else 0
        day_key, hour_key = budget_keys(self.prefix, now)
        args = [currency, amount, day_cap, hour_limit if hour_limit is not None else -1, "1" if enforce else "0"]
        verdict = connection.eval(_RESERVE, 2, day_key, hour_key, *args)
        if verdict == 1:
            if day_limit is not None and day_limit.major_for(currency) is None:
                return BudgetRefused(f"limits.max_per_day has no budget for {currency}")
            cap = day_limit.describe(currency) if day_limit is not None else ""
            return BudgetRefused(f"limits.max_per_day for {currency} ({cap}) would be passed today")
        if verdict == 2:
            return BudgetRefused(f"limits.max_count_per_hour ({hour_limit}) reached this hour")
        return Reservation(connection, day_key, hour_key, currency, amount)


def spent_today(connection: redis.Redis, now: datetime, prefix: str = "reactor") -> dict[str, int]:
    """Minor units reserved per currency in the UTC day of `now`."""
    day_key, _ = budget_keys(prefix, now)
    return {k.decode(): int(v) for k, v in connection.hgetall(day_key).items()}


def budgets_used(connection: redis.Redis, now: datetime, prefix: str = "reactor") -> BudgetsUsed:
    """What the day's and the hour's counters of `now` hold, read in one round trip and reserving
    nothing (`reactor rules diff` starts its budgets from it)."""
    utc = now.astimezone(timezone.utc)
    day_key, hour_key = budget_keys(prefix, utc)
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(day_key)
        pipe.get(hour_key)
        spent, count = pipe.execute()
    return BudgetsUsed(
        {k.decode(): int(v) for k, v in spent.items()},
        int(count or 0),
        f"{utc:%Y-%m-%d}",
        f"{utc:%Y-%m-%dT%H}",
        f"Redis at {utc.isoformat(timespec='seconds')}",
    )
