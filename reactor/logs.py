"""Logging: one JSON object per line (for log shippers), or plain text on a terminal.

Log calls pass `extra={"event_id": ..., "invoice_id": ...}`; those keys appear on the line, so
one grep for an invoice id finds everything the reactor did about it. Inside an RQ job, lines that
do not name them (RQ's own, the HTTP client's) get them from the job's meta, with the job id.
Every field is listed in docs/metrics.md."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

CONTEXT_KEYS = ("event_id", "invoice_id", "rule", "job_id", "rules_version")


def job_context() -> dict[str, str]:
    """event_id, invoice_id and job_id of the RQ job running in this process, if any."""
    try:
        from rq import get_current_job  # late: start-up time (gunicorn's master logs, and needs no RQ)

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


def setup_logging(level: str = "INFO", json_lines: bool | None = None) -> None:
    """One handler on the root logger. Callers pass what REACTOR_LOG_LEVEL and REACTOR_LOG_FORMAT
    say (reactor.config.log_settings); `json_lines` None means JSON unless stderr is a terminal,
    as under a process manager."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if json_lines else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
