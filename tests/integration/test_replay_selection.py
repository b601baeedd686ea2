"""`reactor events replay` by business fields, against events real workers decided: the selection
picks the right events, --dry-run enqueues nothing, a bulk replay asks first, and a replay of a
written-off invoice writes nothing off again."""

from __future__ import annotations

import pytest
from rq import Queue

from reactor.jobs.audit import AuditFilter, AuditLog
from tests.helpers import wait_for, wait_settled
from tests.integration.helpers import exhausted_invoice, make_event, post_event
from tests.integration.ops_helpers import reactor

pytestmark = pytest.mark.integration


@pytest.fixture
def decided(sandbox, web, redis_conn, start_worker):
    """Three events decided by a real worker: two written off (customers a and b), one too large."""
    invoices = {
        "a_small": exhausted_invoice(sandbox, customer_id="cus_a"),
        "b_small": exhausted_invoice(sandbox, customer_id="cus_b"),
        "a_large": exhausted_invoice(sandbox, customer_id="cus_a", total=4000, amount_due=4000),
    }
    events = {name: make_event(invoice) for name, invoice in invoices.items()}
    for event in events.values():
        assert post_event(web.webhook_url, event).status_code == 200
    worker = start_worker()
    wait_for(lambda: len(replayable(redis_conn)) == 3, timeout=30, what="three decisions")
    return {name: event["id"] for name, event in events.items()}, worker


def replayable(redis_conn) -> set[str]:
    final = {"written_off", "no_match"}
    return {r.event_id for r in AuditLog(redis_conn).query() if r.outcome in final}


def replayed(redis_conn) -> list[str]:
    return [r.event_id for r in AuditLog(redis_conn).query(AuditFilter(outcomes=["replayed"]))]


def test_dry_run_by_customer_shows_what_the_rules_decide_now_and_enqueues_nothing(decided, redis_conn, settings):
    ids, _ = decided
    queue = Queue(settings.queue_name, connection=redis_conn)
    queued_before = queue.count

    result = reactor(settings, "events", "replay", "--customer", "cus_a", "--dry-run")

    assert result.exit_code == 0, result.output
    assert ids["a_small"] in result.output and ids["a_large"] in result.output
    assert ids["b_small"] not in result.output
    assert "dry run: 2 events would be replayed; nothing enqueued" in result.output
    assert "write_off" in result.output and "none" in result.output  # the rules now: one matches, one does not
    assert queue.count == queued_before and replayed(redis_conn) == []


def test_selection_by_rule_and_by_outcome_picks_the_right_events(decided, redis_conn, settings):
    ids, _ = decided

    by_rule = reactor(settings, "events", "replay", "--rule", "dunning-exhausted-small-balance", "--dry-run")
    by_outcome = reactor(settings, "events", "replay", "--outcome", "no_match", "--since", "1h", "--dry-run")
    none = reactor(settings, "events", "replay", "--outcome", "no_match", "--until", "1h", "--dry-run")

    assert {ids["a_small"], ids["b_small"]} <= set(by_rule.output.split()) and ids["a_large"] not in by_rule.output
    assert ids["a_large"] in by_outcome.output and ids["a_small"] not in by_outcome.output
    assert "no stored events match" in none.output


def test_a_bulk_replay_asks_first_and_without_a_terminal_needs_yes(decided, redis_conn, settings):
    result = reactor(settings, "events", "replay", "--customer", "cus_a")

    assert result.exit_code == 1
    assert "Replay 2 events? needs a confirmation" in result.output and "add --yes" in result.output
    assert replayed(redis_conn) == []


def test_replay_with_yes_runs_the_selected_events_again_without_a_second_write_off(
    decided, sandbox, redis_conn, settings
):
    ids, _ = decided

    result = reactor(settings, "events", "replay", "--customer", "cus_a", "--yes")

    assert result.exit_code == 0, result.output
    assert "2 events queued" in result.output
    assert sorted(replayed(redis_conn)) == sorted([ids["a_small"], ids["a_large"]])
    wait_for(
        lambda: (
            "already_written_off"
            in [r.outcome for r in AuditLog(redis_conn).query(AuditFilter(event_id=ids["a_small"]))]
        ),
        timeout=30,
        what="the replay's decision",
    )
    wait_settled(redis_conn)
    assert len(sandbox.state.write_off_calls()) == 2


def test_one_selected_event_is_replayed_without_a_question(decided, redis_conn, settings):
    ids, _ = decided

    result = reactor(settings, "events", "replay", "--customer", "cus_b", "--event-type", "payment_failed")

    assert result.exit_code == 0, result.output
    assert replayed(redis_conn) == [ids["b_small"]]


def test_ids_and_a_selection_together_are_refused(redis_conn, settings):
    result = reactor(settings, "events", "replay", "ev_1", "--customer", "cus_a")

    assert result.exit_code == 2 and "not both" in result.output
