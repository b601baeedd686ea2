"""End to end on Chargebee's own payload shapes, with the shipped rules.yaml.

The fixtures in tests/fixtures/chargebee/ are byte copies of public Chargebee sample events
(Product Catalog 1.0 field names, minor units, unix seconds): a `payment_failed` while dunning is
still in progress, an `invoice_updated` carrying only the invoice (no `subscription_id`), and a
`subscription_cancelled` without an invoice. Each test posts such an event to the webhook as
Chargebee would, lets a real worker decide, and checks what reached the sandbox and the audit.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from reactor.jobs.audit import AuditFilter, AuditLog, AuditRecord
from tests.helpers import REPO, wait_for
from tests.integration.helpers import post_event
from tests.integration.ops_helpers import reactor

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "chargebee"
ENTERPRISE_CUSTOMER = "16CHTpRzjKx2O7mo"  # the customer of the invoice_updated sample


def sample(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.fixture
def shipped_rules(settings):
    """The repository's rules.yaml, as shipped, is the rules file of these tests."""
    Path(settings.rules_path).write_text((REPO / "rules.yaml").read_text())
    return settings


def records(redis_conn, invoice_id: str) -> list[AuditRecord]:
    return AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id))


def final_record(redis_conn, invoice_id: str, outcomes: set[str], timeout: float = 30.0) -> AuditRecord:
    """The first audit record of the invoice with one of `outcomes`, waiting for it."""

    def found() -> AuditRecord | None:
        return next((r for r in records(redis_conn, invoice_id) if r.outcome in outcomes), None)

    return wait_for(found, timeout, what=f"an audit record {outcomes} for invoice {invoice_id}")  # type: ignore[return-value]


def exhausted(event: dict[str, Any]) -> dict[str, Any]:
    """The same event after the last dunning attempt failed: Chargebee marks the invoice not_paid
    with dunning_status exhausted and no next retry (Chargebee's knowledge base: "which event marks the
    closing of the dunning period")."""
    event = copy.deepcopy(event)
    event["id"] += "_last"
    invoice = event["content"]["invoice"]
    invoice.update(status="not_paid", dunning_status="exhausted", resource_version=invoice["resource_version"] + 1)
    invoice.pop("next_retry_at", None)
    return event


def test_the_sample_payment_failed_is_not_written_off_while_dunning_is_in_progress(
    sandbox, web, redis_conn, start_worker, shipped_rules
):
    event = sample("payment_failed")
    sandbox.state.add_invoice(**event["content"]["invoice"])
    response = post_event(web.webhook_url, (FIXTURES / "payment_failed.json").read_bytes())
    assert response.status_code == 200 and response.json()["status"] == "queued"
    start_worker()

    record = final_record(redis_conn, "6", {"collecting", "written_off", "failed"})
    assert record.outcome == "collecting"
    assert record.rule == "long-overdue-tiny"  # 2.24 USD, years overdue: the rule holds, the check stops it
    assert "dunning_status 'in_progress'" in (record.reason or "")
    assert sandbox.state.write_off_calls() == []


@pytest.mark.parametrize(
    ("name", "invoice_id"),
    [("payment_failed", "6"), ("pc2_payment_failed", "INV-PC2-1001")],
    ids=["product-catalog-1", "product-catalog-2"],
)
def test_the_same_invoice_after_its_last_retry_is_written_off_with_the_shipped_rules(
    sandbox, web, redis_conn, start_worker, shipped_rules, name, invoice_id
):
    event = exhausted(sample(name))
    sandbox.state.add_invoice(**event["content"]["invoice"])
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()

    record = final_record(redis_conn, invoice_id, {"written_off", "collecting", "failed", "changed"})
    assert (record.outcome, record.rule) == ("written_off", "dunning-exhausted-small-balance")
    assert [call["path"] for call in sandbox.state.write_off_calls()] == [f"/api/v2/invoices/{invoice_id}/write_off"]
    assert sandbox.state.get_invoice(invoice_id)["write_off_amount"] == 224  # 2.24 USD due in both samples


@pytest.mark.parametrize("retrieve_status", [404, 200])
def test_a_deleted_invoice_gets_no_write_off_call(
    sandbox, web, redis_conn, start_worker, shipped_rules, retrieve_status
):
    """What Chargebee answers for a deleted invoice is UNCONFIRMED: 404, or the invoice with
    `deleted: true`. Either is `gone`."""
    sandbox.state.configure(deleted_invoice_retrieve_status=retrieve_status)
    event = exhausted(sample("payment_failed"))
    sandbox.state.add_invoice(**event["content"]["invoice"])
    sandbox.state.delete_invoice("6", webhooks=False)  # deleted at Chargebee after the event was sent
    assert post_event(web.webhook_url, event).status_code == 200
    deleted_event = exhausted(event)
    deleted_event["content"]["invoice"]["deleted"] = True  # and an event that says so itself
    deleted_event["content"]["invoice"]["id"] = "6-deleted"
    assert post_event(web.webhook_url, deleted_event).status_code == 200
    start_worker()

    assert final_record(redis_conn, "6", {"gone", "written_off", "failed"}).outcome == "gone"
    assert final_record(redis_conn, "6-deleted", {"gone", "written_off", "failed"}).outcome == "gone"
    assert sandbox.state.write_off_calls() == []


def test_an_invoice_that_404s_is_recorded_gone_and_is_not_a_dead_letter(
    sandbox, web, redis_conn, start_worker, shipped_rules
):
    event = exhausted(sample("payment_failed"))  # the sandbox has no invoice 6: Chargebee answers 404
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()

    record = final_record(redis_conn, "6", {"gone", "failed", "retrying"})
    assert record.outcome == "gone" and "404" in (record.reason or "")
    assert sandbox.state.write_off_calls() == []
    listing = reactor(shipped_rules, "dlq", "list")
    assert listing.exit_code == 0 and event["id"] not in listing.output


def invoice_updated_for(customer_segment: str | None) -> dict[str, Any]:
    """The invoice_updated sample (invoice only, no subscription_id) after dunning ran out, with a
    small balance left: the shipped dunning-exhausted rule holds on the invoice alone."""
    event = sample("invoice_updated")
    event["id"] += f"_{customer_segment}"
    event["content"]["invoice"].update(
        status="not_paid", dunning_status="exhausted", amount_due=1250, amount_to_collect=1250
    )
    event["content"]["invoice"].pop("next_retry_at")
    return event


@pytest.mark.parametrize(("segment", "outcome"), [("enterprise", "skipped"), ("smb", "written_off")])
def test_the_enterprise_segment_known_only_from_the_customer_record_protects(
    sandbox, web, redis_conn, start_worker, shipped_rules, segment, outcome
):
    event = invoice_updated_for(segment)
    sandbox.state.add_invoice(**event["content"]["invoice"])
    sandbox.state.add_customer(id=ENTERPRISE_CUSTOMER, company="Acme Keyboards Inc.", cf_segment=segment)
    assert "customer" not in event["content"]
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()

    record = final_record(redis_conn, "19", {"skipped", "written_off", "facts_missing", "failed", "changed"})
    assert record.outcome == outcome
    assert f"fetched customer={ENTERPRISE_CUSTOMER}" in (record.detail or "") or outcome == "written_off"
    customer_calls = sandbox.state.calls(path_contains=f"/customers/{ENTERPRISE_CUSTOMER}", method="GET")
    assert len(customer_calls) == 1  # fetched once, only because a rule needed it
    assert len(sandbox.state.write_off_calls()) == (1 if outcome == "written_off" else 0)
    if outcome == "skipped":
        assert record.rule == "protect-enterprise"


def test_a_customer_that_cannot_be_fetched_blocks_the_write_off(sandbox, web, redis_conn, start_worker, shipped_rules):
    event = invoice_updated_for("unknown")
    sandbox.state.add_invoice(**event["content"]["invoice"])  # no customer record: Chargebee answers 404
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()

    record = final_record(redis_conn, "19", {"facts_missing", "written_off", "failed", "skipped"})
    assert record.outcome == "facts_missing"
    assert "protect-enterprise" in (record.reason or "") and "404" in (record.reason or "")
    assert sandbox.state.write_off_calls() == []


def test_an_event_without_an_invoice_is_answered_ignored(sandbox, web, redis_conn, shipped_rules):
    response = post_event(web.webhook_url, (FIXTURES / "subscription_cancelled.json").read_bytes())
    assert response.status_code == 200 and response.json()["status"] == "ignored"


def test_an_event_that_needs_no_fetch_makes_no_extra_call(sandbox, web, redis_conn, start_worker, shipped_rules):
    """payment_failed carries the customer: protect-enterprise reads it from the event."""
    event = exhausted(sample("payment_failed"))
    event["content"]["customer"]["cf_segment"] = "enterprise"
    sandbox.state.add_invoice(**event["content"]["invoice"])
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()

    record = final_record(redis_conn, "6", {"skipped", "written_off", "failed"})
    assert (record.outcome, record.rule) == ("skipped", "protect-enterprise")
    assert sandbox.state.calls(method="GET") == []


SEGMENT_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500}
rules:
  - name: smb-exhausted
    on: [invoice_updated]
    when:
      - customer.cf_segment: smb
      - invoice.dunning_status: exhausted
    action: write_off
"""


@pytest.mark.parametrize(("segment", "outcome"), [("smb", "written_off"), ("mid_market", "no_match")])
def test_a_write_off_rule_that_needs_the_customer_gets_it_fetched(
    sandbox, web, redis_conn, start_worker, settings, rules_file, segment, outcome
):
    """On the event alone no rule matches (it carries no customer); the rule could, so the worker
    fetches the customer and decides on it."""
    rules_file(SEGMENT_RULES)
    event = invoice_updated_for(segment)
    sandbox.state.add_invoice(**event["content"]["invoice"])
    sandbox.state.add_customer(id=ENTERPRISE_CUSTOMER, cf_segment=segment)
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()

    record = final_record(redis_conn, "19", {"written_off", "no_match", "failed", "changed", "facts_missing"})
    assert record.outcome == outcome
    assert len(sandbox.state.calls(path_contains=f"/customers/{ENTERPRISE_CUSTOMER}", method="GET")) == 1
    assert len(sandbox.state.write_off_calls()) == (1 if outcome == "written_off" else 0)


PLAN_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500}
rules:
  - name: protect-basic-plan
    when:
      - subscription.subscription_items.0.item_price_id: {starts_with: "basic-"}
    action: skip
  - name: exhausted
    on: [invoice_updated]
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""


def pc2_invoice_only(name: str) -> dict[str, Any]:
    """A Product Catalog 2.0 invoice after dunning ran out, as an invoice_updated event (invoice only)."""
    event = exhausted(sample(name))
    event["event_type"] = "invoice_updated"
    event["content"] = {"invoice": event["content"]["invoice"]}
    return event


def test_pc2_the_subscription_a_rule_reads_is_fetched_and_protects(sandbox, web, redis_conn, start_worker, rules_file):
    rules_file(PLAN_RULES)
    subscription = sample("pc2_payment_failed")["content"]["subscription"]
    sandbox.state.add_subscription(**subscription)
    event = pc2_invoice_only("pc2_payment_failed")
    sandbox.state.add_invoice(**event["content"]["invoice"])
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()

    record = final_record(redis_conn, "INV-PC2-1001", {"skipped", "written_off", "facts_missing", "failed"})
    assert (record.outcome, record.rule) == ("skipped", "protect-basic-plan")
    assert f"fetched subscription={subscription['id']}" in (record.detail or "")
    assert sandbox.state.write_off_calls() == []


def test_pc2_an_invoice_without_a_subscription_needs_none_and_is_written_off(
    sandbox, web, redis_conn, start_worker, rules_file
):
    rules_file(PLAN_RULES)
    event = pc2_invoice_only("pc2_invoice_updated")
    event["content"]["invoice"].update(amount_due=1250, amount_to_collect=1250)  # under max_write_off
    assert "subscription_id" not in event["content"]["invoice"]
    sandbox.state.add_invoice(**event["content"]["invoice"])
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()

    record = final_record(redis_conn, "INV-PC2-1002", {"skipped", "written_off", "facts_missing", "failed"})
    assert (record.outcome, record.rule) == ("written_off", "exhausted")
    assert sandbox.state.calls(path_contains="/subscriptions/", method="GET") == []
