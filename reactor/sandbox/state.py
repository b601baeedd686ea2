"""The sandbox's in-memory Chargebee site: invoices, customers, subscriptions, events, calls, faults
and idempotency records.

One re-entrant lock (a Condition, so tests can wait for deliveries) guards everything; the HTTP layer
holds it across "look up idempotency key -> write off -> store response" so two concurrent requests
with the same key can never apply a write-off twice. Nothing slow (latency faults, webhook POSTs)
ever runs while the lock is held.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import requests

from . import credits as cn_logic
from . import customers as cus_logic
from . import invoices as inv_logic
from . import payments as pay_logic
from . import reversals as rev_logic
from .errors import ApiError, not_found
from .listing import select_invoices

DEMO_API_KEY = "test_sandbox_reactor_demo_key"
IDEMPOTENCY_WINDOW_S = 30 * 60
FAULT_KINDS = (
    "write_off",
    "retrieve",
    "list",
    "events",
    "customer",
    "subscription",
    "apply_credits",
    "remove_credit_note",
    "apply_payments",
    "record_excess_payment",
    "any",
)
SKIPPED = "all-disabled"
# What Chargebee answers for a deleted invoice is not documented
# (https://apidocs.chargebee.com/docs/api/invoices/delete-an-invoice); these are the plausible
# shapes, switchable per test. Defaults: 404 for both, because Chargebee's "Delete an invoice" doc
# says a deleted invoice "can only be retrieved using the List invoices API by using the parameter
# include_deleted=true", i.e. looking it up by id finds nothing.
DELETED_RETRIEVE_STATUSES = (404, 200)  # 200: the invoice with deleted: true
DELETED_WRITE_OFF_STATUSES = (404, 400, 409)  # 400/409: invalid_state_for_request
_SETTING_CHOICES: dict[str, tuple[int, ...]] = {
    "invalid_state_status": (400, 409),
    "deleted_invoice_retrieve_status": DELETED_RETRIEVE_STATUSES,
    "deleted_invoice_write_off_status": DELETED_WRITE_OFF_STATUSES,
}


@dataclass(frozen=True)
class SandboxSettings:
    """The settings a sandbox starts with and returns to on every reset (`configure` changes them
    until then; the HTTP API's /settings reads and sets the same four)."""

    invalid_state_status: int = 409
    calls_per_minute: int | None = None
    deleted_invoice_retrieve_status: int = 404
    deleted_invoice_write_off_status: int = 404


class SandboxState:
    """Thread-safe store behind the sandbox app; also the Python control API used by tests."""

    def __init__(
        self,
        api_key: str = DEMO_API_KEY,
        site: str = "sandbox",
        *,
        defaults: SandboxSettings = SandboxSettings(),
        idempotency_window_s: float = IDEMPOTENCY_WINDOW_S,
    ) -> None:
        self.api_key = api_key
        self.site = site
        self._defaults = asdict(defaults)
        self._check_settings(self._defaults)
        self.idempotency_window_s = idempotency_window_s
        self.lock = threading.Condition(threading.RLock())
        self._ids = itertools.count(1)
        self._last_version = 0
        self._webhook: dict[str, str] | None = None
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------------

    def reset(self, *, keep_webhook_target: bool = False) -> None:
        """Start from a clean slate: data, faults, idempotency records, and the constructor's settings.

        The webhook target is dropped too unless kept, so a test never posts follow-ups to a receiver
        left over from the previous test.
        """
        with self.lock:
            self.invalid_state_status: int = self._defaults["invalid_state_status"]
            self.calls_per_minute: int | None = self._defaults["calls_per_minute"]
            self.deleted_invoice_retrieve_status: int = self._defaults["deleted_invoice_retrieve_status"]
            self.deleted_invoice_write_off_status: int = self._defaults["deleted_invoice_write_off_status"]
            if not keep_webhook_target:
                self._webhook = None
            # invoice id -> (creation position: a strictly increasing ms timestamp, invoice)
            self._invoices: dict[str, tuple[int, dict[str, Any]]] = {}
            self._customers: dict[str, dict[str, Any]] = {}
            self._subscriptions: dict[str, dict[str, Any]] = {}
            self._calls: list[dict[str, Any]] = []
            self._faults: list[dict[str, Any]] = []
            self._events: dict[str, dict[str, Any]] = {}
            self._credit_notes: dict[str, dict[str, Any]] = {}
            self._write_off_notes: dict[str, dict[str, Any]] = {}  # the adjustment notes write_off made
            self._transactions: dict[str, dict[str, Any]] = {}  # payments (reactor/sandbox/payments.py)
            self._deliveries: list[dict[str, Any]] = []
            self._idempotency: dict[str, dict[str, Any]] = {}
            self._recent: deque[float] = deque()
            # Deliveries still in flight from before a reset must not leak into the next test.
            self._generation = getattr(self, "_generation", 0) + 1
            # Requests held by a previous test go on; new ones are not held.
            if getattr(self, "_release", None) is not None:
                self._release.set()
            self._hold_match: str | None = None
            self._held = 0
            self._release = threading.Event()
            self.lock.notify_all()

    # -- settings --------------------------------------------------------------------------------

    @classmethod
    def _check_settings(cls, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name in _SETTING_CHOICES:
                if value not in _SETTING_CHOICES[name] or isinstance(value, bool):
                    raise ValueError(f"{name} must be one of {_SETTING_CHOICES[name]}, got {value!r}")
            elif name == "calls_per_minute":
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                    raise ValueError(f"calls_per_minute must be a non-negative integer or null, got {value!r}")
            else:
                raise ValueError(f"unknown setting {name!r}")

    def settings(self) -> dict[str, Any]:
        with self.lock:
            return {
                "invalid_state_status": self.invalid_state_status,
                "calls_per_minute": self.calls_per_minute,
                "deleted_invoice_retrieve_status": self.deleted_invoice_retrieve_status,
                "deleted_invoice_write_off_status": self.deleted_invoice_write_off_status,
            }

    def configure(self, **values: Any) -> dict[str, Any]:
        """Change settings (until the next reset); raises ValueError on an unknown name or value."""
        self._check_settings(values)
        with self.lock:
            for name, value in values.items():
                setattr(self, name, value)
            return self.settings()

    def next_version(self) -> int:
        """A millisecond timestamp strictly greater than any handed out before (resource_version)."""
        with self.lock:
            self._last_version = max(int(time.time() * 1000), self._last_version + 1)
            return self._last_version

    # -- invoices --------------------------------------------------------------------------------

    def add_invoice(self, **fields: Any) -> dict[str, Any]:
        """Store an invoice, filling realistic defaults; raises ValueError on a duplicate id."""
        with self.lock:
            seq = next(self._ids)
            version = self.next_version()
            invoice = inv_logic.build_invoice(fields, seq=seq, resource_version=version, now=int(time.time()))
            if invoice["id"] in self._invoices:
                raise ValueError(f"invoice {invoice['id']!r} already exists")
            self._invoices[invoice["id"]] = (version, invoice)
            return copy.deepcopy(invoice)

    def add_invoices(self, invoices: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.add_invoice(**fields) for fields in invoices]

    def update_invoice(self, invoice_id: str, **fields: Any) -> dict[str, Any]:
        """Change an invoice behind the reactor's back (e.g. paid meanwhile); bumps resource_version."""
        with self.lock:
            invoice = self._invoice(invoice_id)
            inv_logic.apply_update(invoice, fields, resource_version=self.next_version(), now=int(time.time()))
            return copy.deepcopy(invoice)

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        """The stored invoice, deleted or not (the control view); raises ApiError 404 when unknown."""
        with self.lock:
            return copy.deepcopy(self._invoice(invoice_id))

    def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        """What `GET /invoices/{id}` answers: 404 when unknown, and for a deleted invoice whatever
        `deleted_invoice_retrieve_status` says (404, or 200 with `deleted: true`)."""
        with self.lock:
            invoice = self._invoice(invoice_id)
            if invoice.get("deleted") and self.deleted_invoice_retrieve_status == 404:
                raise not_found("invoice", invoice_id)
            return copy.deepcopy(invoice)

    def delete_invoice(self, invoice_id: str, *, webhooks: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Delete an invoice as Chargebee does (an admin, or the end-of-dunning settings): it stays
        stored with `deleted: true`, is hidden from list invoices unless include_deleted=true, and an
        `invoice_deleted` event is recorded. Returns (invoice, events to post); raises ValueError if
        it is already deleted."""
        with self.lock:
            invoice = self._invoice(invoice_id)
            if invoice.get("deleted"):
                raise ValueError(f"invoice {invoice_id!r} is already deleted")
            now = int(time.time())
            inv_logic.apply_update(invoice, {"deleted": True}, resource_version=self.next_version(), now=now)
            event = self._record_event("invoice_deleted", {"invoice": copy.deepcopy(invoice)}, webhooks)
            to_post = [copy.deepcopy(event)] if event["webhook_status"] == "scheduled" else []
            return copy.deepcopy(invoice), to_post

    def invoices(self) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(inv) for _, inv in self._invoices.values()]

    def list_invoices(self, params: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
        with self.lock:
            page, next_offset = select_invoices(self._invoices.values(), params)
            return copy.deepcopy(page), next_offset

    def _invoice(self, invoice_id: str) -> dict[str, Any]:
        try:
            return self._invoices[invoice_id][1]
        except KeyError:
            raise not_found("invoice", invoice_id) from None

    # -- customers and subscriptions -----------------------------------------------------------------

    def add_customer(self, **fields: Any) -> dict[str, Any]:
        """Store a customer (custom fields such as cf_segment as given); ValueError on a duplicate id."""
        return self._add(self._customers, "customer", cus_logic.build_customer, fields)

    def add_customers(self, customers: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.add_customer(**fields) for fields in customers]

    def update_customer(self, customer_id: str, **fields: Any) -> dict[str, Any]:
        return self._update(self._customers, "customer", customer_id, fields)

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        """The customer as `GET /customers/{id}` returns it; ApiError 404 when unknown."""
        with self.lock:
            return copy.deepcopy(self._get(self._customers, "customer", customer_id))

    def get_transaction(self, transaction_id: str) -> dict[str, Any]:
        """The transaction as `GET /transactions/{id}` returns it; ApiError 404 when unknown."""
        with self.lock:
            return copy.deepcopy(self._get(self._transactions, "transaction", transaction_id))

    def customers(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self._customers.values()))

    def add_subscription(self, **fields: Any) -> dict[str, Any]:
        """Store a subscription (customer_id required); ValueError on a duplicate id."""
        return self._add(self._subscriptions, "subscription", cus_logic.build_subscription, fields)

    def add_subscriptions(self, subscriptions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.add_subscription(**fields) for fields in subscriptions]

    def update_subscription(self, subscription_id: str, **fields: Any) -> dict[str, Any]:
        return self._update(self._subscriptions, "subscription", subscription_id, fields)

    def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription as `GET /subscriptions/{id}` returns it; ApiError 404 when unknown."""
        with self.lock:
            return copy.deepcopy(self._get(self._subscriptions, "subscription", subscription_id))

    def subscriptions(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self._subscriptions.values()))

    def _add(self, store: dict[str, dict[str, Any]], kind: str, build: Any, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            resource = build(fields, seq=next(self._ids), resource_version=self.next_version(), now=int(time.time()))
            if resource["id"] in store:
                raise ValueError(f"{kind} {resource['id']!r} already exists")
            store[resource["id"]] = resource
            return copy.deepcopy(resource)

    def _update(
        self, store: dict[str, dict[str, Any]], kind: str, resource_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        with self.lock:
            resource = self._get(store, kind, resource_id)
            cus_logic.apply_update(resource, fields, resource_version=self.next_version(), now=int(time.time()))
            return copy.deepcopy(resource)

    @staticmethod
    def _get(store: dict[str, dict[str, Any]], resource: str, resource_id: str) -> dict[str, Any]:
        try:
            return store[resource_id]
        except KeyError:
            raise not_found(resource, resource_id) from None

    # -- write-off ---------------------------------------------------------------------------------

    def write_off(
        self, invoice_id: str, comment: str | None = None, *, webhooks: bool = True
    ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        """Apply a write-off and record its events; returns (invoice, credit_note, events to post).

        Raises ApiError (404, 400 for a long comment, invalid_state_for_request; for a deleted invoice
        whatever `deleted_invoice_write_off_status` says) without changing anything. Posting the
        returned events is the caller's job, outside the lock.
        """
        if comment is not None and len(comment) > 300:
            raise ApiError(400, "comment : cannot be more than 300 characters.", param="comment")
        with self.lock:
            invoice = self._invoice(invoice_id)
            if invoice.get("deleted"):
                if self.deleted_invoice_write_off_status == 404:
                    raise not_found("invoice", invoice_id)
                raise ApiError(
                    self.deleted_invoice_write_off_status,
                    f"Invoice {invoice_id} cannot be written off as the invoice is deleted.",
                    "invalid_state_for_request",
                )
            inv_logic.check_writable_off(invoice, self.invalid_state_status)
            credit_note = inv_logic.write_off(
                invoice, cn_id=f"CN-{next(self._ids):05d}", resource_version=self.next_version()
            )
            self._write_off_notes[credit_note["id"]] = copy.deepcopy(credit_note)
            events = [
                self._record_event("invoice_updated", {"invoice": copy.deepcopy(invoice)}, webhooks),
                self._record_event("credit_note_created", {"credit_note": credit_note}, webhooks),
            ]
            to_post = [copy.deepcopy(e) for e in events if e["webhook_status"] == "scheduled"]
            return copy.deepcopy(invoice), copy.deepcopy(credit_note), to_post

    # -- credits -----------------------------------------------------------------------------------

    def add_credit_note(self, **fields: Any) -> dict[str, Any]:
        """Give a customer refundable credits: a credit note with `total` available (minor units)."""
        with self.lock:
            if fields.get("customer_id") not in self._customers:
                raise ValueError(f"no customer {fields.get('customer_id')!r}: add the customer first")
            note = cn_logic.build_credit_note(
                fields, seq=next(self._ids), resource_version=self.next_version(), now=int(time.time())
            )
            if note["id"] in self._credit_notes:
                raise ValueError(f"credit note {note['id']!r} already exists")
            self._credit_notes[note["id"]] = note
            self._sync_credits(note["customer_id"])
            return copy.deepcopy(note)

    def credit_notes(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self._credit_notes.values()))

    def apply_credits(
        self, invoice_id: str, credit_note_ids: list[str], *, webhooks: bool = True
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Apply the customer's refundable credits (reactor/sandbox/credits.py); returns (invoice,
        events to post). ApiError, changing nothing, when Chargebee would refuse."""
        with self.lock:
            invoice = self._invoice(invoice_id)
            if invoice.get("deleted"):
                raise not_found("invoice", invoice_id)
            notes = cn_logic.usable_notes(self._credit_notes, invoice, credit_note_ids, self.invalid_state_status)
            cn_logic.apply(invoice, notes, resource_version=self.next_version(), now=int(time.time()))
            self._sync_credits(invoice["customer_id"])
            event = self._record_event("invoice_updated", {"invoice": copy.deepcopy(invoice)}, webhooks)
            return copy.deepcopy(invoice), [copy.deepcopy(event)] if event["webhook_status"] == "scheduled" else []

    def _sync_credits(self, customer_id: str) -> None:
        """The customer's `refundable_credits` follows its credit notes, as on Chargebee."""
        if customer_id in self._customers:
            self._customers[customer_id]["refundable_credits"] = cn_logic.available(
                self._credit_notes.values(), customer_id
            )

    # -- payments -----------------------------------------------------------------------------------

    def record_excess_payment(
        self,
        customer_id: str,
        amount: Any,
        currency_code: Any = None,
        payment_method: Any = "bank_transfer",
        *,
        event_type: str | None = "payment_succeeded",
        webhooks: bool = True,
    ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        """A payment for the customer that pays no invoice (reactor/sandbox/payments.py): it raises
        `excess_payments`; returns (customer, transaction, events to post). Which event Chargebee
        sends for it is UNCONFIRMED: `event_type` (None: none) carries `transaction` and `customer`,
        as payment events do. ApiError 404 for an unknown customer, ValueError for a bad payment."""
        with self.lock:
            customer = self._get(self._customers, "customer", customer_id)
            currency = currency_code or customer.get("preferred_currency_code") or "USD"
            txn = pay_logic.build_transaction(
                customer,
                amount,
                currency,
                payment_method,
                txn_id=f"txn_sb_{next(self._ids):05d}",
                now=int(time.time()),
                version=self.next_version(),
            )
            self._transactions[txn["id"]] = txn
            self._sync_excess(customer_id)
            content = {"transaction": copy.deepcopy(txn), "customer": copy.deepcopy(customer)}
            events = [self._record_event(event_type, content, webhooks)] if event_type else []
            to_post = [copy.deepcopy(e) for e in events if e["webhook_status"] == "scheduled"]
            return copy.deepcopy(customer), copy.deepcopy(txn), to_post

    def apply_payments(
        self, invoice_id: str, wanted: list[tuple[str, int | None]], *, webhooks: bool = True
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Apply payments that exist, or the customer's excess payments, to an invoice
        (reactor/sandbox/payments.py); returns (invoice, events to post). ApiError, changing nothing,
        when Chargebee would refuse."""
        with self.lock:
            invoice = self._invoice(invoice_id)
            if invoice.get("deleted"):
                raise not_found("invoice", invoice_id)
            picked = pay_logic.chosen(self._transactions, invoice, wanted, self.invalid_state_status)
            pay_logic.apply(invoice, picked, now=int(time.time()), version=self.next_version())
            self._sync_excess(invoice["customer_id"])
            event = self._record_event("invoice_updated", {"invoice": copy.deepcopy(invoice)}, webhooks)
            return copy.deepcopy(invoice), [copy.deepcopy(event)] if event["webhook_status"] == "scheduled" else []

    def transactions(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self._transactions.values()))

    def _sync_excess(self, customer_id: str) -> None:
        """The customer's `excess_payments` follows its payments, as on Chargebee."""
        if customer_id in self._customers:
            self._customers[customer_id]["excess_payments"] = pay_logic.excess(self._transactions, customer_id)

    # -- reversals ----------------------------------------------------------------------------------

    def remove_credit_note(
        self, invoice_id: str, credit_note_id: str | None, *, webhooks: bool = True
    ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        """Take a credit note off an invoice (reactor/sandbox/reversals.py), which reverses a
        write-off; returns (invoice, credit note, events to post). ApiError, changing nothing, when
        Chargebee would refuse."""
        if not credit_note_id:
            raise ApiError(400, "credit_note[id] : cannot be blank.", "param_wrong_value", param="credit_note[id]")
        with self.lock:
            invoice = self._invoice(invoice_id)
            if invoice.get("deleted"):
                raise not_found("invoice", invoice_id)
            note = self._note(credit_note_id)
            rev_logic.check_removable(invoice, note, self.invalid_state_status)
            rev_logic.remove(invoice, note, resource_version=self.next_version(), now=int(time.time()))
            self._sync_credits(invoice["customer_id"])
            event = self._record_event("invoice_updated", {"invoice": copy.deepcopy(invoice)}, webhooks)
            to_post = [copy.deepcopy(event)] if event["webhook_status"] == "scheduled" else []
            return copy.deepcopy(invoice), copy.deepcopy(note), to_post

    def void_credit_note(self, credit_note_id: str) -> dict[str, Any]:
        """Void a credit note as an admin would in Chargebee's UI (no webhook): taken off the invoices
        it is applied to first (reactor/sandbox/reversals.py); ValueError when already voided."""
        with self.lock:
            note = self._note(credit_note_id)
            if note.get("status") == "voided":
                raise ValueError(f"credit note {credit_note_id!r} is already voided")
            for invoice_id in {a.get("invoice_id") for a in note.get("allocations", [])}:
                invoice = self._invoice(invoice_id)
                rev_logic.remove(invoice, note, resource_version=self.next_version(), now=int(time.time()))
            note.update(status="voided", voided_at=int(time.time()), resource_version=self.next_version())
            return copy.deepcopy(note)

    def write_off_notes(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self._write_off_notes.values()))

    def _note(self, credit_note_id: str) -> dict[str, Any]:
        note = self._write_off_notes.get(credit_note_id) or self._credit_notes.get(credit_note_id)
        if note is None:
            raise not_found("credit_note", credit_note_id)
        return note

    # -- events and follow-up webhooks ---------------------------------------------------------------

    def _record_event(self, event_type: str, content: dict[str, Any], webhooks: bool) -> dict[str, Any]:
        if not webhooks:
            status = "skipped"
        elif self._webhook is None:
            status = "not_configured"
        else:
            status = "scheduled"
        event = {
            "id": f"ev_sb_{secrets.token_hex(8)}",
            "occurred_at": int(time.time()),
            "source": "api",
            "user": "sandbox api key",
            "object": "event",
            "api_version": "v2",
            "event_type": event_type,
            "webhook_status": status,
            "content": content,
        }
        self._events[event["id"]] = event
        return event

    def record_event(self, event_type: str, content: dict[str, Any]) -> dict[str, Any]:
        """Record an event as if it had happened on the site (not posted anywhere): something genuine
        for a test to deliver, altered or not, to a reactor that verifies events."""
        if not isinstance(event_type, str) or not event_type or not isinstance(content, dict):
            raise ValueError("an event needs an event_type string and a content object")
        with self.lock:
            return copy.deepcopy(self._record_event(event_type, copy.deepcopy(content), webhooks=False))

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(e) for e in self._events.values() if event_type is None or e["event_type"] == event_type
            ]

    def get_event(self, event_id: str) -> dict[str, Any]:
        with self.lock:
            try:
                return copy.deepcopy(self._events[event_id])
            except KeyError:
                raise not_found("event", event_id) from None

    def set_webhook_target(self, url: str | None, user: str = "", password: str = "") -> None:
        """Where follow-up events go (normally the reactor's own webhook URL); None turns it off."""
        with self.lock:
            self._webhook = None if url is None else {"url": url, "user": user, "password": password}

    def webhook_target(self) -> dict[str, str] | None:
        with self.lock:
            return dict(self._webhook) if self._webhook else None

    def deliver_async(self, events: list[dict[str, Any]]) -> threading.Thread | None:
        """POST events to the webhook target in a background thread, sequentially, like Chargebee."""
        target = self.webhook_target()
        if not events or target is None:
            return None
        with self.lock:
            generation = self._generation
        thread = threading.Thread(target=self._deliver, args=(events, target, generation), daemon=True)
        thread.start()
        return thread

    def _deliver(self, events: list[dict[str, Any]], target: dict[str, str], generation: int) -> None:
        auth = (target["user"], target["password"]) if target["user"] or target["password"] else None
        for event in events:
            record: dict[str, Any] = {"event_id": event["id"], "event_type": event["event_type"]}
            record.update(url=target["url"], status_code=None, error=None, at=time.time())
            try:
                resp = requests.post(target["url"], json=event, auth=auth, timeout=20)
                record["status_code"] = resp.status_code
                ok = 200 <= resp.status_code < 300
            except requests.RequestException as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
                ok = False
            with self.lock:
                if generation != self._generation:
                    return
                self._deliveries.append(record)
                # No retry schedule in the sandbox: a failed delivery is final, hence "failed".
                if event["id"] in self._events:
                    self._events[event["id"]]["webhook_status"] = "succeeded" if ok else "failed"
                self.lock.notify_all()

    def deliveries(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._deliveries)

    def wait_for_deliveries(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least `count` deliveries are recorded (or timeout); returns them all."""
        with self.lock:
            self.lock.wait_for(lambda: len(self._deliveries) >= count, timeout=timeout)
            return copy.deepcopy(self._deliveries)

    # -- idempotency -------------------------------------------------------------------------------

    def replay(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        """The stored response for `key`, or None; 422 when the key was used for another request.

        Call with `lock` held and keep it until `remember`, so check-and-apply is atomic.
        """
        with self.lock:
            stored = self._idempotency.get(key)
            if stored is None or time.time() - stored["at"] > self.idempotency_window_s:
                return None
            if stored["fingerprint"] != fingerprint:
                raise ApiError(
                    422,
                    "The idempotency key was already used for a different request.",
                    "unable_to_process_request",
                )
            return copy.deepcopy(stored)

    def remember(self, key: str, fingerprint: str, status: int, body: dict[str, Any]) -> None:
        with self.lock:
            self._idempotency[key] = {
                "fingerprint": fingerprint,
                "status": status,
                "body": copy.deepcopy(body),
                "at": time.time(),
            }

    # -- rate limit, faults, call log ----------------------------------------------------------------

    def admit(self) -> int | None:
        """Count one API request; return Retry-After seconds if it exceeds calls_per_minute."""
        with self.lock:
            if not self.calls_per_minute:
                return None
            now = time.time()
            while self._recent and now - self._recent[0] >= 60:
                self._recent.popleft()
            if len(self._recent) >= self.calls_per_minute:
                return max(1, int(self._recent[0] + 60 - now + 0.999))
            self._recent.append(now)
            return None

    def add_fault(
        self,
        match: str = "any",
        status: int | None = None,
        *,
        retry_after: int | None = None,
        latency_ms: int = 0,
        times: int | None = None,
        api_error_code: str | None = None,
    ) -> dict[str, Any]:
        """Queue a failure (or delay) for matching API requests; `times=None` means forever."""
        if match not in FAULT_KINDS:
            raise ValueError(f"match must be one of {FAULT_KINDS}")
        if status is None and not latency_ms:
            raise ValueError("a fault needs a status, a latency_ms, or both")
        fault = {
            "match": match,
            "status": status,
            "retry_after": retry_after,
            "latency_ms": latency_ms,
            "times": times,
            "api_error_code": api_error_code,
        }
        with self.lock:
            self._faults.append(fault)
            return dict(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(f) for f in self._faults]

    def take_fault(self, kind: str) -> dict[str, Any] | None:
        """Consume the first fault matching this request kind, decrementing its `times`."""
        with self.lock:
            for fault in self._faults:
                if fault["match"] in (kind, "any"):
                    if fault["times"] is not None:
                        fault["times"] -= 1
                        if fault["times"] <= 0:
                            self._faults.remove(fault)
                    return dict(fault)
            return None

    # -- holding requests in flight (crash tests) ------------------------------------------------

    def hold(self, match: str = "write_off") -> None:
        """Hold matching API requests at the gate until `release_held()`: a call stays in flight for
        as long as a test needs (to kill its caller, say), then completes as Chargebee would."""
        if match not in FAULT_KINDS:
            raise ValueError(f"match must be one of {FAULT_KINDS}")
        with self.lock:
            self._hold_match = match
            self._held = 0
            self._release = threading.Event()

    def wait_held(self, count: int = 1, timeout: float = 10.0) -> int:
        """Block until `count` requests are being held (or timeout); returns how many are."""
        with self.lock:
            self.lock.wait_for(lambda: self._held >= count, timeout=timeout)
            return self._held

    def release_held(self) -> None:
        """Let held requests go on, and stop holding new ones."""
        with self.lock:
            self._hold_match = None
            self._release.set()

    def pass_hold(self, kind: str, limit: float = 300.0) -> None:
        """Called by the gate for every API request: waits, outside the lock, while it is held."""
        with self.lock:
            if self._hold_match is None or self._hold_match not in (kind, "any"):
                return
            self._held += 1
            release = self._release
            self.lock.notify_all()
        release.wait(limit)

    def record_call(self, call: dict[str, Any]) -> None:
        with self.lock:
            self._calls.append(call)

    def calls(self, path_contains: str | None = None, method: str | None = None) -> list[dict[str, Any]]:
        """Every /api/v2 request received, oldest first, optionally filtered."""
        with self.lock:
            return [
                copy.deepcopy(c)
                for c in self._calls
                if (path_contains is None or path_contains in c["path"])
                and (method is None or c["method"] == method.upper())
            ]

    def write_off_calls(self) -> list[dict[str, Any]]:
        """All POSTs to .../write_off, whatever their outcome (faulted, replayed, refused)."""
        return [c for c in self.calls(method="POST") if c["path"].endswith("/write_off")]
