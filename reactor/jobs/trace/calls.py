"""Every Chargebee call of a job, recorded in its invoice's trace: method, path, status, idempotency
key, whether Chargebee replayed it, how long it waited for the shared rate limit, and for a write-off
the credit note Chargebee answered with.

The client (reactor/chargebee/client.py) stays free of Redis: a response hook on its session sees
each answer with the request that caused it, and a thin wrapper around its rate limit measures the
wait. A call that never got an answer (a timeout) leaves no call entry; its job's audit record says why.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from ...chargebee import ChargebeeClient, Throttled
from ...chargebee.client import IDEMPOTENCY_HEADER, REPLAYED_HEADER
from .store import TraceLog, current_invoice

log = logging.getLogger(__name__)

_waited: ContextVar[float] = ContextVar("reactor_trace_waited", default=0.0)


class TimedRateLimit:
    """The client's rate limit, with the time `acquire` took kept for the call that follows."""

    def __init__(self, inner: Any, trace: TraceLog, clock: Any = time.monotonic) -> None:
        self.inner = inner
        self.trace = trace
        self.clock = clock

    def acquire(self) -> None:
        started = self.clock()
        try:
            self.inner.acquire()
        except Throttled as exc:
            waited = round(self.clock() - started, 3)
            entry = {"kind": "throttled", "waited_s": waited, "retry_after": exc.retry_after, "reason": str(exc)}
            self.trace.add(current_invoice(), entry)
            raise
        finally:
            _waited.set(self.clock() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def record_calls(client: ChargebeeClient, trace: TraceLog) -> ChargebeeClient:
    """Record every answer `client` gets in the trace of the invoice it concerns; returns `client`."""
    if client.rate_limit is not None and not isinstance(client.rate_limit, TimedRateLimit):
        client.rate_limit = TimedRateLimit(client.rate_limit, trace)
    base_path = urlsplit(client.api_base).path.rstrip("/")

    def on_response(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            path = urlsplit(response.request.url or "").path
            path = path[len(base_path) :] if path.startswith(base_path) else path
            invoice_id = current_invoice() or invoice_in_path(path)
            if invoice_id:
                trace.add(invoice_id, call_entry(response, path, _waited.get()))
        except Exception:  # the trace never fails a call
            log.warning("could not record a Chargebee call in a trace", exc_info=True)
        finally:
            _waited.set(0.0)
        return response

    client.session.hooks["response"].append(on_response)
    return client


def invoice_in_path(path: str) -> str | None:
    """`/invoices/<id>` or `/invoices/<id>/<action>`: the invoice a call names."""
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "invoices" and parts[1]:
        return unquote(parts[1])
    return None


def call_entry(response: requests.Response, path: str, waited: float) -> dict[str, Any]:
    """One call as recorded; the body is read only for an error's code and a write-off's credit note."""
    request = response.request
    key = request.headers.get(IDEMPOTENCY_HEADER) if request is not None else None
    entry: dict[str, Any] = {
        "kind": "call",
        "method": request.method if request is not None else None,
        "path": path,
        "status": response.status_code,
        "idempotency_key": key,
        "replayed": response.headers.get(REPLAYED_HEADER, "").strip().lower() == "true" if key else None,
        "waited_s": round(waited, 3),
        "elapsed_ms": int(response.elapsed.total_seconds() * 1000),
    }
    if response.headers.get("Retry-After"):
        entry["retry_after"] = response.headers["Retry-After"]
    body = _body(response) if response.status_code >= 400 or path.endswith("/write_off") else {}
    if response.status_code >= 400:
        entry["error_code"] = body.get("api_error_code") or body.get("error_code")
    note = body.get("credit_note")
    if isinstance(note, dict):
        entry["credit_note"] = {
            "id": note.get("id"),
            "amount": note.get("total", note.get("amount_allocated")),
            "currency": note.get("currency_code"),
        }
    return entry


def _body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
