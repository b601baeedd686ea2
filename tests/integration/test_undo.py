"""`reactor undo`: our write-off reversed in the sandbox by removing its credit note, recorded with who
and why, and held until a person releases it; a later webhook or sweep does not write it off again,
and `reactor held release` does. Real workers, real Redis, the sandbox over HTTP, the real CLI."""

from __future__ import annotations

import json

import pytest

from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.jobs.held import list_held
from reactor.keys import Keys
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, make_event, outcomes, post_event
from tests.integration.ops_helpers import reactor_process

pytestmark = pytest.mark.integration


def removals(sandbox) -> list[dict]:
    return sandbox.state.calls(path_contains="/remove_credit_note", method="POST")


def test_undo_reverses_our_write_off_holds_it_and_release_writes_it_off_again(
    sandbox, web, redis_conn, settings, our_write_off
):
    invoice_id = our_write_off["id"]

    done = reactor_process(settings, "undo", invoice_id, "--reason", "customer disputes the charge")

    assert done.returncode == 0, done.stderr
    assert "write-off undone" in done.stdout and "not_paid, 12.50 USD due" in done.stdout
    after = sandbox.state.get_invoice(invoice_id)
    assert (after["status"], after["amount_due"], after["write_off_amount"]) == ("not_paid", 1250, 0)
    [call] = removals(sandbox)
    assert call["headers"]["chargebee-event-webhook"] == "all-disabled"
    assert call["headers"]["chargebee-idempotency-key"].startswith("reactor-undo-")
    assert call["form"]["credit_note[id]"] == sandbox.state.write_off_notes()[0]["id"]
    [undone] = [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id)) if r.outcome == "undone"]
    assert "@" in undone.reason and "customer disputes the charge" in undone.reason
    assert (undone.amount_due, undone.currency, undone.rule) == (1250, "USD", "dunning-exhausted")
    [held] = list_held(redis_conn, settings.key_prefix)
    assert (held.invoice_id, held.reason) == (invoice_id, "undone")
    assert redis_conn.get(Keys(settings.key_prefix).written_off(invoice_id)) is None
    listed = reactor_process(settings, "held", "list")
    assert listed.returncode == 0 and "undone" in listed.stdout

    # A new webhook for the unpaid invoice: held, not written off.
    fresh = sandbox.state.get_invoice(invoice_id)
    assert post_event(web.webhook_url, make_event(fresh)).status_code == 200
    wait_for(lambda: "held" in outcomes(redis_conn, invoice_id), what="the webhook held back")
    # The sweep: every unpaid invoice decided as a webhook would be, by the worker; held again.
    swept = reactor_process(settings, "sweep")
    assert swept.returncode == 0, swept.stderr
    wait_for(lambda: outcomes(redis_conn, invoice_id).count("held") == 2, what="the swept invoice held back")
    assert len(sandbox.state.write_off_calls()) == 1
    assert sandbox.state.get_invoice(invoice_id)["status"] == "not_paid"

    twice = reactor_process(settings, "undo", invoice_id, "--reason", "again")
    assert twice.returncode == 1 and "already undone" in twice.stderr and "customer disputes" in twice.stderr
    assert len(removals(sandbox)) == 1

    released = reactor_process(settings, "held", "release", invoice_id)
    assert released.returncode == 0, released.stderr
    wait_for(lambda: outcomes(redis_conn, invoice_id).count("written_off") == 2, what="written off again")
    assert sandbox.state.get_invoice(invoice_id)["status"] == "paid"
    first, second = sandbox.state.write_off_calls()
    key = "chargebee-idempotency-key"
    assert first["headers"][key] != second["headers"][key], "a new request, not the replay of the undone one"
    assert not second["replayed"]
    assert list_held(redis_conn, settings.key_prefix) == []


def test_a_write_off_the_reactor_did_not_make_is_refused(sandbox, redis_conn, settings):
    invoice = exhausted_invoice(sandbox)
    sandbox.state.write_off(invoice["id"], webhooks=False)  # someone in Chargebee's UI

    refused = reactor_process(settings, "undo", invoice["id"], "--reason", "not ours")

    assert refused.returncode == 1
    assert f"invoice {invoice['id']} was not written off by the reactor" in refused.stderr
    assert removals(sandbox) == [] and sandbox.state.get_invoice(invoice["id"])["status"] == "paid"
    assert outcomes(redis_conn, invoice["id"]) == [] and list_held(redis_conn, settings.key_prefix) == []


def assert_nothing_changed(sandbox, redis_conn, settings, invoice_id: str) -> None:
    assert redis_conn.get(Keys(settings.key_prefix).written_off(invoice_id)) is not None, "the mark stays"
    assert list_held(redis_conn, settings.key_prefix) == []
    assert "undone" not in outcomes(redis_conn, invoice_id)
    assert sandbox.state.get_invoice(invoice_id)["status"] == "paid"


def test_a_reason_longer_than_the_dashboard_allows_is_refused_before_anything_is_sent(
    sandbox, redis_conn, settings, our_write_off
):
    refused = reactor_process(settings, "undo", our_write_off["id"], "--reason", "r" * 501)

    assert refused.returncode == 1, refused.stderr
    assert "at most 500 characters" in refused.stderr and "Traceback" not in refused.stderr
    assert removals(sandbox) == []
    assert_nothing_changed(sandbox, redis_conn, settings, our_write_off["id"])


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"status": 409, "api_error_code": "invalid_state_for_request"}, "Chargebee refused to remove credit note"),
        ({"status": 400, "api_error_code": "invalid_state_for_request"}, "Chargebee refused to remove credit note"),
        ({"status": 404}, "Chargebee refused to remove credit note"),
        ({"status": 429, "retry_after": 1}, "run the same command again"),
        ({"status": 503}, "run the same command again"),
    ],
    ids=["invalid_state_409", "invalid_state_400", "not_found", "rate_limited", "unavailable"],
)
def test_chargebee_refusals_change_nothing_and_say_so(sandbox, redis_conn, settings, our_write_off, fault, said):
    sandbox.state.add_fault("remove_credit_note", times=1, **fault)

    refused = reactor_process(settings, "undo", our_write_off["id"], "--reason", "dispute")

    assert refused.returncode == 1 and said in refused.stderr, refused.stderr
    assert "nothing changed" in refused.stderr
    assert_nothing_changed(sandbox, redis_conn, settings, our_write_off["id"])
    again = reactor_process(settings, "undo", our_write_off["id"], "--reason", "dispute")  # the fault is spent
    assert again.returncode == 0, again.stderr
    assert sandbox.state.get_invoice(our_write_off["id"])["status"] == "not_paid"


def test_a_credit_note_voided_in_chargebee_meanwhile_is_recorded_as_undone(
    sandbox, redis_conn, settings, our_write_off
):
    [note] = sandbox.state.write_off_notes()
    sandbox.state.void_credit_note(note["id"])

    done = reactor_process(settings, "undo", our_write_off["id"], "--reason", "dispute")

    assert done.returncode == 0, done.stderr
    assert "already reversed in Chargebee" in done.stdout
    assert removals(sandbox) == []
    [held] = list_held(redis_conn, settings.key_prefix)
    assert held.reason == "undone"
    undone = json.loads(redis_conn.get(Keys(settings.key_prefix).undone(our_write_off["id"])))
    assert (undone["credit_note"], undone["count"]) == (note["id"], 1)
