"""reactor/rules/preview.py: which triggers a preview decides on, which fields only the event
carries, the rules reading them (and whether they changed), and when one decision rests on them."""

from __future__ import annotations

from pathlib import Path

from reactor.rules import decide, parse_rules
from reactor.rules.preview import blind_read, event_only_fields, preview_plan

from .helpers import NOW, event, invoice, rules

REPO = Path(__file__).resolve().parents[3]
SHIPPED = (REPO / "rules.yaml").read_text()


def test_the_shipped_rules_are_previewed_on_their_webhook_events_and_read_nothing_event_only() -> None:
    shipped = parse_rules(SHIPPED)
    raised = parse_rules(SHIPPED.replace("{lte: {USD: 25,", "{lte: {USD: 100,"))
    plan = preview_plan(shipped, raised)
    assert plan.triggers == ("sweep", "invoice_updated", "payment_failed")
    assert plan.others is None and plan.blind == ()
    assert plan.alike == frozenset({"sweep"})  # the edited rule sees both webhook events, not the sweep
    assert preview_plan(shipped, shipped).alike == frozenset(plan.triggers)


def test_fields_a_listing_cannot_supply() -> None:
    ruleset = rules(
        """
        - name: r
          on: [payment_failed]
          when:
            - invoice.amount_due: {lte: 5}
            - customer.cf_segment: smb
            - subscription.status: cancelled
            - days_overdue: {gte: 1}
            - event.event_type: payment_failed
            - event.occurred_at: {gt: 0}
            - transaction.error_code: card_declined
            - card.funding_type: prepaid
            - event.source: scheduled_job
            - transaction.error_code: {ne: insufficient_funds}
          action: write_off
        """
    )
    assert event_only_fields(ruleset.rules[0].condition) == (
        "transaction.error_code",
        "card.funding_type",
        "event.source",
    )


BLIND = """
- name: protect
  when: [invoice.customer_id: {starts_with: "ent_"}]
  action: skip
- name: declined
  on: [payment_failed, sweep]
  when:
    - transaction.error_code: card_declined
    - invoice.amount_due: {lte: 60}
  action: write_off
- name: small
  on: [invoice_updated]
  when: [invoice.amount_due: {lte: 25}]
  action: write_off
"""


def test_a_rule_reading_an_event_only_field_is_named_and_said_changed_when_it_is() -> None:
    base = rules(BLIND)
    plan = preview_plan(base, rules(BLIND.replace("{lte: 60}", "{lte: 90}")))
    # `sweep` is named: the event types no rule names see fewer rules than a swept invoice does
    assert plan.triggers == ("sweep", "invoice_updated", "payment_failed", "dunning_updated")
    assert plan.others == "dunning_updated"
    (blind,) = plan.blind
    assert (blind.rule, blind.fields, blind.on, blind.changed) == ("declined", ("transaction.error_code",),
                                                                   ("payment_failed",), True)  # fmt: skip
    assert plan.blind_changed == (blind,)
    assert "declined reads transaction.error_code on payment_failed" in blind.describe()
    unchanged = preview_plan(base, rules(BLIND.replace("{lte: 25}", "{lte: 30}")))
    assert [b.changed for b in unchanged.blind] == [False] and unchanged.blind_changed == ()
    assert unchanged.alike == frozenset({"sweep", "payment_failed", "dunning_updated"})
    removed = preview_plan(base, rules(BLIND.split("- name: small")[0].replace("- name: declined", "- name: other")))
    assert {b.rule: b.changed for b in removed.blind} == {"declined": True, "other": True}


def test_a_rule_without_on_reading_an_event_only_field_brings_a_trigger_for_the_events() -> None:
    plan = preview_plan(rules("- name: r\n  when: [card.funding_type: prepaid]\n  action: skip\n"))
    assert plan.triggers == ("sweep", "invoice_updated") and plan.others == "invoice_updated"
    assert plan.blind[0].on == () and "every webhook event" in plan.blind[0].describe()
    # a rule on events that never bring an invoice reads its card where no invoice is: nothing to preview
    invoiceless = rules("- name: r\n  on: [card_expired]\n  when: [card.funding_type: prepaid]\n  action: skip\n")
    assert preview_plan(invoiceless).blind == () and preview_plan(invoiceless).triggers == ("sweep",)


def test_event_types_a_rule_names_in_its_conditions_are_triggers_too() -> None:
    named = rules("- name: r\n  when: [event.event_type: {in: [payment_failed, dunning_updated]}]\n  action: skip\n")
    assert preview_plan(named).triggers == ("sweep", "dunning_updated", "payment_failed")
    open_ended = rules("- name: r\n  when: [event.event_type: {ne: sweep}]\n  action: skip\n")
    assert preview_plan(open_ended).others == "invoice_updated"


def test_a_decision_is_blind_only_where_the_unknown_field_could_change_the_write_off() -> None:
    ruleset = rules(BLIND)
    on_next = event(invoice(amount_due=5000), "payment_failed")
    on_next["content"] = {"invoice": on_next["content"]["invoice"]}  # as listed: no transaction

    def blind(inv_event: dict) -> str | None:
        found = blind_read(ruleset, inv_event, NOW, decide(ruleset, inv_event, NOW))
        return found.rule if found else None

    assert blind(on_next) == "declined"  # declined might hold: a write-off, or not
    over = {**on_next, "content": {"invoice": invoice(amount_due=9000)}}
    assert blind(over) is None  # over 60: declined cannot hold, whatever the transaction says
    protected = {**on_next, "content": {"invoice": invoice(customer_id="ent_1")}}
    assert blind(protected) is None  # protect decides first
    carried = event(invoice(amount_due=5000), "payment_failed", transaction={"error_code": "card_declined"})
    assert blind(carried) is None  # a real event carries it: known
    swept = {**on_next, "event_type": "sweep"}
    assert blind(swept) is None  # a swept invoice never carries one: what the sweep decides is exact
    reason = blind_read(ruleset, on_next, NOW, decide(ruleset, on_next, NOW))
    assert reason is not None and "only the payment_failed event itself carries it" in reason.reason()


def test_an_unknown_skip_rule_matters_only_before_a_write_off() -> None:
    ruleset = rules(
        """
        - name: prepaid
          when: [card.funding_type: prepaid]
          action: skip
        - name: small
          when: [invoice.amount_due: {lte: 25}]
          action: write_off
        """
    )
    small = {**event(invoice(amount_due=1000), "payment_failed"), "content": {"invoice": invoice(amount_due=1000)}}
    large = {**small, "content": {"invoice": invoice(amount_due=9000)}}
    assert blind_read(ruleset, small, NOW, decide(ruleset, small, NOW)) is not None  # might protect it
    assert blind_read(ruleset, large, NOW, decide(ruleset, large, NOW)) is None  # nothing to protect it from
