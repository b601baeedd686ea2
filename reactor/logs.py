"""Logging: one JSON object per line (for log shippers), or plain text on a terminal.

Log calls pass `extra={"event_id": ..., "invoice_id": ...}`; those keys appear on the line, so
one grep for an invoice id finds everything the reactor did about it. Inside an RQ job, lines that
do not name them (RQ's own, the HTTP client's) get them from the job's meta, with the job id.
Every field is listed in docs/metrics.md."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone

CONTEXT_KEYS = ("event_id", "invoice_id", "rule", "job_id", "rules_version")


def job_context() -> dict[str, str]:
    """event_id, invoice_id and job_id of the RQ job running in this process, if any."""
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:  # pragma: no cover - logging must never fail
        return {}
    if job is None:
        return {}
    meta = job.meta or {}
    context = {"job_id": job.id}
    for key in ("event_id", "invoice_id"):
        if isinstance(meta.get(key), str):
            context[key] = meta[key]
    return context


def context_of(record: logging.LogRecord) -> dict[str, object]:
    """The record's own context keys, completed from the current job."""
    data: dict[str, object] = {}
    for key in CONTEXT_KEYS:
        value = getattr(record, key, None)
        if value is not None:
            data[key] = value
    for key, value in job_context().items():
        data.setdefault(key, value)
    return data


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(context_of(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{k}={v}" for k, v in context_of(record).items())
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
