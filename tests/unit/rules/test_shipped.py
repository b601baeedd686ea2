"""The rules.yaml the reactor ships with decides the way its comments promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from reactor.rules import RuleSet, decide, load_rules

from .helpers import DAY, NOW, event, invoice

SHIPPED = Path(__file__).resolve().parents[3] / "rules.yaml"


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(SHIPPED)


def test_shipped_rules_are_live_with_per_currency_limits(shipped: RuleSet) -> None:
    limit = shipped.limits.max_write_off
    assert shipped.mode == "live" and limit is not None
    assert [str(limit.major_for(c)) for c in ("USD", "EUR", "GBP", "JPY")] == ["500", "450", "400", "60000"]


def test_enterprise_customer_id_is_protected(shipped: RuleSet) -> None:
    decision = decide(shipped, event(invoice(customer_id="ent_42")), NOW)
    assert (decision.action, decision.rule) == ("skip", "protect-enterprise")


def test_enterprise_segment_is_protected(shipped: RuleSet) -> None:
    decision = decide(shipped, event(customer={"id": "cus_1", "cf_segment": "enterprise"}), NOW)
    assert (decision.action, decision.rule) == ("skip", "protect-enterprise")


@pytest.mark.parametrize(
    ("amount_due", "currency", "action"),
    [
        (2500, "USD", "write_off"),
        (2501, "USD", "none"),
        (2000, "GBP", "write_off"),
        (2001, "EUR", "none"),
        (3000, "JPY", "write_off"),
        (3001, "JPY", "none"),
        (100, "CHF", "none"),
    ],
)
def test_exhausted_dunning_with_a_small_balance_is_written_off(
    shipped: RuleSet, amount_due: int, currency: str, action: str
) -> None:
    decision = decide(shipped, event(invoice(amount_due=amount_due, currency_code=currency)), NOW)
    assert decision.action == action


def test_exhausted_dunning_rule_only_listens_to_its_events(shipped: RuleSet) -> None:
    assert decide(shipped, event(event_type="invoice_generated"), NOW).action == "none"


def test_exhausted_dunning_rule_renders_its_comment(shipped: RuleSet) -> None:
    decision = decide(shipped, event(), NOW)
    assert decision.comment == "Auto write-off (dunning-exhausted-small-balance): dunning exhausted, 12.50 USD due"


def test_long_overdue_tiny_balance_is_written_off_after_90_days(shipped: RuleSet) -> None:
    due = int(NOW.timestamp()) - 90 * DAY
    inv = invoice(dunning_status=..., amount_due=500, due_date=due, status="payment_due")
    decision = decide(shipped, event(inv, event_type="invoice_updated"), NOW)
    assert (decision.action, decision.rule) == ("write_off", "long-overdue-tiny")
    assert decision.comment == "Auto write-off (long-overdue-tiny): 5.00 USD left 90 days after the due date"


def test_long_overdue_rule_waits_until_day_90(shipped: RuleSet) -> None:
    inv = invoice(dunning_status=..., amount_due=500, due_date=int(NOW.timestamp()) - 89 * DAY)
    assert decide(shipped, event(inv), NOW).action == "none"
