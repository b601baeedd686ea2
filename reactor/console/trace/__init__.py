"""An invoice's story read back for `reactor trace` and the dashboard's invoice page."""

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
