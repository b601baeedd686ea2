"""The trace of an invoice: everything that happened to it, in order, for `reactor trace` and the
dashboard's invoice page.

store.py     TraceLog, the capped Redis list `{p}:trace:<invoice>`; the invoice a job works on
calls.py     every Chargebee call recorded around the client (status, idempotency key, rate-limit wait)
decisions.py a decision as recorded: the rule, the facts it read, which conditions were true
timeline.py  the pure assembly of a timeline from its sources, and its text
sources.py   the sources read from Redis: the trace, the audit trail, dead letters, held write-offs

The webhook writes receipts into the same list (reactor/ingest/receipts.py; an event it answered
`ignored` or 400 has a receipt of its own, `read_receipt`), the audit stream the ids
of the invoice's records, and the order check its newest resource_version; the list's layout is
reactor/ingest/trace_list.py.
"""

from .calls import record_calls
from .decisions import record_decision
from .store import TraceLog, tracing_invoice

__all__ = [
    "TraceLog",
    "record_calls",
    "record_decision",
    "tracing_invoice",
]
