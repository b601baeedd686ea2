"""Facts a decision leans on (reactor/rules/facts.py): three-valued rules, what to fetch, what blocks."""

from __future__ import annotations

from reactor.rules import decide
from reactor.rules.facts import kleene, missing_roots, needed_roots, roots_read, unresolved
from reactor.rules.fields import Subject

from .helpers import DAY, NOW, event, invoice, rules

NOW_TS = int(NOW.timestamp())

SHIPPED_SHAPE = """\
- name: protect-enterprise
  when:
    any:
      - invoice.customer_id: {starts_with: "ent_"}
      - customer.cf_segment: enterprise
  action: skip
- name: long-overdue-tiny
  when:
    - days_overdue: {gte: 90}
    - invoice.amount_due: {lte: 5}
  action: write_off
"""

OLD_INVOICE = invoice(status="payment_due", dunning_status=..., amount_due=224, due_date=NOW_TS - 400 * DAY)


def test_a_read_of_an_unknown_resource_is_unknown_and_combinators_follow_kleene() -> None:
    rule = rules(SHIPPED_SHAPE).rules[0]
    subject = Subject(event(OLD_INVOICE, "invoice_updated"), NOW)
    assert roots_read(rule.condition) == {"customer"}
    assert kleene(rule.condition, subject, frozenset({"customer"})) is None
    ent = Subject(event(invoice(customer_id="ent_1"), "invoice_updated"), NOW)
    assert kleene(rule.condition, ent, frozenset({"customer"})) is True  # any: one certain branch is enough
    negated = rules("- name: n\n  when:\n    not: {customer.cf_segment: enterprise}\n  action: write_off\n")
    assert kleene(negated.rules[0].condition, subject, frozenset({"customer"})) is None
    assert kleene(negated.rules[0].condition, subject, frozenset()) is True  # two-valued: missing is false


def test_the_customer_is_needed_only_when_a_write_off_rule_could_decide() -> None:
    ruleset = rules(SHIPPED_SHAPE)
    overdue = event(OLD_INVOICE, "invoice_updated")
    assert missing_roots(ruleset, overdue) == {"customer"}
    assert needed_roots(ruleset, Subject(overdue, NOW), {"customer"}) == {"customer"}
    recent = event(invoice(amount_due=224, due_date=NOW_TS - DAY), "invoice_updated")
    assert needed_roots(ruleset, Subject(recent, NOW), {"customer"}) == frozenset()  # no write_off rule can hold
    enterprise_id = event(dict(OLD_INVOICE, customer_id="ent_9"), "invoice_updated")
    assert needed_roots(ruleset, Subject(enterprise_id, NOW), {"customer"}) == frozenset()  # protected whatever it says


def test_an_event_that_carries_the_customer_needs_nothing() -> None:
    ruleset = rules(SHIPPED_SHAPE)
    carried = event(OLD_INVOICE, "payment_failed", customer={"id": "cus_1", "cf_segment": "smb"})
    assert missing_roots(ruleset, carried) == frozenset()


def test_a_skip_rule_that_might_hold_blocks_the_write_off_with_its_reason() -> None:
    ruleset = rules(SHIPPED_SHAPE)
    overdue = event(OLD_INVOICE, "invoice_updated")
    decision = decide(ruleset, overdue, NOW)
    assert (decision.action, decision.rule) == ("write_off", "long-overdue-tiny")  # two-valued: fails open
    why = unresolved(ruleset, overdue, NOW, "long-overdue-tiny", {"customer": "Chargebee has no customer cus_1"})
    assert why == (
        "skip rule protect-enterprise might protect this invoice, but it reads facts the reactor could not read "
        "(customer: Chargebee has no customer cus_1)"
    )
    assert unresolved(ruleset, overdue, NOW, "long-overdue-tiny", {}) is None


def test_a_write_off_rule_that_holds_only_by_a_missing_fact_is_blocked() -> None:
    ruleset = rules(
        "- name: not-enterprise\n  when:\n    not: {customer.cf_segment: enterprise}\n  action: write_off\n"
    )
    why = unresolved(ruleset, event(OLD_INVOICE, "invoice_updated"), NOW, "not-enterprise", {"customer": "404"})
    assert why is not None and why.startswith("rule not-enterprise holds only if")


def test_rules_that_cannot_see_the_event_type_do_not_block() -> None:
    ruleset = rules(
        """\
        - name: cards-only-on-payments
          on: [payment_failed]
          when:
            - card.funding_type: prepaid
          action: skip
        - name: crumbs
          when:
            - invoice.amount_due: {lte: 5}
          action: write_off
        """
    )
    swept = event(OLD_INVOICE, "invoice_updated")
    assert missing_roots(ruleset, swept) == frozenset()
    assert unresolved(ruleset, swept, NOW, "crumbs", {"card": "not carried"}) is None
