"""`apply_credits_first: true` end to end: real workers, the sandbox over HTTP. The customer's
credits go on the invoice first; what they leave is decided again and written off, once, even when
the worker is killed between the two calls."""

from __future__ import annotations

import pytest

from reactor.jobs.audit import AuditFilter, AuditLog
from tests.helpers import WebServer, wait_for, wait_settled
from tests.integration.helpers import exhausted_invoice, make_event, post_event

pytestmark = pytest.mark.integration

RULES = """\
version: 1
mode: live
rules:
  - name: small-balance-credits-first
    on: [payment_failed]
    when:
      - invoice.dunning_status: exhausted
      - invoice.amount_due: {gte: {USD: 10}}
      - invoice.amount_due: {lte: {USD: 25}}
    action: write_off
    apply_credits_first: true
"""
FINAL = {"written_off", "credits_applied", "changed", "facts_missing", "failed"}


def trail(redis_conn, invoice_id: str) -> list:
    return list(AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id)))


def outcomes(redis_conn, invoice_id: str) -> list[str]:
    return [r.outcome for r in trail(redis_conn, invoice_id)]


def apply_calls(sandbox) -> list[dict]:
    return [c for c in sandbox.state.calls(method="POST") if c["path"].endswith("/apply_credits")]


@pytest.fixture
def credits_rules(rules_file):
    return rules_file(RULES)


def customer_with_credits(sandbox, customer_id: str, *amounts: int) -> None:
    sandbox.state.add_customer(id=customer_id)
    for amount in amounts:
        sandbox.state.add_credit_note(customer_id=customer_id, total=amount, currency_code="USD")


def run_event(sandbox, web, start_worker, redis_conn, invoice, wanted: str) -> None:
    assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
    start_worker()
    wait_for(lambda: wanted in outcomes(redis_conn, invoice["id"]), timeout=30, what=wanted)
    wait_settled(redis_conn)  # no job left that could make a second call


def test_credits_that_cover_the_invoice_settle_it_and_nothing_is_written_off(
    credits_rules, sandbox, web, start_worker, redis_conn
):
    customer_with_credits(sandbox, "cus_rich", 2000)
    invoice = exhausted_invoice(sandbox, customer_id="cus_rich")

    run_event(sandbox, web, start_worker, redis_conn, invoice, "credits_applied")

    assert sandbox.state.write_off_calls() == []
    [call] = apply_calls(sandbox)
    assert call["status"] == 200 and call["headers"]["chargebee-event-webhook"] == "all-disabled"
    assert call["headers"]["chargebee-idempotency-key"].startswith("reactor-ac-")
    stored = sandbox.state.get_invoice(invoice["id"])
    assert (stored["status"], stored["amount_due"], stored["credits_applied"]) == ("paid", 0, 1250)
    assert sandbox.state.get_customer("cus_rich")["refundable_credits"] == 750
    [record] = [r for r in trail(redis_conn, invoice["id"]) if r.outcome == "credits_applied"]
    assert (record.rule, record.amount_due, record.currency) == ("small-balance-credits-first", 1250, "USD")
    assert "nothing written off" in record.reason
    assert outcomes(redis_conn, invoice["id"]).count("written_off") == 0


def test_partial_credits_leave_the_rest_to_be_written_off(credits_rules, sandbox, web, start_worker, redis_conn):
    customer_with_credits(sandbox, "cus_some", 100, 100)
    invoice = exhausted_invoice(sandbox, customer_id="cus_some")

    run_event(sandbox, web, start_worker, redis_conn, invoice, "written_off")

    stored = sandbox.state.get_invoice(invoice["id"])
    assert (stored["credits_applied"], stored["write_off_amount"], stored["status"]) == (200, 1050, "paid")
    assert len(apply_calls(sandbox)) == 1 and len(sandbox.state.write_off_calls()) == 1
    records = {r.outcome: r for r in trail(redis_conn, invoice["id"])}
    assert records["credits_applied"].amount_due == 200 and "10.50 USD left" in records["credits_applied"].reason
    assert records["written_off"].amount_due == 1050


def test_a_rest_below_the_rules_threshold_is_not_written_off(credits_rules, sandbox, web, start_worker, redis_conn):
    customer_with_credits(sandbox, "cus_half", 500)
    invoice = exhausted_invoice(sandbox, customer_id="cus_half")  # 12.50 due, 7.50 after credits: under 10

    run_event(sandbox, web, start_worker, redis_conn, invoice, "changed")

    assert sandbox.state.write_off_calls() == []
    stored = sandbox.state.get_invoice(invoice["id"])
    assert (stored["status"], stored["amount_due"]) == ("not_paid", 750)
    changed = [r for r in trail(redis_conn, invoice["id"]) if r.outcome == "changed"]
    assert changed and changed[0].reason.startswith("after the credits:")


def test_a_customer_without_credits_is_written_off_without_an_apply_credits_call(
    credits_rules, sandbox, web, start_worker, redis_conn
):
    customer_with_credits(sandbox, "cus_none")
    invoice = exhausted_invoice(sandbox, customer_id="cus_none")

    run_event(sandbox, web, start_worker, redis_conn, invoice, "written_off")

    assert apply_calls(sandbox) == []
    assert sandbox.state.get_invoice(invoice["id"])["write_off_amount"] == 1250


def test_credits_that_cannot_be_read_mean_no_write_off(credits_rules, sandbox, web, start_worker, redis_conn):
    invoice = exhausted_invoice(sandbox, customer_id="cus_unknown")  # no such customer in Chargebee

    run_event(sandbox, web, start_worker, redis_conn, invoice, "facts_missing")

    assert sandbox.state.write_off_calls() == [] and apply_calls(sandbox) == []
    [record] = [r for r in trail(redis_conn, invoice["id"]) if r.outcome == "facts_missing"]
    assert "cus_unknown" in record.reason


def test_a_refused_apply_credits_on_an_open_invoice_is_retried_and_reads_the_credits_again(
    credits_rules, sandbox, web, start_worker, redis_conn
):
    """What Chargebee answers when the credits went meanwhile is UNCONFIRMED: 409 here."""
    customer_with_credits(sandbox, "cus_race", 100)
    sandbox.state.add_fault(match="apply_credits", status=409, api_error_code="invalid_state_for_request", times=1)
    invoice = exhausted_invoice(sandbox, customer_id="cus_race")

    run_event(sandbox, web, start_worker, redis_conn, invoice, "written_off")

    assert [c["status"] for c in apply_calls(sandbox)] == [409, 200]
    assert "retrying" in outcomes(redis_conn, invoice["id"])
    assert sandbox.state.get_invoice(invoice["id"])["write_off_amount"] == 1150


CRASH = {"http_timeout": 3.0, "rate_limit_max_wait": 1.0, "abandoned_after": 3, "maintenance_interval": 1}


def test_a_worker_killed_between_apply_credits_and_write_off_does_not_apply_twice(
    credits_rules, sandbox, redis_conn, start_worker, short_settings
):
    crash_settings = short_settings(**CRASH, job_timeout=30, worker_class="fork")
    web = WebServer(crash_settings)
    try:
        customer_with_credits(sandbox, "cus_crash", 500)
        invoice = exhausted_invoice(sandbox, customer_id="cus_crash", total=2000, amount_due=2000)
        sandbox.state.hold("apply_credits")
        assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
        doomed = start_worker(crash_settings)
        assert sandbox.state.wait_held(1, timeout=30) == 1, doomed.output()
        doomed.kill()
        sandbox.state.release_held()  # Chargebee applies the credits; nobody hears the answer
        wait_for(lambda: sandbox.state.get_invoice(invoice["id"])["credits_applied"] == 500, what="the held call")

        start_worker(crash_settings)
        wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=40, what="recovery")
        wait_settled(redis_conn)
    finally:
        web.stop()
    assert len(apply_calls(sandbox)) == 1 and len(sandbox.state.write_off_calls()) == 1
    stored = sandbox.state.get_invoice(invoice["id"])
    assert (stored["credits_applied"], stored["write_off_amount"]) == (500, 1500)
    [record] = [r for r in trail(redis_conn, invoice["id"]) if r.outcome == "credits_applied"]
    assert "recovered=true" in record.detail and record.amount_due == 500
    assert outcomes(redis_conn, invoice["id"]).count("written_off") == 1
