"""The pure assembly of an invoice's timeline (reactor/console/trace/timeline.py) and of the decision
entry it reads (decisions.py), on hand-made sources."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from reactor.console.deadletters import DeadLetter
from reactor.console.trace.timeline import build_timeline, moment, render_text
from reactor.ingest.envelope import Event
from reactor.ingest.receipts import receipt
from reactor.jobs.audit import AuditRecord, Outcome
from reactor.jobs.held import HeldWriteOff
from reactor.jobs.trace.decisions import decision_entry
from reactor.rules import decide, parse_rules

RULES = """\
version: 1
mode: live
rules:
  - name: protect-enterprise
    when:
      - invoice.customer_id: {starts_with: "ent_"}
    action: skip
  - name: small
    on: [payment_failed]
    when:
      - invoice.dunning_status: exhausted
      - invoice.amount_due: {lte: {USD: 25}}
    action: write_off
"""
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def at(second: int, ms: int = 0) -> str:
    return datetime(2026, 11, 26, 12, 0, second, ms * 1000, tzinfo=timezone.utc).isoformat(timespec="milliseconds")


def call(second: int, method: str, path: str, status: int, **fields: object) -> dict:
    entry = {"kind": "call", "at": at(second), "method": method, "path": path, "status": status, "waited_s": 0.0}
    return {**entry, "elapsed_ms": 12, **fields}


def event(amount: int = 1250, customer: str = "cus_1") -> dict:
    invoice = {"id": "inv_1", "customer_id": customer, "dunning_status": "exhausted", "amount_due": amount}
    invoice["status"] = "not_paid"
    return {"id": "ev_1", "event_type": "payment_failed", "content": {"invoice": {**invoice, "currency_code": "USD"}}}


def test_steps_from_every_source_come_out_in_time_order_whatever_order_they_came_in():
    written = AuditRecord("ev_1", "inv_1", Outcome.WRITTEN_OFF, amount_due=1250, currency="USD", at=at(3))
    letter = DeadLetter("evaluate-ev_0", "ev_0", "payment_failed", "inv_1", "HTTP 500", 3, moment(at(1)), "")
    held = HeldWriteOff("inv_1", "ev_1", "small", 1250, "USD", held_at=at(2), reason="max_per_day")
    entries = [
        call(4, "POST", "/invoices/inv_1/write_off", 200),
        json.loads(receipt("ev_1", "payment_failed", {}, "queued", moment(at(0)))),
    ]

    steps = build_timeline(entries, [written], [letter], held)

    assert [s.kind for s in steps] == ["receipt", "dead_letter", "held", "outcome", "call"]
    assert [s.at for s in steps] == sorted(s.at for s in steps)


def test_a_hold_kept_to_the_second_comes_after_what_held_it_within_that_second():
    """held_at is written to the second: an undo at 12:00:52.697 holds the invoice "at 12:00:52"."""
    removal = {**call(52, "POST", "/invoices/inv_1/remove_credit_note", 200), "at": at(52, 697)}
    undone = AuditRecord("ev_1", "inv_1", Outcome.UNDONE, at=at(52, 698))
    held = HeldWriteOff("inv_1", "ev_1", "small", 1250, "USD", held_at=at(52), reason="undone")
    later = AuditRecord("ev_2", "inv_1", Outcome.HELD, at=at(53))

    steps = build_timeline([removal], [undone, later], [], held)

    assert [s.kind for s in steps] == ["call", "outcome", "held", "outcome"]
    assert steps[2].at == moment(at(52))  # shown as it was recorded


def test_steps_at_one_moment_keep_their_sources_order_and_an_undated_one_comes_first():
    record = AuditRecord("ev_1", "inv_1", Outcome.RETRYING, at=at(5))
    steps = build_timeline([call(5, "POST", "/x", 429), {"kind": "call", "method": "GET", "path": "/y"}], [record])
    assert [(s.kind, s.data.get("path")) for s in steps] == [("call", "/y"), ("call", "/x"), ("outcome", None)]


def test_a_call_shows_status_wait_idempotency_key_replay_retry_after_and_the_credit_note():
    entry = call(
        1,
        "POST",
        "/invoices/inv_1/write_off",
        200,
        waited_s=1.25,
        idempotency_key="reactor-wo-abc",
        replayed=True,
        credit_note={"id": "CN-1", "amount": 1250, "currency": "USD"},
    )
    throttled = call(2, "GET", "/invoices/inv_1", 429, retry_after="3", error_code="api_request_limit_exceeded")
    first, second = build_timeline([entry, throttled], [])

    assert first.title == "Chargebee POST /invoices/inv_1/write_off → 200"
    assert first.details == (
        "waited 1.25 s for the rate limit, answered in 12 ms",
        "idempotency key reactor-wo-abc (replayed by Chargebee)",
        "credit note CN-1: 12.50 USD",
    )
    assert "Retry-After 3 s" in second.details and "error api_request_limit_exceeded" in second.details


def test_receipts_say_queued_or_duplicate_with_the_resource_version():
    queued = json.loads(receipt("ev_1", "payment_failed", {"resource_version": 17}, "queued", moment(at(0))))
    duplicate = json.loads(receipt("ev_1", "payment_failed", None, "duplicate", moment(at(1))))
    first, second = build_timeline([queued, duplicate], [])
    assert first.title == "event ev_1 payment_failed received: queued for evaluation"
    assert first.details == ("resource_version 17",)
    assert "duplicate: this event id was already taken, nothing done" in second.title and second.details == ()


def test_an_event_whose_version_orders_nothing_says_why():
    reason = "resource_version 9 is 82800 s ahead of its occurred_at (at most 300 s from Chargebee): not used ..."
    entry = {"kind": "unordered", "at": at(2), "event_id": "ev_1", "resource_version": 9, "reason": reason}
    (step,) = build_timeline([entry], [])
    assert (step.kind, step.title, step.details) == (
        "unordered",
        "event ev_1: resource_version not used for ordering",
        (reason,),
    )


def test_a_decision_lists_the_rules_read_up_to_the_deciding_one_with_each_condition():
    ruleset = parse_rules(RULES)
    entry = decision_entry(ruleset, Event.from_data(event()), NOW, decide(ruleset, event(), NOW), "event as received")
    entry["at"] = at(1)
    (step,) = build_timeline([entry], [])

    assert step.title.startswith("decision (event as received): write_off by rule small, rules ")
    assert step.details[1:] == (
        "rule protect-enterprise (skip): did not match",
        "  ✘ false: invoice.customer_id starts_with ent_, actual 'cus_1'",
        "rule small (write_off): decided",
        "  ✔ true: invoice.dunning_status eq exhausted, actual 'exhausted'",
        "  ✔ true: invoice.amount_due lte {USD: 25}, actual 12.50 USD",
        "safety checks: passed",
    )


def test_a_condition_is_true_or_false_never_held():
    ruleset = parse_rules(RULES)
    entry = decision_entry(ruleset, Event.from_data(event()), NOW, decide(ruleset, event(), NOW), "event as received")
    conditions = [line for line in build_timeline([entry], [])[0].details if line.startswith("  ")]
    assert conditions and all(line.startswith(("  ✔ true: ", "  ✘ false: ")) for line in conditions)
    assert not any("held" in line for line in conditions)


def test_the_held_step_says_what_a_release_does():
    undone = HeldWriteOff("inv_1", "ev_1", "small", 1250, "USD", held_at=at(2), reason="undone")
    budget = HeldWriteOff("inv_1", "ev_1", "small", 1250, "USD", held_at=at(2), reason="limits.max_per_day for USD")
    (undone_step,), (budget_step,) = build_timeline([], [], [], undone), build_timeline([], [], [], budget)

    assert undone_step.details == (
        "`reactor held release inv_1` decides again on the fresh invoice and may write it off again"
        " (with a new idempotency key)",
    )
    assert "past the budget" not in undone_step.details[0] and "budget" not in undone_step.details[0]
    assert budget_step.details == (
        "`reactor held release inv_1` decides again on the fresh invoice and may write it off, without checking"
        " the budget that held it",
    )


def test_a_decision_a_safety_check_blocked_names_it():
    ruleset = parse_rules(RULES)
    seen = event()
    seen["content"]["invoice"]["status"] = "paid"
    entry = decision_entry(ruleset, Event.from_data(seen), NOW, decide(ruleset, seen, NOW), "fresh invoice")
    details = build_timeline([entry], [])[0].details
    assert details[-1] == "safety checks: blocked by invoice.status" and "paid" in details[0]


def test_a_decision_of_no_rule_lists_every_rule_and_a_missing_fact_reads_missing():
    ruleset = parse_rules(RULES)
    seen = event(amount=9000)
    del seen["content"]["invoice"]["dunning_status"]
    entry = decision_entry(ruleset, Event.from_data(seen), NOW, decide(ruleset, seen, NOW), "fresh invoice")

    assert [rule["rule"] for rule in entry["rules"]] == ["protect-enterprise", "small"]
    conditions = {c["field"]: (c["actual"], c["held"]) for c in entry["rules"][1]["conditions"]}
    assert conditions["invoice.dunning_status"] == (None, False)
    assert "actual (missing)" in "\n".join(build_timeline([entry], [])[0].details)


def test_an_outcome_shows_its_credit_note_and_who_replayed():
    written = AuditRecord("ev_1", "inv_1", Outcome.WRITTEN_OFF, amount_due=1250, currency="USD", rule="small")
    written.credit_note, written.at = "CN-7", at(2)
    replayed = AuditRecord("ev_1", "inv_1", Outcome.REPLAYED, detail="by ops@host", at=at(1))
    first, second = build_timeline([], [written, replayed])
    assert (first.title, first.details) == ("outcome replayed", ("detail: by ops@host", "event: ev_1"))
    assert second.title == "outcome written_off, 12.50 USD, rule small" and "credit note: CN-7" in second.details


def test_an_entry_of_an_unknown_kind_is_kept_and_the_text_is_one_line_a_step_with_details_indented():
    steps = build_timeline([{"kind": "refund", "at": at(1)}], [AuditRecord(None, "inv_1", "future_word", at="bad")])
    text = render_text("inv_1", steps).splitlines()
    assert text[0] == "invoice inv_1: 2 steps (times in UTC)"
    assert text[1].startswith("(no time)") and "outcome future_word" in text[1]
    assert text[2] == "2026-11-26 12:00:01Z  refund       refund (recorded by a newer release)"


def test_an_audit_record_written_before_the_credit_note_field_still_reads():
    fields = {"at": at(1), "event_id": "ev_1", "invoice_id": "inv_1", "outcome": "written_off", "detail": "x"}
    record = AuditRecord.from_fields("1-0", fields)
    assert record.credit_note is None and record.outcome == Outcome.WRITTEN_OFF
    assert AuditRecord.from_fields("1-0", {**fields, "credit_note": "CN-1"}).credit_note == "CN-1"
