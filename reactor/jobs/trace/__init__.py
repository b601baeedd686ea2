"""What a job writes into an invoice's trace list, `{p}:trace:<invoice>` (capped), for
`reactor trace` and the dashboard's invoice page (reactor/console/trace/ reads it back):

store.py     TraceLog, the list; the invoice a job works on
calls.py     every Chargebee call recorded around the client (status, idempotency key, rate-limit wait)
decisions.py a decision as recorded: the rule, the facts it read, which conditions were true

The webhook writes receipts into the same list (reactor/ingest/events.py), the audit stream the
ids of the invoice's records, and the order check its newest resource_version; the list's layout is
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
