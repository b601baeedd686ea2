"""What `reactor undo` records and prints: the `undone` audit record names the credit note removed,
and a refusal shows an id with control characters escaped. Real Redis, the sandbox over HTTP."""

from __future__ import annotations

import json

import pytest

from reactor.console.undo import undo_write_off
from reactor.jobs import build_context
from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.keys import Keys
from tests.integration.helpers import exhausted_invoice
from tests.integration.ops_helpers import reactor

pytestmark = pytest.mark.integration


def test_the_undone_record_names_the_credit_note_removed(sandbox, redis_conn, settings):
    invoice = exhausted_invoice(sandbox)
    _, note, _ = sandbox.state.write_off(invoice["id"], webhooks=False)
    mark = {"at": "2026-11-01T00:00:00+00:00", "rule": "dunning-exhausted", "event_id": "ev_1"}
    mark["credit_note"] = note["id"]
    redis_conn.set(Keys(settings.key_prefix).written_off(invoice["id"]), json.dumps(mark))

    result = undo_write_off(build_context(settings, redis_conn), invoice["id"], "ops@host", "disputed")

    [undone] = [r for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice["id"])) if r.outcome == "undone"]
    assert undone.id == result.record_id
    assert undone.credit_note == note["id"]


def test_a_refusal_shows_control_characters_in_the_id_escaped(sandbox, redis_conn, settings):
    refused = reactor(settings, "undo", "inv_\x1b[2J\x1b]0;owned\x07", "--reason", "not ours")

    assert refused.exit_code == 2  # not an invoice id: refused before Redis or Chargebee is asked
    assert "\x1b" not in refused.output and "\x07" not in refused.output
    assert "'inv_\\x1b[2J\\x1b]0;owned\\x07' is not a Chargebee invoice id" in refused.output
