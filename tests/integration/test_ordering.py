"""Out-of-order deliveries: the last `resource_version` seen per invoice decides what is stale."""

from __future__ import annotations

import copy

import pytest

from reactor.jobs.audit import AuditLog
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event

pytestmark = pytest.mark.integration


def version(invoice: dict, offset: int, **fields) -> dict:
    """The invoice as an event would carry it at resource_version + offset."""
    copied = copy.deepcopy(invoice)
    copied.update(fields, resource_version=invoice["resource_version"] + offset)
    return copied


def test_an_older_invoice_updated_after_a_newer_one_is_recorded_stale_and_not_acted_on(
    sandbox, web, redis_conn, start_worker
):
    invoice = exhausted_invoice(sandbox)  # Chargebee still shows it writable: acting would write it off
    newer = make_event(version(invoice, 2000, dunning_status="in_progress"), event_type="invoice_updated")
    older = make_event(version(invoice, 1000), event_type="invoice_updated")
    assert post_event(web.webhook_url, newer).status_code == 200
    start_worker()
    wait_for(lambda: outcomes(redis_conn, invoice["id"]) == ["no_match"], what="the newer event")

    assert post_event(web.webhook_url, older).status_code == 200
    wait_for(lambda: len(outcomes(redis_conn, invoice["id"])) == 2, what="the older event")
    stale = list(AuditLog(redis_conn).query(invoice_id=invoice["id"]))[-1]
    assert (stale.outcome, stale.event_id) == ("stale", older["id"])
    assert sandbox.state.calls(path_contains=invoice["id"]) == [], "a stale event must not reach Chargebee"


def test_a_newer_invoice_updated_after_an_older_one_is_acted_on(sandbox, web, redis_conn, start_worker):
    invoice = exhausted_invoice(sandbox)
    older = make_event(version(invoice, 1000, dunning_status="in_progress"), event_type="invoice_updated")
    newer = make_event(version(invoice, 2000), event_type="invoice_updated")
    assert post_event(web.webhook_url, older).status_code == 200
    start_worker()
    wait_for(lambda: outcomes(redis_conn, invoice["id"]) == ["no_match"], what="the older event")

    assert post_event(web.webhook_url, newer).status_code == 200
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), what="the newer event")
    assert len(sandbox.state.write_off_calls()) == 1


def test_the_same_event_evaluated_twice_is_not_stale(sandbox, web, redis_conn, settings):
    """A retry or a replay carries the version already recorded: equal is not older."""
    from reactor.jobs import build_context, run_evaluation

    invoice = exhausted_invoice(sandbox, dunning_status="in_progress")
    event = make_event(invoice, event_type="invoice_updated")
    assert post_event(web.webhook_url, event).status_code == 200
    context = build_context(settings, redis_conn)
    assert run_evaluation(context, event["id"])["outcome"] == "no_match"
    assert run_evaluation(context, event["id"])["outcome"] == "no_match"
