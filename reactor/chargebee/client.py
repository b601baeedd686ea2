"""A small Chargebee API v2 client: retrieve and list invoices, write one off or apply credits to it,
retrieve an event, a customer or a subscription. What it raises is drawn in `errors.py`.

A deleted invoice is either a 404 or a 200 with `deleted: true` (which one is UNCONFIRMED): a caller
treats both as "gone" (reactor/rules/safety.py `gone_reason` reads the second).

Chargebee's own SDK is not used: its 429 handling retries without limit and ignores Retry-After
(docs/design.md, "Choices, and why"), and we need the raw response headers (idempotency replay).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from .. import ids
from .errors import InvalidIdError, RateLimitedError, RetryableError, error_from_response

if TYPE_CHECKING:
    # Only for the annotation: the rate limit loads the `limits` package, which a client without
    # one (the CLI's one-off calls) need not pay for at start-up.
    from .ratelimit import ChargebeeRateLimit

SKIP_WEBHOOKS_HEADER = {"chargebee-event-webhook": "all-disabled"}
IDEMPOTENCY_HEADER = "chargebee-idempotency-key"
REPLAYED_HEADER = "chargebee-idempotency-replayed"
MAX_COMMENT = 300


@dataclass(frozen=True)
class WriteOffResult:
    invoice: dict[str, Any]
    credit_note: dict[str, Any] | None
    replayed: bool
    status: int


class ChargebeeClient:
    """One per process; a pooled `requests.Session` underneath. No automatic retries here: the job
    layer retries with backoff so that a retry is visible, counted and rate limited.

    With a `rate_limit`, every request first takes a slot of the budget all workers share (raising
    `Throttled` when none frees up in time), and a 429 pauses every worker."""

    def __init__(
        self,
        api_base: str,
        api_key: str,
        timeout: float = 20.0,
        session: requests.Session | None = None,
        rate_limit: ChargebeeRateLimit | None = None,
    ):
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.rate_limit = rate_limit
        self.session = session or requests.Session()
        self.session.auth = (api_key, "")
        self.session.headers["User-Agent"] = "chargebee-reactor"
        self.session.headers["Accept"] = "application/json"
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.api_base}{path}"
        if self.rate_limit is not None:
            self.rate_limit.acquire()
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise RetryableError(f"Chargebee did not answer {method} {path} within {self.timeout}s") from exc
        except requests.ConnectionError as exc:
            raise RetryableError(f"cannot reach Chargebee at {self.api_base}: {exc.__class__.__name__}") from exc
        if response.status_code >= 400:
            error = error_from_response(response)
            # lock_timeout is about one resource (concurrent requests on it), not the site budget:
            # retry that call, do not pause every worker (https://apidocs.chargebee.com/docs/api/error-handling).
            if (
                isinstance(error, RateLimitedError)
                and error.api_error_code != "lock_timeout"
                and self.rate_limit is not None
            ):
                self.rate_limit.pause(error.retry_after)
            raise error
        return response

    @staticmethod
    def _json(response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except (ValueError, json.JSONDecodeError) as exc:
            raise RetryableError(f"Chargebee answered HTTP {response.status_code} with a non-JSON body") from exc
        if not isinstance(body, dict):
            raise RetryableError("Chargebee answered with an unexpected JSON shape")
        return body

    def _retrieve(self, collection: str, resource: str, kind: ids.IdKind, resource_id: str) -> dict[str, Any]:
        body = self._json(self._request("GET", f"/{collection}/{_segment(kind, resource_id)}"))
        found = body.get(resource)
        if not isinstance(found, dict):
            raise RetryableError(f"Chargebee's {resource} response has no {resource!r} object")
        return found

    def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        """The invoice as Chargebee has it now. A deleted one is either NotFoundError or returned
        with `deleted: true`; which one Chargebee does is UNCONFIRMED."""
        return self._retrieve("invoices", "invoice", ids.INVOICE, invoice_id)

    def retrieve_customer(self, customer_id: str) -> dict[str, Any]:
        """`GET /customers/{id}`: the customer, custom fields (`cf_*`) at the top level."""
        return self._retrieve("customers", "customer", ids.CUSTOMER, customer_id)

    def retrieve_transaction(self, transaction_id: str) -> dict[str, Any]:
        """`GET /transactions/{id}`: the payment, with `amount_unused` (what nothing has applied yet)."""
        return self._retrieve("transactions", "transaction", ids.TRANSACTION, transaction_id)

    def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        """`GET /subscriptions/{id}`: the subscription, custom fields (`cf_*`) at the top level."""
        return self._retrieve("subscriptions", "subscription", ids.SUBSCRIPTION, subscription_id)

    def list_invoices(self, params: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        """One page and the `next_offset` to send back verbatim (opaque; None on the last page).

        An answer whose shape would make a sweep stop early or skip silently (no `list` array, a
        `next_offset` that is not a string) raises RetryableError instead."""
        body = self._json(self._request("GET", "/invoices", params=params))
        entries = body.get("list", [])
        if not isinstance(entries, list):
            raise RetryableError("Chargebee's list response has no 'list' array")
        items = [
            entry["invoice"] for entry in entries if isinstance(entry, dict) and isinstance(entry.get("invoice"), dict)
        ]
        next_offset = body.get("next_offset")
        if next_offset is not None and not isinstance(next_offset, str):
            raise RetryableError("Chargebee's list response has a next_offset that is not a string")
        return items, next_offset or None

    def retrieve_event(self, event_id: str) -> dict[str, Any]:
        return self._retrieve("events", "event", ids.EVENT, event_id)

    def write_off(self, invoice_id: str, comment: str | None, idempotency_key: str) -> WriteOffResult:
        """POST write_off without follow-up webhooks, idempotent under `idempotency_key`."""
        headers = {**SKIP_WEBHOOKS_HEADER, IDEMPOTENCY_HEADER: idempotency_key}
        data = {"comment": comment[:MAX_COMMENT]} if comment else {}
        path = f"/invoices/{_segment(ids.INVOICE, invoice_id)}/write_off"
        response = self._request("POST", path, data=data, headers=headers)
        body = self._json(response)
        invoice = body.get("invoice")
        if not isinstance(invoice, dict):
            raise RetryableError("Chargebee's write_off response has no 'invoice' object")
        credit_note = body.get("credit_note") if isinstance(body.get("credit_note"), dict) else None
        replayed = response.headers.get(REPLAYED_HEADER, "").strip().lower() == "true"
        return WriteOffResult(invoice, credit_note, replayed, response.status_code)

    def apply_credits(
        self, invoice_id: str, comment: str | None, idempotency_key: str, credit_note_ids: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """POST apply_credits (the customer's refundable credits, or only `credit_note_ids`) without
        follow-up webhooks, idempotent under `idempotency_key`; the invoice as it is afterwards
        (https://apidocs.chargebee.com/docs/api/invoices/apply-credits-for-an-invoice)."""
        headers = {**SKIP_WEBHOOKS_HEADER, IDEMPOTENCY_HEADER: idempotency_key}
        data = {f"credit_notes[id][{i}]": cn for i, cn in enumerate(credit_note_ids)}
        if comment:
            data["comment"] = comment[:MAX_COMMENT]
        path = f"/invoices/{_segment(ids.INVOICE, invoice_id)}/apply_credits"
        response = self._request("POST", path, data=data, headers=headers)
        invoice = self._json(response).get("invoice")
        if not isinstance(invoice, dict):
            raise RetryableError("Chargebee's apply_credits response has no 'invoice' object")
        return invoice

    def remove_credit_note(self, invoice_id: str, credit_note_id: str, idempotency_key: str) -> dict[str, Any]:
        """POST remove_credit_note (how a write-off is reversed: "by removing the linked credit note",
        https://apidocs.chargebee.com/docs/api/invoices/write-off-an-invoice) without follow-up
        webhooks, idempotent under `idempotency_key`; the invoice as it is afterwards
        (https://apidocs.chargebee.com/docs/api/invoices/remove-credit-note-from-an-invoice)."""
        headers = {**SKIP_WEBHOOKS_HEADER, IDEMPOTENCY_HEADER: idempotency_key}
        data = {"credit_note[id]": credit_note_id}
        path = f"/invoices/{_segment(ids.INVOICE, invoice_id)}/remove_credit_note"
        invoice = self._json(self._request("POST", path, data=data, headers=headers)).get("invoice")
        if not isinstance(invoice, dict):
            raise RetryableError("Chargebee's remove_credit_note response has no 'invoice' object")
        return invoice

    def apply_payments(
        self,
        invoice_id: str,
        transactions: tuple[tuple[str, int | None], ...],
        comment: str | None,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """POST apply_payments: payments that exist (`transactions`: id and an optional amount, minor
        units), or without any the customer's excess payments, applied to an invoice in `payment_due`,
        `posted` or `not_paid`; without follow-up webhooks, idempotent under `idempotency_key`; the
        invoice as it is afterwards (https://apidocs.chargebee.com/docs/api/invoices/apply-payments-for-an-invoice;
        parameters as chargebee-python's `Invoice.apply_payments` sends them)."""
        headers = {**SKIP_WEBHOOKS_HEADER, IDEMPOTENCY_HEADER: idempotency_key}
        data: dict[str, Any] = {}
        for i, (txn_id, amount) in enumerate(transactions):
            data[f"transactions[id][{i}]"] = txn_id
            if amount is not None:
                data[f"transactions[amount][{i}]"] = amount
        if comment:
            data["comment"] = comment[:MAX_COMMENT]
        path = f"/invoices/{_segment(ids.INVOICE, invoice_id)}/apply_payments"
        invoice = self._json(self._request("POST", path, data=data, headers=headers)).get("invoice")
        if not isinstance(invoice, dict):
            raise RetryableError("Chargebee's apply_payments response has no 'invoice' object")
        return invoice


def _segment(kind: ids.IdKind, value: str) -> str:
    """`value` as one segment of the path, or InvalidIdError before anything is sent: an empty id, `..`
    or one with a '/' would name another path (`/invoices/..` is `/api/v2/`)."""
    try:
        return kind.path_segment(value)
    except ids.IdError as exc:
        raise InvalidIdError(str(exc)) from None
