"""What the dashboard's front page shows of every site at once: its budgets used today and this hour
(reactor/jobs/budget.py's counters) and its Chargebee calls in the rate-limit window, any pause
after a 429 and the 429s counted (reactor/chargebee/ratelimit.py's shared counters). Read only:
nothing here takes a call slot or touches a budget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis

from ..config import Settings
from ..jobs.budget import budgets_used
from ..jobs.context import build_rate_limit
from ..jobs.held import count_held
from ..keys import Keys
from ..rules.diff import budgets_start
from ..rules.model import Limits


@dataclass(frozen=True)
class SiteUsage:
    """One site's line on the front page."""

    name: str
    held: int
    budgets: str
    calls: int
    limit: int
    window: int
    paused: float
    throttled: int


def calls_in_window(connection: redis.Redis, settings: Settings) -> tuple[int, float]:
    """Chargebee calls the site's shared rate limit counts in its moving window now, and the seconds
    left of a pause after a 429 (0 without one)."""
    limit = build_rate_limit(settings, connection)
    _reset, remaining = limit.limiter.get_window_stats(limit.item, limit.scope)
    return limit.calls - remaining, limit.paused_for()


def site_usage(connection: redis.Redis, sites: list[Settings], limits: Limits | None, now: datetime) -> list[SiteUsage]:
    """Each site's usage (settings scoped with `Settings.for_site`), in the order given. Without
    rules in force the budgets say so: there are no limits to measure against."""
    rows = []
    for settings in sites:
        used = budgets_used(connection, now, settings.key_prefix)
        calls, paused = calls_in_window(connection, settings)
        rows.append(
            SiteUsage(
                name=settings.site_name,
                held=count_held(connection, settings.key_prefix),
                budgets=budgets_start(used, limits, now) if limits is not None else "budgets: no rules in force",
                calls=calls,
                limit=settings.chargebee_rate_limit,
                window=settings.rate_limit_window,
                paused=round(paused, 1),
                throttled=int(connection.get(Keys(settings.key_prefix).chargebee_429s()) or 0),
            )
        )
    return rows
