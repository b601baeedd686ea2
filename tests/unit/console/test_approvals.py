"""Approving and declining in the approvals queue (reactor/console/approvals.py) on a real Redis:
distinct approvers, people who do not count, the last approval queuing the release job with the
approvals, a decline, and approvals that lapse after REACTOR_APPROVAL_TTL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from rq import Queue

from reactor.config import Settings
from reactor.console.approvals import ApprovalRefused, approve, decline, expire_approvals
from reactor.console.notify import Notifier
from reactor.dashboard.metrics import RedisCollector
from reactor.jobs.audit import AuditLog
from reactor.jobs.held import HeldWriteOff, get_held, hold
from reactor.keys import RELEASE_HELD_JOB

NOW = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


@pytest.fixture
def queue(redis_conn) -> Queue:
    return Queue("approvals-test", connection=redis_conn)


def waiting(redis_conn, needed: int = 2, **fields) -> None:
    item = HeldWriteOff(
        "inv_1", "ev_1", "big", 500000, "USD", NOW.isoformat(), "awaits approval", {"id": "ev_1"},
        tier=2, approvers_needed=needed, **fields,
    )  # fmt: skip
    hold(redis_conn, item)


def outcomes(redis_conn) -> list[tuple[str, str]]:
    return [(str(r.outcome), r.reason or "") for r in AuditLog(redis_conn).query()]


def test_two_distinct_approvers_queue_the_write_off_once_with_their_approvals(redis_conn, queue):
    waiting(redis_conn)
    first = approve(redis_conn, queue, "inv_1", "alice", now=NOW)
    assert not first.queued and queue.count == 0 and get_held(redis_conn, "inv_1").approvers == ["alice"]
    with pytest.raises(
        ApprovalRefused, match="alice has already approved inv_1: the same person's approval counts once"
    ):
        approve(redis_conn, queue, "inv_1", "alice", now=NOW)

    second = approve(redis_conn, queue, "inv_1", "bob", now=NOW + timedelta(minutes=5))

    assert second.queued and get_held(redis_conn, "inv_1") is None
    [job] = queue.get_jobs()
    assert job.func_name == RELEASE_HELD_JOB and job.args[0] == {"id": "ev_1"} and job.args[1] == "bob"
    assert [a["user"] for a in job.args[2]["approvals"]] == ["alice", "bob"] and job.args[2]["tier"] == 2
    assert [o for o, _ in outcomes(redis_conn)] == ["approved", "approved"]
    with pytest.raises(ApprovalRefused, match="not in the approvals queue"):
        approve(redis_conn, queue, "inv_1", "carol", now=NOW)


def test_who_released_or_undid_it_does_not_count(redis_conn, queue):
    waiting(redis_conn, not_counted=("rel",))
    redis_conn.set("reactor:undone:inv_1", json.dumps({"actor": "admin:und", "reason": "x"}))
    for person in ("rel", "und"):
        with pytest.raises(ApprovalRefused, match=f"{person} released or undid the write-off of inv_1 before"):
            approve(redis_conn, queue, "inv_1", person, now=NOW)
    assert outcomes(redis_conn) == []


def test_a_decline_ends_it_recorded_and_refuses_later_approvals(redis_conn, queue):
    waiting(redis_conn)
    done = decline(redis_conn, "inv_1", "carol", reason="in talks", now=NOW)
    assert done.declined and get_held(redis_conn, "inv_1").declined["user"] == "carol"
    assert outcomes(redis_conn) == [("declined", "by carol: in talks")]
    with pytest.raises(ApprovalRefused, match="was declined by carol"):
        approve(redis_conn, queue, "inv_1", "alice", now=NOW)
    assert queue.count == 0


def test_an_approval_older_than_the_ttl_lapses_and_is_recorded(redis_conn, queue):
    old = {"user": "alice", "at": (NOW - timedelta(days=8)).isoformat()}
    waiting(redis_conn, approvals=(old,))
    assert expire_approvals(redis_conn, approval_ttl=7 * 86400, now=NOW) == 1
    assert get_held(redis_conn, "inv_1").approvals == ()
    [(outcome, reason)] = outcomes(redis_conn)
    assert outcome == "approval_expired" and reason.startswith("the approval by alice given at")
    # alice may approve again: her earlier approval no longer counts
    assert not approve(redis_conn, queue, "inv_1", "alice", now=NOW).queued


def test_a_write_off_waiting_past_the_alert_time_is_told_once_and_shows_in_metrics(redis_conn):
    settings = Settings(notify_url="http://127.0.0.1:9/hook", approval_alert_after=3600)
    long_ago = datetime.now(timezone.utc) - timedelta(hours=3)
    hold(redis_conn, HeldWriteOff("inv_late", held_at=long_ago.isoformat(), tier=1, approvers_needed=1))
    hold(
        redis_conn, HeldWriteOff("inv_new", held_at=datetime.now(timezone.utc).isoformat(), tier=1, approvers_needed=1)
    )
    notifier = Notifier(settings, redis_conn)

    assert notifier.tell_late_approvals() == 1
    assert notifier.tell_late_approvals() == 0  # once
    [(kind, text)] = [(n.kind, n.text) for n in notifier.pending()[0]]
    assert kind == "approval_late" and text.startswith("inv_late:") and "has waited 3 h for tier 1" in text

    registry = CollectorRegistry()
    registry.register(RedisCollector(redis_conn, settings))
    scraped = generate_latest(registry).decode()
    assert 'reactor_approvals_waiting{site="default"} 2.0' in scraped
    oldest = next(
        line for line in scraped.splitlines() if line.startswith('reactor_approval_oldest_seconds{site="default"} ')
    )
    assert 3 * 3600 - 5 < float(oldest.split()[1]) < 3 * 3600 + 60
