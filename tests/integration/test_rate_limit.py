"""One Chargebee rate limit for all workers: real worker processes against the sandbox's call log."""

from __future__ import annotations

import pytest

from reactor.jobs.audit import AuditLog
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event, post_event

pytestmark = pytest.mark.integration


def most_calls_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def written_off(redis_conn) -> int:
    return sum(1 for r in AuditLog(redis_conn).query() if r.outcome == "written_off")


def test_three_workers_never_exceed_the_shared_limit_in_any_window(
    sandbox, web, redis_conn, start_worker, short_settings
):
    """60 calls per window (60/min, the window scaled down to 3 s): 200 invoices make 400 calls."""
    limited = short_settings(chargebee_rate_limit=60, rate_limit_window=3, rate_limit_max_wait=5.0)
    invoices = [exhausted_invoice(sandbox) for _ in range(200)]
    for invoice in invoices:
        assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
    for _ in range(3):
        start_worker(limited)
    wait_for(lambda: written_off(redis_conn) == 200, timeout=180, interval=0.5, what="200 write-offs")

    times = [c["at"] for c in sandbox.state.calls()]
    assert len(times) == 400
    assert all(c["status"] == 200 for c in sandbox.state.calls()), "no 429s expected under our own limit"
    # The sandbox stamps a call when it answers, after the worker took its slot: a few ms on an
    # idle machine, up to a second or more on a loaded one (a call granted at the end of one window
    # can land next to the next window's). Counting in half a window leaves 1.5 s for that delay;
    # three per-worker budgets would still show up as up to 180 calls in it.
    assert most_calls_in_any_window(times, 3.0 / 2) <= 60
    assert max(times) - min(times) >= (400 / 60 - 1) * 3.0 - 0.5, "the calls went faster than the limit allows"


def test_a_429_from_chargebee_pauses_every_worker_for_its_retry_after(
    sandbox, web, redis_conn, start_worker, short_settings
):
    invoices = [exhausted_invoice(sandbox) for _ in range(10)]
    sandbox.state.add_fault(match="retrieve", status=429, retry_after=3, times=1)
    for invoice in invoices:
        assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
    for _ in range(2):
        start_worker(short_settings(rate_limit_max_wait=5.0))
    wait_for(lambda: written_off(redis_conn) == 10, timeout=60, interval=0.2, what="10 write-offs")

    calls = sandbox.state.calls()
    limited_at = next(c["at"] for c in calls if c["status"] == 429)
    # The worker that met the 429 sets the pause a moment after the sandbox answered it (on a loaded
    # machine, up to a second), and the other worker's request may already be on the wire: calls
    # still land in that first second. After it, and until Retry-After has passed, none may.
    during_pause = [c for c in calls if limited_at + 1.0 < c["at"] < limited_at + 3.0 - 0.3]
    assert during_pause == [], [(round(c["at"] - limited_at, 2), c["path"]) for c in during_pause]
    assert len([c for c in calls if c["at"] > limited_at]) >= 19
