"""The decision trail: one record for every decision and every outcome, kept in a Redis stream.

outcomes.py  Outcome, the word each outcome is stored and shown as, with its meaning (OUTCOMES)
records.py   AuditRecord, one record, and the fields the stream holds for it
stream.py    AuditLog, the Redis stream: append, query (AuditFilter)
export.py    csv and jsonl exports; text safe for a terminal (visible) or a spreadsheet
archive.py   AuditArchive: the records written to segments outside Redis before the stream is trimmed
manifest.py  the archive's pure parts: segment names and cuts, manifest entries, their hash chain
full_trail.py  AuditTrail: the archive and the stream read as one trail
"""

from .export import export, export_lines, spreadsheet_cell, visible
from .outcomes import OUTCOMES, Outcome
from .records import FIELDS, AuditRecord, amount_text
from .stream import AuditFilter, AuditLog

__all__ = [
    "FIELDS",
    "OUTCOMES",
    "AuditFilter",
    "AuditLog",
    "AuditRecord",
    "Outcome",
    "amount_text",
    "export",
    "export_lines",
    "spreadsheet_cell",
    "visible",
]
