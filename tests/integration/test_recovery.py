"""Money after a write-off: a customer of an invoice the reactor wrote off pays (an excess payment
recorded in the sandbox, its webhook delivered to the real web), a `recovery_candidate` is recorded,
and `reactor recover` reverses the write-off and applies the payment so the invoice is paid by
payment. Real web, worker and Redis, the sandbox over HTTP, the real CLI as a process."""

from __future__ import annotations

from dataclasses import replace

import pytest
import requests

from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.jobs.held import list_held
from reactor.jobs.recovery import open_candidates
from reactor.keys import Keys
from tests.helpers import WEBHOOK_PASSWORD, WEBHOOK_USER, wait_for
from tests.integration.helpers import make_event, outcomes, post_event
from tests.integration.ops_helpers import reactor_process

pytestmark = pytest.mark.integration

RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500, GBP: 500, EUR: 500}
rules:
  - name: dunning-exhausted
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""


def write_off(sandbox, web, redis_conn, **fields) -> dict:
    """An exhausted invoice written off by the reactor through a webhook and the running worker."""
    values = {"status": "not_paid", "dunning_status": "exhausted", "currency_code": "GBP", "total": 1200}
    values.update(fields)
    invoice = sandbox.state.add_invoice(**values)
    assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="our write-off")
    return invoice


def pay(sandbox, customer_id: str, amount: int, currency: str = "GBP") -> dict:
    """A payment arriving on the site as the customer's excess payment, its event posted to the reactor."""
    resp = requests.post(
        f"{sandbox.url}/_sandbox/payments",
        json={"customer_id": customer_id, "amount": amount, "currency_code": currency},
        timeout=5,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["transaction"]


def records(redis_conn, invoice_id: str, outcome: str) -> list:
    return [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id)) if r.outcome == outcome]


def apply_calls(sandbox) -> list[dict]:
    return sandbox.state.calls(path_contains="/apply_payments", method="POST")


@pytest.fixture
def site(sandbox, web, redis_conn, start_worker, rules_file):
    rules_file(RULES)
    sandbox.state.add_customer(id="cus_gb", vat_number="GB123456789", preferred_currency_code="GBP")
    sandbox.state.set_webhook_target(web.webhook_url, WEBHOOK_USER, WEBHOOK_PASSWORD)
    start_worker()
    return sandbox


def test_a_full_payment_is_a_candidate_and_recover_leaves_the_invoice_paid_by_payment(site, web, redis_conn, settings):
    invoice = write_off(site, web, redis_conn, customer_id="cus_gb")
    invoice_id = invoice["id"]

    txn = pay(site, "cus_gb", 1200)

    wait_for(lambda: records(redis_conn, invoice_id, "recovery_candidate"), what="the candidate recorded")
    [candidate] = open_candidates(redis_conn, Keys(settings.key_prefix))
    assert (candidate.invoice_id, candidate.customer_id, candidate.amount, candidate.transaction) == (
        invoice_id,
        "cus_gb",
        1200,
        txn["id"],
    )
    [seen] = records(redis_conn, invoice_id, "recovery_candidate")
    assert (seen.amount_due, seen.currency) == (1200, "GBP") and txn["id"] in seen.detail
    assert len(site.state.write_off_calls()) == 1, "a payment event is no write-off candidate"

    done = reactor_process(settings, "recover", invoice_id)

    assert done.returncode == 0, done.stderr
    assert "12.00 GBP applied" in done.stdout and "the invoice is paid" in done.stdout
    after = site.state.get_invoice(invoice_id)
    assert (after["status"], after["amount_due"], after["write_off_amount"], after["amount_paid"]) == (
        "paid",
        0,
        0,
        1200,
    )
    assert [p["txn_id"] for p in after["linked_payments"]] == [txn["id"]]
    assert site.state.get_customer("cus_gb")["excess_payments"] == 0
    [call] = apply_calls(site)
    assert call["form"] == {"transactions[id][0]": txn["id"], "comment": call["form"]["comment"]}
    assert call["headers"]["chargebee-idempotency-key"].startswith("reactor-recover-")
    assert call["headers"]["chargebee-event-webhook"] == "all-disabled"
    [recovered] = records(redis_conn, invoice_id, "recovered")
    assert (recovered.amount_due, recovered.currency) == (1200, "GBP")
    assert "amount_due=0" in recovered.detail and "status=paid" in recovered.detail
    assert open_candidates(redis_conn, Keys(settings.key_prefix)) == []
    assert list_held(redis_conn, settings.key_prefix) == [], "paid whole: nothing left held"

    again = reactor_process(settings, "recover", invoice_id)
    assert again.returncode == 1 and "recovered already" in again.stderr, again.stderr
    assert len(apply_calls(site)) == 1 and len(records(redis_conn, invoice_id, "recovered")) == 1


def test_a_part_payment_reverses_the_write_off_applies_it_and_leaves_the_rest_due_held(site, web, redis_conn, settings):
    invoice = write_off(site, web, redis_conn, customer_id="cus_gb")
    txn = pay(site, "cus_gb", 500)
    wait_for(lambda: records(redis_conn, invoice["id"], "recovery_candidate"), what="the candidate recorded")

    done = reactor_process(settings, "recover", invoice["id"], "--transaction", txn["id"])

    assert done.returncode == 0, done.stderr
    assert "5.00 GBP applied" in done.stdout and "7.00 GBP still due" in done.stdout
    after = site.state.get_invoice(invoice["id"])
    assert (after["status"], after["amount_due"], after["write_off_amount"]) == ("not_paid", 700, 0)
    [recovered] = records(redis_conn, invoice["id"], "recovered")
    assert recovered.amount_due == 500 and "amount_due=700" in recovered.detail
    [held] = list_held(redis_conn, settings.key_prefix)
    assert (held.invoice_id, held.reason) == (invoice["id"], "undone")


def test_a_reversal_refused_by_chargebee_applies_nothing_and_is_recorded(site, web, redis_conn, settings):
    invoice = write_off(site, web, redis_conn, customer_id="cus_gb")
    pay(site, "cus_gb", 1200)
    wait_for(lambda: records(redis_conn, invoice["id"], "recovery_candidate"), what="the candidate recorded")
    site.state.add_fault("remove_credit_note", status=409, api_error_code="invalid_state_for_request", times=1)

    refused = reactor_process(settings, "recover", invoice["id"])

    assert refused.returncode == 1 and "no payment applied" in refused.stderr, refused.stderr
    assert apply_calls(site) == []
    after = site.state.get_invoice(invoice["id"])
    assert (after["status"], after["write_off_amount"]) == ("paid", 1200)
    assert site.state.get_customer("cus_gb")["excess_payments"] == 1200
    [failed] = records(redis_conn, invoice["id"], "recovery_failed")
    assert "reversal was refused" in failed.reason and "reversed=false" in failed.detail
    assert redis_conn.get(Keys(settings.key_prefix).written_off(invoice["id"])) is not None, "our mark stays"
    assert len(open_candidates(redis_conn, Keys(settings.key_prefix))) == 1, "still to recover"


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 409, "api_error_code": "invalid_state_for_request"},
        {"status": 400, "api_error_code": "invalid_state_for_request"},
        {"status": 404},
        {"status": 503},
    ],
    ids=["invalid_state_409", "invalid_state_400", "not_found", "unavailable"],
)
def test_a_payment_refused_after_the_reversal_leaves_the_invoice_held_and_a_retry_applies_it_once(
    site, web, redis_conn, settings, fault
):
    invoice = write_off(site, web, redis_conn, customer_id="cus_gb")
    pay(site, "cus_gb", 1200)
    wait_for(lambda: records(redis_conn, invoice["id"], "recovery_candidate"), what="the candidate recorded")
    site.state.add_fault("apply_payments", times=1, **fault)

    refused = reactor_process(settings, "recover", invoice["id"])

    assert refused.returncode == 1, refused.stderr
    assert "reversed and the invoice held" in refused.stderr
    after = site.state.get_invoice(invoice["id"])
    assert (after["status"], after["amount_due"], after["write_off_amount"]) == ("not_paid", 1200, 0)
    assert [h.invoice_id for h in list_held(redis_conn, settings.key_prefix)] == [invoice["id"]]
    [failed] = records(redis_conn, invoice["id"], "recovery_failed")
    assert "reversed=true" in failed.detail
    assert records(redis_conn, invoice["id"], "recovered") == []

    again = reactor_process(settings, "recover", invoice["id"])  # the fault is spent

    assert again.returncode == 0, again.stderr
    assert site.state.get_invoice(invoice["id"])["status"] == "paid"
    assert len(site.state.calls(path_contains="/remove_credit_note", method="POST")) == 1
    assert len(records(redis_conn, invoice["id"], "recovered")) == 1
    assert list_held(redis_conn, settings.key_prefix) == []


def test_a_retry_after_a_lost_answer_does_not_apply_the_payment_twice(site, web, redis_conn, settings):
    """The payment went through but its answer was lost (the sandbox applied it, then the client saw
    no invoice): the retry finds the payment on the fresh invoice and records it without a call."""
    invoice = write_off(site, web, redis_conn, customer_id="cus_gb")
    txn = pay(site, "cus_gb", 1200)
    wait_for(lambda: records(redis_conn, invoice["id"], "recovery_candidate"), what="the candidate recorded")
    site.state.add_fault("apply_payments", latency_ms=3000, times=1)
    short = replace(settings, http_timeout=1.0)

    lost = reactor_process(short, "recover", invoice["id"])

    assert lost.returncode == 1 and "run the same command again" in lost.stderr, lost.stderr
    wait_for(lambda: site.state.get_invoice(invoice["id"])["status"] == "paid", what="the slow call applied")

    again = reactor_process(settings, "recover", invoice["id"])

    assert again.returncode == 0, again.stderr
    assert len(apply_calls(site)) == 1
    after = site.state.get_invoice(invoice["id"])
    assert [p["txn_id"] for p in after["linked_payments"]] == [txn["id"]] and after["amount_paid"] == 1200


def test_a_payment_of_another_customer_is_no_candidate(site, web, redis_conn, settings):
    site.state.add_customer(id="cus_other", preferred_currency_code="GBP")
    invoice = write_off(site, web, redis_conn, customer_id="cus_gb")

    pay(site, "cus_other", 1200)
    site.state.wait_for_deliveries(1)

    assert open_candidates(redis_conn, Keys(settings.key_prefix)) == []
    assert records(redis_conn, invoice["id"], "recovery_candidate") == []


def post(web, event_type: str, content: dict) -> None:
    event = make_event({}, event_type=event_type)
    event["content"] = content
    assert post_event(web.webhook_url, event).status_code == 200  # no invoice: seen in the request itself


def test_only_excess_payments_that_rose_after_our_write_off_are_money_back_and_a_payment_takes_their_place(
    site, web, redis_conn, settings
):
    """The customer had 3.00 of excess payments when we wrote its invoice off (the event carried it):
    that is no money back. 5.00 more is, as the balance's rise; then the payment event of that same
    money replaces the balance, so the money is listed once."""
    site.state.record_excess_payment("cus_gb", 300, "GBP", event_type=None, webhooks=False)
    invoice = site.state.add_invoice(
        status="not_paid", dunning_status="exhausted", currency_code="GBP", total=1200, customer_id="cus_gb"
    )
    event = make_event(invoice, customer=site.state.get_customer("cus_gb"))
    assert post_event(web.webhook_url, event).status_code == 200
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="our write-off")
    keys = Keys(settings.key_prefix)

    post(web, "customer_changed", {"customer": site.state.get_customer("cus_gb")})
    assert open_candidates(redis_conn, keys) == [] and records(redis_conn, invoice["id"], "recovery_candidate") == []

    customer, txn, _ = site.state.record_excess_payment("cus_gb", 500, "GBP", event_type=None, webhooks=False)
    post(web, "customer_changed", {"customer": customer})
    [balance] = open_candidates(redis_conn, keys)
    assert (balance.amount, balance.transaction) == (500, "excess_payments")

    post(web, "payment_succeeded", {"transaction": txn, "customer": customer})
    post(web, "customer_changed", {"customer": customer})
    [payment] = open_candidates(redis_conn, keys)
    assert (payment.amount, payment.transaction) == (500, txn["id"])
    assert len(records(redis_conn, invoice["id"], "recovery_candidate")) == 2


def test_a_reversal_released_and_written_off_again_is_reversed_again_before_the_payment(
    site, web, redis_conn, settings
):
    invoice = write_off(site, web, redis_conn, customer_id="cus_gb")
    pay(site, "cus_gb", 1200)
    wait_for(lambda: records(redis_conn, invoice["id"], "recovery_candidate"), what="the candidate recorded")
    site.state.add_fault("apply_payments", status=409, api_error_code="invalid_state_for_request", times=1)
    assert reactor_process(settings, "recover", invoice["id"]).returncode == 1
    released = reactor_process(settings, "held", "release", invoice["id"], "--reason", "try again")
    assert released.returncode == 0, released.stderr
    wait_for(lambda: outcomes(redis_conn, invoice["id"]).count("written_off") == 2, timeout=30, what="again")

    done = reactor_process(settings, "recover", invoice["id"])

    assert done.returncode == 0, done.stderr
    after = site.state.get_invoice(invoice["id"])
    assert (after["status"], after["write_off_amount"], after["amount_paid"]) == ("paid", 0, 1200)
    assert len(site.state.calls(path_contains="/remove_credit_note", method="POST")) == 2


def test_an_overpayment_of_another_invoice_is_a_candidate_and_that_invoice_is_no_write_off_candidate(
    site, web, redis_conn, settings
):
    """A payment event that carries an invoice goes through a worker: the other invoice it paid is
    decided as any event's (nothing written off: it is paid), and what the payment left unused is
    money back for our write-off."""
    written = write_off(site, web, redis_conn, customer_id="cus_gb")
    other = site.state.add_invoice(status="paid", currency_code="GBP", total=1000, customer_id="cus_gb")
    customer, txn, _ = site.state.record_excess_payment("cus_gb", 1800, "GBP", event_type=None, webhooks=False)
    txn.update(amount_unused=800, linked_invoices=[{"invoice_id": other["id"], "applied_amount": 1000}])
    event = make_event(other, event_type="payment_succeeded", transaction=txn, customer=customer)

    assert post_event(web.webhook_url, event).status_code == 200

    wait_for(lambda: outcomes(redis_conn, other["id"]), timeout=30, what="the paid invoice decided")
    wait_for(lambda: records(redis_conn, written["id"], "recovery_candidate"), what="the candidate")
    [candidate] = open_candidates(redis_conn, Keys(settings.key_prefix))
    assert (candidate.invoice_id, candidate.amount, candidate.transaction) == (written["id"], 800, txn["id"])
    assert "written_off" not in outcomes(redis_conn, other["id"]) and len(site.state.write_off_calls()) == 1


def test_money_gone_meanwhile_stops_the_recovery_before_the_reversal(site, web, redis_conn, settings):
    """The payment was refunded or applied elsewhere after it was seen: the customer has nothing to
    apply, so the write-off stands (no reversal left unpaid), and the refusal is recorded."""
    invoice = write_off(site, web, redis_conn, customer_id="cus_gb")
    pay(site, "cus_gb", 1200)
    wait_for(lambda: records(redis_conn, invoice["id"], "recovery_candidate"), what="the candidate recorded")
    site.state.update_customer("cus_gb", excess_payments=0)

    refused = reactor_process(settings, "recover", invoice["id"])

    assert refused.returncode == 1 and "has no payment to apply" in refused.stderr, refused.stderr
    assert site.state.calls(path_contains="/remove_credit_note", method="POST") == [] and apply_calls(site) == []
    assert site.state.get_invoice(invoice["id"])["write_off_amount"] == 1200
    [failed] = records(redis_conn, invoice["id"], "recovery_failed")
    assert "nothing reversed" in failed.reason and "reversed=false" in failed.detail


def test_a_payment_recovered_for_one_invoice_is_not_applied_again_to_another(site, web, redis_conn, settings):
    """One payment, two written-off invoices of the customer: once it paid the first, the second's
    recovery from it is refused before anything is reversed, even with other excess on the customer."""
    first = write_off(site, web, redis_conn, customer_id="cus_gb")
    second = write_off(site, web, redis_conn, customer_id="cus_gb")
    txn = pay(site, "cus_gb", 1200)
    for invoice in (first, second):
        wait_for(lambda i=invoice: records(redis_conn, i["id"], "recovery_candidate"), what="the candidates")

    assert reactor_process(settings, "recover", first["id"]).returncode == 0
    assert [c for c in open_candidates(redis_conn, Keys(settings.key_prefix)) if c.transaction == txn["id"]] == []
    pay(site, "cus_gb", 100)  # unrelated money: the customer has excess payments again

    refused = reactor_process(settings, "recover", second["id"], "--transaction", txn["id"])

    assert refused.returncode == 1 and "nothing left to apply" in refused.stderr, refused.stderr
    assert site.state.calls(path_contains=f"/invoices/{second['id']}/remove_credit_note", method="POST") == []
    assert site.state.get_invoice(second["id"])["write_off_amount"] == 1200
    [failed] = records(redis_conn, second["id"], "recovery_failed")
    assert "reversed=false" in failed.detail
