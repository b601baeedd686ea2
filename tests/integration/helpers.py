"""Building Chargebee-shaped events and posting them the way Chargebee does."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import requests

from tests.helpers import WEBHOOK_PASSWORD, WEBHOOK_USER

_ids = itertools.count(1)


def make_event(
    invoice: dict[str, Any], event_type: str = "payment_failed", event_id: str | None = None, **content: Any
) -> dict[str, Any]:
    return {
        "id": event_id or f"ev_test_{time.time_ns()}_{next(_ids)}",
        "occurred_at": int(time.time()),
        "source": "scheduled_job",
        "object": "event",
        "api_version": "v2",
        "event_type": event_type,
        "webhook_status": "not_configured",
        "content": {"invoice": invoice, **content},
    }


def post_event(
    url: str,
    event: dict[str, Any] | bytes,
    auth: tuple[str, str] | None = (WEBHOOK_USER, WEBHOOK_PASSWORD),
    **kwargs: Any,
) -> requests.Response:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return requests.post(url, data=body, auth=auth, headers=headers, timeout=10, **kwargs)


def exhausted_invoice(sandbox: Any, **fields: Any) -> dict[str, Any]:
    """An unpaid invoice whose dunning is exhausted, $12.50 due, stored in the sandbox."""
    values = {
        "status": "not_paid",
        "dunning_status": "exhausted",
        "currency_code": "USD",
        "total": 1250,
        "amount_due": 1250,
        "customer_id": "cus_small",
    }
    values.update(fields)
    return sandbox.state.add_invoice(**values)
