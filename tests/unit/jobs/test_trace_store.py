"""Recording a trace never fails a job (reactor/jobs/trace/store.py, calls.py): fail closed applies
to money, not to the trace."""

from __future__ import annotations

import logging

import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from reactor.jobs.trace.calls import call_entry, invoice_in_path
from reactor.jobs.trace.store import TraceLog, current_invoice, tracing_invoice
from reactor.keys import Keys


def test_a_trace_write_to_an_unreachable_redis_is_logged_not_raised(caplog):
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    with caplog.at_level(logging.WARNING):
        TraceLog(dead, Keys()).add("inv_1", {"kind": "call"})
    assert "could not record a call in the trace of invoice inv_1" in caplog.text


def test_the_invoice_of_a_call_is_the_one_being_worked_on_else_the_one_its_path_names():
    assert invoice_in_path("/invoices/inv%201/write_off") == "inv 1"
    assert invoice_in_path("/invoices") is None and invoice_in_path("/customers/cus_1") is None
    with tracing_invoice("inv_9"):
        assert current_invoice() == "inv_9"
    assert current_invoice() is None


def test_a_call_entry_reads_the_key_the_replay_header_and_a_write_offs_credit_note():
    response = requests.Response()
    response.status_code = 200
    response._content = b'{"invoice": {}, "credit_note": {"id": "CN-1", "total": 1250, "currency_code": "USD"}}'
    response.headers["chargebee-idempotency-replayed"] = "true"
    response.request = requests.Request(
        "POST", "http://cb/api/v2/invoices/inv_1/write_off", headers={"chargebee-idempotency-key": "k1"}
    ).prepare()
    entry = call_entry(response, "/invoices/inv_1/write_off", 0.5)
    assert (entry["method"], entry["status"], entry["idempotency_key"], entry["replayed"]) == ("POST", 200, "k1", True)
    assert entry["credit_note"] == {"id": "CN-1", "amount": 1250, "currency": "USD"} and entry["waited_s"] == 0.5
