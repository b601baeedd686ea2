"""Logging: one JSON object per line (for log shippers), or plain text on a terminal.

Log calls pass `extra={"event_id": ..., "invoice_id": ...}`; those keys appear on the line, so
one grep for an invoice id finds everything the reactor did about it."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone

CONTEXT_KEYS = ("event_id", "invoice_id", "rule", "job_id", "rules_version")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_KEYS if getattr(record, k, None))
        return f"{line} [{context}]" if context else line


def setup_logging(level: str | None = None, json_lines: bool | None = None) -> None:
    """`REACTOR_LOG_FORMAT=json|text` and `REACTOR_LOG_LEVEL` override the defaults
    (json when stderr is not a terminal, as under a process manager)."""
    level = level or os.environ.get("REACTOR_LOG_LEVEL", "INFO")
    if json_lines is None:
        fmt = os.environ.get("REACTOR_LOG_FORMAT", "").lower()
        json_lines = fmt == "json" if fmt else not sys.stderr.isatty()
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if json_lines else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
