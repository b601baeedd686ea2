"""Logging: one JSON object per line (for log shippers), or plain text on a terminal.

Every process logs through the one handler `setup_logging` puts on the root logger: the reactor's
own loggers, RQ's (its worker adds no handler of its own where one exists), gunicorn's (through
reactor.gunicorn_conf's logger class), Python's warnings and an uncaught exception's traceback.

Log calls pass `extra={"event_id": ..., "invoice_id": ...}`; those keys appear on the line, so
one grep for an invoice id finds everything the reactor did about it. Inside an RQ job, lines that
do not name them (RQ's own, the HTTP client's) get them from the job's meta, with the job id.
Every field is listed in docs/metrics.md.

No line carries a secret: both formats pass the message, the context and a traceback through
reactor.redaction.redact, which knows every secret the process was configured with."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from types import TracebackType

from .redaction import redact

CONTEXT_KEYS = ("event_id", "invoice_id", "rule", "job_id", "rules_version")
_JSON = json.JSONEncoder(default=str)  # json.dumps(..., default=str) without a new encoder per line


def job_context() -> dict[str, str]:
    """event_id, invoice_id and job_id of the RQ job running in this process, if any."""
    # Only a process that has imported RQ can be running a job. Importing it here would load RQ,
    # redis-py and ssl into gunicorn's master at its first line, before its gevent workers patch them.
    rq_job = sys.modules.get("rq.job")
    if rq_job is None:
        return {}
    try:
        job = rq_job.get_current_job()
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
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(context_of(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        # Redacted before encoding: JSON escapes (\u00e9, \") would hide a secret from the search.
        return _JSON.encode({k: redact(v) if isinstance(v, str) else v for k, v in data.items()})


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{k}={v}" for k, v in context_of(record).items())
        return redact(f"{line} [{context}]" if context else line)


def wants_json(json_lines: bool | None) -> bool:
    """What REACTOR_LOG_FORMAT asks for (reactor.config.log_settings), None deciding by the terminal:
    JSON unless stderr is one, as under a process manager."""
    return not sys.stderr.isatty() if json_lines is None else json_lines


class Handler(logging.StreamHandler):
    """The standard stream handler, except that it does not swallow what a signal handler raised
    while a line was being written. RQ stops an idle worker on SIGTERM, and a job at its timeout on
    SIGALRM, by raising from the signal handler (StopRequested, JobTimeoutException); one that lands
    inside a log call would reach `logging.Handler.handleError`, which prints it and carries on, so
    the worker went on running after its stop and the job past its timeout. Errors of the line
    itself (a bad format argument, a closed stream) are still reported and passed over."""

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if exc is not None and type(exc).__module__.split(".")[0] == "rq":
            raise exc
        super().handleError(record)


def setup_logging(level: str = "INFO", json_lines: bool | None = None) -> None:
    """One handler on the root logger, on stderr. Callers pass what REACTOR_LOG_LEVEL and
    REACTOR_LOG_FORMAT say (reactor.config.log_settings); `json_lines` as in `wants_json`. Python's
    warnings and an uncaught exception are logged through it too, rather than printed."""
    handler = Handler()
    handler.setFormatter(
        JsonFormatter() if wants_json(json_lines) else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    sys.excepthook = log_uncaught


def log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """sys.excepthook: the traceback of an exception nothing caught, as one log line."""
    if issubclass(exc_type, KeyboardInterrupt):  # Ctrl-C: Python's own short report
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("reactor").critical("uncaught exception: %s", exc_type.__name__, exc_info=(exc_type, exc, tb))
