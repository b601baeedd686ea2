"""The trace reads an invoice's audit records by the ids its index keeps, not by reading the audit
stream: with 50,000 records of other invoices it makes the same Redis calls as with none, one
XRANGE per record of the invoice. Records from before the index are found by reading the stream
whole, and the output says so. Real Redis, the real CLI, the sandbox over HTTP."""

from __future__ import annotations

import json

import pytest

from reactor.console.trace import find_invoice, read_sources
from reactor.ingest.trace_list import TRACE_CAP, TRACE_TTL, read_trace_list
from reactor.jobs.audit import AuditFilter, AuditLog, AuditRecord, Outcome
from reactor.jobs.trace import TraceLog
from reactor.keys import Keys
from tests.helpers import wait_for
from tests.integration.helpers import exhausted_invoice, logged_in, make_event, outcomes, post_event
from tests.integration.ops_helpers import reactor, reactor_process

pytestmark = pytest.mark.integration

OTHERS = 50_000


def record(invoice_id: str, n: int, event_id: str | None = None) -> AuditRecord:
    return AuditRecord(event_id=event_id or f"ev_{invoice_id}_{n}", invoice_id=invoice_id, outcome=Outcome.SKIPPED)


def calls(redis_conn, *commands: str) -> dict[str, int]:
    stats = redis_conn.info("commandstats")
    return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in commands}


def traced(redis_conn, settings, invoice_id: str) -> tuple[list[str], bool, dict[str, int]]:
    """The invoice's audit record ids, whether the stream was read whole, and the stream reads made."""
    redis_conn.config_resetstat()
    sources = read_sources(redis_conn, settings, invoice_id)
    return [r.id for r in sources.records], sources.scanned, calls(redis_conn, "xrange", "xrevrange", "xread")


def test_the_trace_reads_the_records_of_its_invoice_only(redis_conn, settings):
    audit = AuditLog(redis_conn, Keys(settings.key_prefix).audit())
    mine = [audit.append(record("inv_mine", n)) for n in range(3)]
    alone = traced(redis_conn, settings, "inv_mine")
    for start in range(0, OTHERS, 1000):
        with redis_conn.pipeline(transaction=False) as pipe:
            for n in range(start, start + 1000):
                audit.queue(pipe, record(f"inv_{n % 5000}", n))
            pipe.execute()
        if start == OTHERS // 2:
            mine += [audit.append(record("inv_mine", n)) for n in range(3, 5)]
    assert audit.count() >= OTHERS

    ids, scanned, reads = traced(redis_conn, settings, "inv_mine")

    assert ids == mine and not scanned
    assert reads == {"xrange": 5, "xrevrange": 0, "xread": 0}, "one XRANGE per record of the invoice"
    assert alone[2] == {"xrange": 3, "xrevrange": 0, "xread": 0}
    # an invoice with no record (only receipts) is not looked for in the stream: every record is indexed
    TraceLog(redis_conn, Keys(settings.key_prefix)).add("inv_quiet", {"kind": "receipt", "event_id": "ev_q"})
    ids, scanned, reads = traced(redis_conn, settings, "inv_quiet")
    assert ids == [] and not scanned and reads == {"xrange": 1, "xrevrange": 0, "xread": 0}  # the oldest entry
    # an invoice or an event is found without reading the stream either
    redis_conn.config_resetstat()
    assert find_invoice(redis_conn, settings, "inv_mine") == "inv_mine"
    assert calls(redis_conn, "xrange", "xrevrange") == {"xrange": 0, "xrevrange": 0}


def test_records_from_before_the_index_are_found_by_reading_the_stream_and_it_says_so(redis_conn, settings, sandbox):
    keys = Keys(settings.key_prefix)
    TraceLog(redis_conn, keys).add("inv_old", {"kind": "receipt", "event_id": "ev_inv_old_0"})
    for n in range(3):  # as releases before the index wrote them: XADD alone
        redis_conn.xadd(keys.audit(), record("inv_old", n).to_fields())
        redis_conn.xadd(keys.audit(), record("inv_other", n).to_fields())

    ids, scanned, reads = traced(redis_conn, settings, "inv_old")

    assert len(ids) == 3 and scanned and reads["xrange"] >= 1
    text = reactor(settings, "trace", "inv_old")
    assert text.exit_code == 0 and "note: audit records found by reading the audit stream" in text.output
    assert json.loads(reactor(settings, "trace", "inv_old", "--format", "json").output)["audit_scanned"] is True

    # its next record is indexed; its history began before the index, so the records before it are
    # still read, from the stream up to the first indexed record only
    audit = AuditLog(redis_conn, keys.audit())
    audit.append(record("inv_old", 9))
    ids, scanned, _ = traced(redis_conn, settings, "inv_old")
    assert len(ids) == 4 and scanned

    # an invoice whose history began with the index is read by its ids alone, however old the stream
    audit.append(record("inv_new", 0))
    TraceLog(redis_conn, keys).add("inv_new", {"kind": "receipt", "event_id": "ev_inv_new_0"})
    ids, scanned, reads = traced(redis_conn, settings, "inv_new")
    assert len(ids) == 1 and not scanned and reads["xrange"] == 1
    assert "reading the audit stream" not in reactor(settings, "trace", "inv_new").output


def test_every_writer_indexes_its_record(sandbox, redis_conn, settings, our_write_off):
    invoice_id = our_write_off["id"]
    undone = reactor_process(settings, "undo", invoice_id, "--reason", "disputed")
    assert undone.returncode == 0, undone.stderr
    audit = AuditLog(redis_conn, Keys(settings.key_prefix).audit())

    records, scanned = audit.for_invoice(invoice_id)

    assert not scanned
    assert [r.outcome for r in records] == [r.outcome for r in audit.query(AuditFilter(invoice_id=invoice_id))]
    assert {"written_off", "undone"} <= {r.outcome for r in records}
    # the ids are in the invoice's trace list, kept with it
    trace = redis_conn.lrange(audit.trace_key(invoice_id), 0, -1)
    assert read_trace_list(trace).audit_ids == [r.id for r in records]
    assert 0 < redis_conn.ttl(audit.trace_key(invoice_id)) <= TRACE_TTL
    assert not redis_conn.exists(audit.index_key(invoice_id)), "no index key of its own"


def test_ids_an_earlier_release_kept_in_an_index_list_are_still_read_with_those_in_the_trace(redis_conn, settings):
    keys = Keys(settings.key_prefix)
    audit = AuditLog(redis_conn, keys.audit())
    audit.append(record("inv_first", 0))  # the stream was indexed from before this invoice's history
    TraceLog(redis_conn, keys).add("inv_listed", {"kind": "receipt", "event_id": "ev_inv_listed_0"})
    listed = []
    for n in range(2):  # as the release before kept them: the id in `{p}:audit:invoice:<invoice>`
        entry_id = redis_conn.xadd(keys.audit(), record("inv_listed", n).to_fields()).decode()
        redis_conn.rpush(audit.index_key("inv_listed"), entry_id)
        listed.append(entry_id)
    later = audit.append(record("inv_listed", 2))

    ids, scanned, reads = traced(redis_conn, settings, "inv_listed")

    assert ids == [*listed, later] and not scanned
    assert reads == {"xrange": 3, "xrevrange": 0, "xread": 0}


def test_the_invoice_page_says_when_it_read_the_stream(admin_web, redis_conn, settings):
    keys = Keys(settings.key_prefix)
    TraceLog(redis_conn, keys).add("inv_old", {"kind": "receipt", "event_id": "ev_inv_old_0"})
    redis_conn.xadd(keys.audit(), record("inv_old", 0).to_fields())  # as releases before the index wrote it
    AuditLog(redis_conn, keys.audit()).append(record("inv_new", 0))
    browser = logged_in(admin_web)

    old = browser.get(f"{admin_web.url}/admin/invoices/inv_old", timeout=10)
    new = browser.get(f"{admin_web.url}/admin/invoices/inv_new", timeout=10)

    assert old.status_code == new.status_code == 200
    assert 'id="trace-scanned"' in old.text and "reading the audit stream" in old.text
    assert 'id="trace-scanned"' not in new.text and "outcome skipped" in new.text


def test_redeliveries_past_the_trace_cap_do_not_push_the_write_off_record_out_of_the_trace(
    sandbox, web, redis_conn, settings, start_worker
):
    """Each redelivery adds a receipt to the invoice's trace list, which also holds the ids of its audit
    records: the trim drops the oldest receipts, decisions and calls before those ids, so `reactor trace`
    still shows the write-off after Chargebee (or anyone with the webhook's password) resent its event
    more times than the list has room."""
    invoice = exhausted_invoice(sandbox)
    event = make_event(invoice)
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), timeout=30, what="the write-off")
    for _ in range(TRACE_CAP + 10):
        assert post_event(web.webhook_url, event).json()["status"] == "duplicate"
    assert redis_conn.llen(Keys(settings.key_prefix).trace(invoice["id"])) == TRACE_CAP

    assert [r.outcome for r in read_sources(redis_conn, settings, invoice["id"]).records] == ["written_off"]
    result = reactor(settings, "trace", invoice["id"])
    assert result.exit_code == 0 and "outcome written_off, 12.50 USD" in result.output, result.output
