"""Building Chargebee-shaped events and posting them the way Chargebee does, reading what the
reactor decided about an invoice, and logging in to the dashboard the way on-call does."""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any

import redis
import requests

from reactor.jobs.audit import AuditFilter, AuditLog
from tests.helpers import WEBHOOK_PASSWORD, WEBHOOK_USER, WebServer

# One live rule with no amount of its own: every exhausted invoice is written off, up to max_write_off.
EXHAUSTED_RULES = """\
version: 1
mode: live
limits:
  max_write_off: {USD: 500}
rules:
  - name: dunning-exhausted
    when:
      - invoice.dunning_status: exhausted
    action: write_off
"""

ADMIN_USER = "oncall"
ADMIN_PASSWORD = "correct horse battery staple"

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


def outcomes(redis_conn: redis.Redis, invoice_id: str) -> list[str]:
    """The outcomes of the invoice's audit records, in the order the audit log gives them."""
    return [r.outcome for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=invoice_id))]


def token(html: str) -> str:
    """The CSRF token of the page's form."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def log_in(server: WebServer, password: str = ADMIN_PASSWORD) -> tuple[requests.Session, requests.Response]:
    """Fill in the dashboard's login form as ADMIN_USER; the session and the answer to the POST."""
    browser = requests.Session()
    form = browser.get(f"{server.url}/admin/login", timeout=5)
    answer = browser.post(
        f"{server.url}/admin/login",
        data={"user": ADMIN_USER, "password": password, "csrf": token(form.text)},
        timeout=5,
    )
    return browser, answer


def logged_in(server: WebServer) -> requests.Session:
    """A session logged in to the dashboard (the login must succeed)."""
    browser, answer = log_in(server)
    assert answer.status_code == 200, answer.text
    return browser
