"""`reactor trace`: the story of an invoice told from what the webhook and real workers recorded,
against the sandbox over HTTP (receipts, decisions, Chargebee calls, outcomes, dead letters)."""

from __future__ import annotations

import json

import pytest

from reactor.jobs.audit import AuditLog, AuditRecord, Outcome
from reactor.keys import Keys
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event
from tests.integration.ops_helpers import reactor

pytestmark = pytest.mark.integration


def traced(settings, some_id: str) -> dict:
    result = reactor(settings, "trace", some_id, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def steps_of(trace: dict, kind: str) -> list[dict]:
    return [step for step in trace["steps"] if step["kind"] == kind]


@pytest.fixture
def written_off(sandbox, web, redis_conn, start_worker):
    """An invoice written off from a webhook by a real worker, its event then delivered again."""
    invoice = exhausted_invoice(sandbox)
    event = make_event(invoice)
    assert post_event(web.webhook_url, event).json()["status"] == "queued"
    start_worker()
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="written_off")
    assert post_event(web.webhook_url, event).json()["status"] == "duplicate"
    return event, invoice


def test_trace_tells_receipt_decision_calls_and_credit_note_in_order(written_off, sandbox, settings):
    event, invoice = written_off
    note = sandbox.state.get_invoice(invoice["id"])["adjustment_credit_notes"][0]
    result = reactor(settings, "trace", invoice["id"])
    assert result.exit_code == 0, result.output
    text = result.output

    assert f"event {event['id']} payment_failed received: queued" in text
    assert "decision (event as received): write_off by rule dunning-exhausted-small-balance" in text
    assert "✔ true: invoice.dunning_status eq exhausted, actual 'exhausted'" in text
    assert "✔ true: invoice.amount_due lte {USD: 25, EUR: 20, JPY: 3000}, actual 12.50 USD" in text
    assert "safety checks: passed" in text
    assert f"Chargebee GET /invoices/{invoice['id']} → 200" in text
    assert f"Chargebee POST /invoices/{invoice['id']}/write_off → 200" in text
    assert "idempotency key reactor-wo-" in text and "(not replayed)" in text
    assert f"credit note {note['cn_id']}: 12.50 USD" in text
    assert "outcome written_off, 12.50 USD, rule dunning-exhausted-small-balance" in text
    assert "duplicate: this event id was already taken" in text
    order = [text.index(s) for s in ("received: queued", "decision (", "/write_off → 200", "outcome written_off")]
    assert order == sorted(order), text


def test_trace_json_parses_and_finds_the_invoice_from_its_event_id(written_off, settings):
    event, invoice = written_off
    trace = traced(settings, event["id"])

    assert trace["invoice_id"] == invoice["id"] and trace["asked"] == event["id"]
    receipts = [step["data"]["status"] for step in steps_of(trace, "receipt")]
    assert receipts == ["queued", "duplicate"]
    decision = steps_of(trace, "decision")[0]["data"]
    decided = next(rule for rule in decision["rules"] if rule["decided"])
    assert {c["field"]: (c["actual"], c["held"]) for c in decided["conditions"]}["invoice.dunning_status"] == (
        "'exhausted'",
        True,
    )
    posts = [s["data"] for s in steps_of(trace, "call") if s["data"]["method"] == "POST"]
    assert len(posts) == 1 and posts[0]["status"] == 200 and posts[0]["idempotency_key"].startswith("reactor-wo-")
    assert posts[0]["credit_note"]["amount"] == 1250 and posts[0]["credit_note"]["currency"] == "USD"
    record = next(s["data"] for s in steps_of(trace, "outcome") if s["data"]["outcome"] == "written_off")
    assert record["credit_note"] == posts[0]["credit_note"]["id"]


def test_a_429_shows_its_retry_after_the_retrying_attempt_and_the_call_that_followed(
    sandbox, web, redis_conn, start_worker, settings
):
    invoice, next_one = exhausted_invoice(sandbox), exhausted_invoice(sandbox)
    sandbox.state.add_fault(match="write_off", status=429, retry_after=2, times=1)
    assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
    assert post_event(web.webhook_url, make_event(next_one)).status_code == 200
    start_worker()
    for one in (invoice["id"], next_one["id"]):
        wait_for(lambda one=one: "written_off" in outcomes(redis_conn, one), timeout=40, what="written_off")

    trace = traced(settings, invoice["id"])
    posts = [s["data"] for s in steps_of(trace, "call") if s["data"]["method"] == "POST"]
    assert [p["status"] for p in posts] == [429, 200]
    assert posts[0]["retry_after"] == "2" and posts[0]["error_code"]
    assert posts[0]["idempotency_key"] == posts[1]["idempotency_key"]
    kinds = [
        (s["kind"], s["data"].get("method"), s["data"].get("outcome") or s["data"].get("status"))
        for s in trace["steps"]
    ]
    retried = kinds.index(("outcome", None, "retrying"))
    assert kinds.index(("call", "POST", 429)) < retried < kinds.index(("call", "POST", 200))
    text = reactor(settings, "trace", invoice["id"]).output
    assert "Retry-After 2 s" in text and f"error {posts[0]['error_code']}" in text
    # The 429 paused every call for its Retry-After: the next invoice's first call waited for it.
    first = steps_of(traced(settings, next_one["id"]), "call")[0]["data"]
    assert first["status"] == 200 and 1.0 <= first["waited_s"] <= 5.0, first
    assert f"waited {first['waited_s']:.2f} s for the rate limit" in reactor(settings, "trace", next_one["id"]).output


def test_a_dead_letter_and_its_replay_show_who_replayed_it(failed_by_server_errors, sandbox, redis_conn, settings):
    event, invoice, _ = failed_by_server_errors
    dead = traced(settings, invoice["id"])
    assert [s["data"]["job_id"] for s in steps_of(dead, "dead_letter")] == [f"evaluate-{event['id']}"]
    assert [s["data"]["status"] for s in steps_of(dead, "call") if s["data"]["method"] == "POST"] == [500, 500, 500]

    sandbox.state.clear_faults()
    assert reactor(settings, "dlq", "replay", f"evaluate-{event['id']}").exit_code == 0
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="written_off")
    text = reactor(settings, "trace", invoice["id"]).output
    replayed = next(line for line in text.splitlines() if "outcome replayed" in line)
    detail = text.splitlines()[text.splitlines().index(replayed) + 1 :]
    assert any("detail: by " in line and "@" in line for line in detail[:4]), text
    assert text.index("outcome replayed") < text.index("outcome written_off")


def test_an_unknown_id_exits_1_in_one_line(redis_conn, settings, sandbox):
    result = reactor(settings, "trace", "inv_nobody_knows")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: nothing kept about 'inv_nobody_knows': no invoice or event of that id (older than its trace's"
        " 400 days and not in the audit archive, or mistyped?)"
    ]


def test_an_empty_id_names_no_invoice(redis_conn, settings, sandbox):
    """A release is recorded without an event id: an empty id must not find that record's invoice."""
    audit = AuditLog(redis_conn, Keys(settings.key_prefix).audit())
    audit.append(AuditRecord(event_id=None, invoice_id="inv_released", outcome=Outcome.RELEASED, reason="by ops@host"))
    assert reactor(settings, "trace", "inv_released").exit_code == 0

    result = reactor(settings, "trace", "")
    assert result.exit_code == 2, result.output
    assert "an empty text is not a Chargebee invoice id or event id" in result.output
