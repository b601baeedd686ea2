"""The Chargebee catalogue rules are checked against: event types, invoice-carrying events, attributes."""

from __future__ import annotations

import pytest

from reactor.rules import (
    CHARGEBEE_EVENT_TYPES,
    INVOICE_EVENT_TYPES,
    INVOICELESS_EVENT_TYPES,
    KNOWN_EVENT_TYPES,
    SWEEP_EVENT_TYPE,
    parse_rules,
)
from reactor.rules.catalogue import RESOURCE_ATTRIBUTES

from .helpers import problem_at

HEAD = "version: 1\nmode: live\nrules:\n"


def rule_on(on: str, condition: str = "invoice.status: paid", action: str = "skip") -> str:
    """One rule `r` (line 4) with `on:` on line 5 and its one condition on line 7."""
    return HEAD + f"  - name: r\n    on: {on}\n    when:\n      - {condition}\n    action: {action}\n"


# --- event types ---------------------------------------------------------------------------------


def test_the_list_is_the_whole_official_enum() -> None:
    assert len(CHARGEBEE_EVENT_TYPES) == 242  # chargebee-python 3.29.0 EventType
    assert {
        "einvoice_created",
        "business_ruleset_activated",
        "vault_token_created",
        "ledger_updated",
        "omnichannel_subscription_item_recovered",
        "subscription_items_renewed",
        "subscription_canceled_with_backdating",
        "tax_withheld_recorded",
        "tax_withheld_deleted",
        "tax_withheld_refunded",
        "contract_term_created",
        "contract_term_terminated",
        "subscription_ramp_created",
        "subscription_ramp_applied",
        "omnichannel_subscription_item_renewed",
        "payment_failed",
        "invoice_updated",
    } <= CHARGEBEE_EVENT_TYPES


def test_sweep_is_accepted_and_carries_an_invoice() -> None:
    assert SWEEP_EVENT_TYPE == "sweep" and SWEEP_EVENT_TYPE not in CHARGEBEE_EVENT_TYPES
    assert SWEEP_EVENT_TYPE in KNOWN_EVENT_TYPES and SWEEP_EVENT_TYPE in INVOICE_EVENT_TYPES


@pytest.mark.parametrize("event_type", sorted(CHARGEBEE_EVENT_TYPES))
def test_every_official_event_type_is_accepted_in_on(event_type: str) -> None:
    ruleset = parse_rules(rule_on(event_type))  # a skip rule: invoice-less events only warn
    assert ruleset.rules[0].on == frozenset({event_type})


def test_every_official_event_type_loads_in_one_list() -> None:
    on = "[" + ", ".join(sorted(KNOWN_EVENT_TYPES)) + "]"
    ruleset = parse_rules(rule_on(on))
    assert ruleset.rules[0].on == KNOWN_EVENT_TYPES
    assert len(ruleset.warnings) == len(INVOICELESS_EVENT_TYPES)  # a skip rule on them only warns


def test_a_misspelt_event_type_is_still_refused_with_a_did_you_mean() -> None:
    assert problem_at(rule_on("subscription_item_renewed"), 5, 9) == (
        "unknown event type 'subscription_item_renewed' in `on`; did you mean 'subscription_items_renewed'?"
    )


def test_invoice_events_follow_the_event_schemas() -> None:
    assert {
        "invoice_generated",
        "invoice_updated",
        "invoice_deleted",
        "payment_failed",
        "payment_succeeded",
        "payment_initiated",
        "payment_due_reminder",
        "dunning_updated",
        "subscription_renewed",
        "subscription_items_renewed",
        "tax_withheld_recorded",
        "subscription_cancelled",  # only when the cancellation bills something: see INVOICE_SOMETIMES
    } <= INVOICE_EVENT_TYPES
    assert {
        "credit_note_created",
        "customer_changed",
        "transaction_updated",
        "card_expired",
        "subscription_trial_end_reminder",
        "contract_term_created",
        "einvoice_created",
        "grant_blocks_created",
    } <= INVOICELESS_EVENT_TYPES
    assert INVOICE_EVENT_TYPES | INVOICELESS_EVENT_TYPES == KNOWN_EVENT_TYPES
    assert not INVOICE_EVENT_TYPES & INVOICELESS_EVENT_TYPES


# --- resource attributes -------------------------------------------------------------------------


def test_attributes_include_pc1_names_and_those_of_real_payloads() -> None:
    invoice, subscription = RESOURCE_ATTRIBUTES["invoice"], RESOURCE_ATTRIBUTES["subscription"]
    assert {
        "line_items",
        "linked_payments",
        "applied_credits",
        "dunning_attempts",
        "next_retry_at",
        "expected_payment_date",
        "deleted",
        "resource_version",
        "amount_due",
        "base_currency_code",
    } <= invoice
    assert {
        "plan_id",
        "plan_quantity",
        "plan_unit_price",
        "addons",
        "subscription_items",
        "cancel_reason",
    } <= subscription
    assert {"cf_segment", "email", "auto_collection"} - RESOURCE_ATTRIBUTES["customer"] == {"cf_segment"}


def test_attributes_the_current_sdk_added_are_known() -> None:
    """chargebee-python 3.29.0 adds `brand_id` to invoices, customers, subscriptions and credit
    notes, and `network_transaction_details` to transactions: a rule reading them is not refused."""
    for root in ("invoice", "customer", "subscription", "credit_note"):
        assert "brand_id" in RESOURCE_ATTRIBUTES[root], root
    assert "network_transaction_details" in RESOURCE_ATTRIBUTES["transaction"]
    ruleset = parse_rules(rule_on("[invoice_updated]", "invoice.brand_id: acme"))
    assert ruleset.rules[0].name == "r"
