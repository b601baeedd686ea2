"""An invoice's story read back, in order, for `reactor trace` and the dashboard's invoice page:

sources.py   the sources read from Redis: the trace list (reactor/jobs/trace/), the audit trail, dead
             letters, held write-offs; an event the webhook answered `ignored` or 400 has a receipt
             of its own (`read_receipt`)
timeline.py  the pure assembly of a timeline from its sources, and its text
"""

from .sources import TraceSources, find_invoice, read_receipt, read_sources
from .timeline import Step, build_timeline, render_text

__all__ = [
    "Step",
    "TraceSources",
    "build_timeline",
    "find_invoice",
    "read_receipt",
    "read_sources",
    "render_text",
]
