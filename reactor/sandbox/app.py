"""The sandbox as a Flask app: Chargebee's /api/v2 surface plus a /_sandbox control API for tests.

Chargebee API: GET /invoices, GET /invoices/{id}, POST /invoices/{id}/write_off,
POST /invoices/{id}/apply_credits, POST /invoices/{id}/remove_credit_note,
POST /invoices/{id}/apply_payments, POST /customers/{id}/record_excess_payment, GET /events,
GET /events/{id}, GET /customers/{id}, GET /subscriptions/{id}.

Control API (no auth): /reset; /invoices (POST one or a list, GET, PATCH /invoices/{id},
POST /invoices/{id}/delete); /customers and /subscriptions (POST one or a list, GET, PATCH /{id});
/credit_notes (POST one or a list: a customer's refundable credits, GET; POST /{id}/void);
/payments (POST: a customer's excess payment and its webhook), /transactions (GET);
/settings (GET, POST); /faults; /calls; /webhook; /deliveries; /events.

Every /api/v2 request passes the same gate Chargebee's edge would apply — Basic auth, the rate limit,
then any injected fault — and is logged with its final status, so tests can assert on what the
reactor actually sent (the Authorization header is redacted in the log).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .errors import ApiError, wrong_value
from .listing import decode_offset, encode_offset, parse_limit, parse_list_value
from .state import SKIPPED, SandboxState

API_PREFIX = "/api/v2"
_FAULT_KIND_BY_ENDPOINT = {
    "api.write_off": "write_off",
    "api.retrieve_invoice": "retrieve",
    "api.list_invoices": "list",
    "api.retrieve_event": "events",
    "api.list_events": "events",
    "api.retrieve_customer": "customer",
    "api.retrieve_subscription": "subscription",
    "api.apply_credits": "apply_credits",
    "api.remove_credit_note": "remove_credit_note",
    "api.apply_payments": "apply_payments",
    "api.record_excess_payment": "record_excess_payment",
}

api = Blueprint("api", __name__, url_prefix=API_PREFIX)
control = Blueprint("control", __name__, url_prefix="/_sandbox")


def create_sandbox_app(state: SandboxState | None = None) -> Flask:
    """Build the app around `state` (a fresh one if None) so each test can own its own site."""
    app = Flask("reactor.sandbox")
    app.extensions["sandbox_state"] = state if state is not None else SandboxState()
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.before_request(_gate)
    app.after_request(_log_call)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.register_blueprint(api)
    app.register_blueprint(control)
    return app


def _state() -> SandboxState:
    return current_app.extensions["sandbox_state"]


# -- gate, logging, errors -----------------------------------------------------------------------------


def _gate() -> None:
    """Auth, rate limit and faults for /api/v2, in that order; latency sleeps outside any lock."""
    if not request.path.startswith(API_PREFIX + "/") and request.path != API_PREFIX:
        return
    state = _state()
    auth = request.authorization
    if auth is None or auth.type != "basic" or auth.username != state.api_key:
        raise ApiError(401, "Sorry, authentication failed. Invalid api key", "api_authentication_failed")
    retry_after = state.admit()
    if retry_after is not None:
        raise ApiError(
            429,
            "Sorry, access has been blocked temporarily due to request count exceeding acceptable limits.",
            "api_request_limit_exceeded",
            retry_after=retry_after,
        )
    key = request.headers.get("chargebee-idempotency-key")
    if key is not None and len(key) > 100:
        raise ApiError(400, "chargebee-idempotency-key cannot be more than 100 characters.", "invalid_request")
    # The whole request is read before a hold or a fault, as Chargebee has it once the client sent it:
    # a client killed while held would otherwise leave a body that can no longer be read, and the
    # call would go unlogged.
    request.form.to_dict()
    state.pass_hold(_FAULT_KIND_BY_ENDPOINT.get(request.endpoint or "", "other"))
    fault = state.take_fault(_FAULT_KIND_BY_ENDPOINT.get(request.endpoint or "", "other"))
    if fault is None:
        return
    if fault["latency_ms"]:
        time.sleep(fault["latency_ms"] / 1000)
    if fault["status"]:
        g.faulted = True
        raise ApiError(
            fault["status"],
            f"Sandbox fault: injected HTTP {fault['status']}.",
            fault["api_error_code"],
            retry_after=fault["retry_after"],
        )


def _log_call(response: Response) -> Response:
    if request.path.startswith(API_PREFIX):
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = "<redacted>"
        _state().record_call(
            {
                "at": time.time(),
                "method": request.method,
                "path": request.path,
                "headers": headers,
                "form": request.form.to_dict(),
                "query": request.args.to_dict(),
                "status": response.status_code,
                "replayed": bool(g.get("replayed", False)),
                "faulted": bool(g.get("faulted", False)),
            }
        )
    return response


def _api_error(err: ApiError) -> tuple[Response, int, dict[str, str]]:
    return jsonify(err.body()), err.status, err.headers()


def _http_error(err: HTTPException) -> tuple[Response, int, dict[str, str]]:
    """Routing errors in Chargebee's JSON shape: never an HTML page, not even for unknown paths."""
    status = err.code or 500
    code = {404: "resource_not_found", 405: "http_method_not_supported"}.get(status, "invalid_request")
    message = f"Sorry, {request.method} {request.path} is not a known resource." if status == 404 else str(err)
    return _api_error(ApiError(status, message, code))


def _unexpected_error(err: Exception) -> tuple[Response, int, dict[str, str]]:
    current_app.logger.exception("sandbox bug", exc_info=err)
    return _api_error(ApiError(500, f"Sandbox internal error: {type(err).__name__}: {err}", "internal_error"))


# -- Chargebee API -------------------------------------------------------------------------------------


@api.get("/invoices/<invoice_id>")
def retrieve_invoice(invoice_id: str) -> Response:
    return jsonify({"invoice": _state().retrieve_invoice(invoice_id)})


@api.get("/invoices")
def list_invoices() -> Response:
    page, next_offset = _state().list_invoices(request.args.to_dict())
    body: dict[str, Any] = {"list": [{"invoice": inv} for inv in page]}
    if next_offset:
        body["next_offset"] = next_offset
    return jsonify(body)


Applied = tuple[dict[str, Any], list[dict[str, Any]]]
"""What a POST that changes an invoice answers (its body) and the webhook events it raises."""


def _idempotent_post(apply: Callable[[bool], Applied]) -> tuple[Response, int, dict[str, str]]:
    """A POST with Chargebee's idempotency: lookup, apply and store happen under one lock.

    `apply(webhooks)` makes the change (`webhooks`: False when the request asked for none) and
    returns the body and the events. Completed outcomes (2xx and 4xx) are stored and replayed;
    429/5xx are not, because they mean the request was not processed and the client is expected to
    retry with the same key.
    """
    state = _state()
    key = request.headers.get("chargebee-idempotency-key")
    webhooks = SKIPPED not in (
        request.headers.get("chargebee-event-webhook"),
        request.headers.get("chargebee-event-actions"),
    )
    fingerprint = json.dumps([request.method, request.path, sorted(request.form.items(multi=True))])
    events: list[dict[str, Any]] = []
    with state.lock:
        stored = state.replay(key, fingerprint) if key else None
        if stored is not None:
            g.replayed = True
            return jsonify(stored["body"]), stored["status"], {"chargebee-idempotency-replayed": "true"}
        try:
            body, events = apply(webhooks)
            status = 200
        except ApiError as err:
            if not key or err.status == 429 or err.status >= 500:
                raise
            status, body = err.status, err.body()
        if key:
            state.remember(key, fingerprint, status, body)
    state.deliver_async(events)
    return jsonify(body), status, {"chargebee-idempotency-replayed": "false"} if key else {}


def _check_comment() -> None:
    if len(request.form.get("comment") or "") > 300:
        raise ApiError(400, "comment : cannot be more than 300 characters.", param="comment")


@api.post("/invoices/<invoice_id>/write_off")
def write_off(invoice_id: str) -> tuple[Response, int, dict[str, str]]:
    """Write off the invoice: a credit note for its amount due."""

    def apply(webhooks: bool) -> Applied:
        invoice, note, events = _state().write_off(invoice_id, request.form.get("comment"), webhooks=webhooks)
        return {"invoice": invoice, "credit_note": note}, events

    return _idempotent_post(apply)


@api.post("/invoices/<invoice_id>/apply_credits")
def apply_credits(invoice_id: str) -> tuple[Response, int, dict[str, str]]:
    """Apply the customer's refundable credits (`credit_notes[id][i]`, or all of them)."""
    _check_comment()
    wanted = [v for k, v in sorted(request.form.items()) if k.startswith("credit_notes[id][")]

    def apply(webhooks: bool) -> Applied:
        invoice, events = _state().apply_credits(invoice_id, wanted, webhooks=webhooks)
        return {"invoice": invoice}, events

    return _idempotent_post(apply)


@api.post("/invoices/<invoice_id>/remove_credit_note")
def remove_credit_note(invoice_id: str) -> tuple[Response, int, dict[str, str]]:
    """Take a credit note off an invoice (a write-off's reversal); answers the invoice and the note."""

    def apply(webhooks: bool) -> Applied:
        note_id = request.form.get("credit_note[id]")
        invoice, note, events = _state().remove_credit_note(invoice_id, note_id, webhooks=webhooks)
        return {"invoice": invoice, "credit_note": note}, events

    return _idempotent_post(apply)


@api.post("/invoices/<invoice_id>/apply_payments")
def apply_payments(invoice_id: str) -> tuple[Response, int, dict[str, str]]:
    """Apply payments that exist (`transactions[id][i]`, optional `transactions[amount][i]`), or the
    customer's excess payments."""
    _check_comment()
    wanted = _transactions_param(request.form.to_dict())

    def apply(webhooks: bool) -> Applied:
        invoice, events = _state().apply_payments(invoice_id, wanted, webhooks=webhooks)
        return {"invoice": invoice}, events

    return _idempotent_post(apply)


_TRANSACTION_PARAM = re.compile(r"transactions\[(?:id|amount)\]\[(\d{1,3})\]")


def _transactions_param(form: dict[str, str]) -> list[tuple[str, int | None]]:
    """`transactions[id][i]` and `transactions[amount][i]` as (id, amount) pairs in index order; 400
    for an amount without its id or one that is not a whole number, as Chargebee validates them."""
    indexes: set[int] = set()
    for name in form:
        if not name.startswith("transactions"):
            continue
        found = _TRANSACTION_PARAM.fullmatch(name)
        if found is None:
            raise wrong_value(name, f"{name} is not a known parameter.")
        indexes.add(int(found.group(1)))
    wanted: list[tuple[str, int | None]] = []
    for i in sorted(indexes):
        txn_id, amount = form.get(f"transactions[id][{i}]"), form.get(f"transactions[amount][{i}]")
        if not txn_id:
            raise wrong_value(f"transactions[id][{i}]", f"transactions[id][{i}] : cannot be blank.")
        if amount is not None and not amount.isdigit():
            raise wrong_value(f"transactions[amount][{i}]", f"transactions[amount][{i}] : invalid number.")
        wanted.append((txn_id, int(amount) if amount is not None else None))
    return wanted


@api.post("/customers/<customer_id>/record_excess_payment")
def record_excess_payment(customer_id: str) -> tuple[Response, int]:
    """Record an offline payment as the customer's excess payment (`transaction[amount]`,
    `transaction[date]` and `transaction[payment_method]` required, as chargebee-python has them)."""
    form = request.form.to_dict()
    for name in ("transaction[amount]", "transaction[date]", "transaction[payment_method]"):
        if not form.get(name):
            raise wrong_value(name, f"{name} : cannot be blank.")
    if not form["transaction[amount]"].isdigit():
        raise wrong_value("transaction[amount]", "transaction[amount] : invalid number.")
    state = _state()
    customer, txn, events = _control_call(
        state.record_excess_payment,
        customer_id,
        int(form["transaction[amount]"]),
        form.get("transaction[currency_code]"),
        form["transaction[payment_method]"],
        webhooks=request.headers.get("chargebee-event-webhook") != SKIPPED,
    )
    state.deliver_async(events)
    return jsonify({"customer": customer, "transaction": txn}), 200


@api.get("/transactions/<transaction_id>")
def retrieve_transaction(transaction_id: str) -> Response:
    return jsonify({"transaction": _state().get_transaction(transaction_id)})


@api.get("/customers/<customer_id>")
def retrieve_customer(customer_id: str) -> Response:
    return jsonify({"customer": _state().get_customer(customer_id)})


@api.get("/subscriptions/<subscription_id>")
def retrieve_subscription(subscription_id: str) -> Response:
    return jsonify({"subscription": _state().get_subscription(subscription_id)})


@api.get("/events/<event_id>")
def retrieve_event(event_id: str) -> Response:
    return jsonify({"event": _state().get_event(event_id)})


@api.get("/events")
def list_events() -> Response:
    """Events oldest first, filtered by event_type[is|in]; offset = opaque position."""
    events = _state().events()
    if "event_type[is]" in request.args:
        events = [e for e in events if e["event_type"] == request.args["event_type[is]"]]
    if "event_type[in]" in request.args:
        wanted = parse_list_value("event_type[in]", request.args["event_type[in]"])
        events = [e for e in events if e["event_type"] in wanted]
    limit = parse_limit(request.args)
    start = 0
    if "offset" in request.args:
        key = decode_offset(request.args["offset"])
        if len(key) != 1:
            raise wrong_value("offset", "offset does not belong to this list.")
        start = key[0]
    page = events[start : start + limit]
    body: dict[str, Any] = {"list": [{"event": e} for e in page]}
    if start + limit < len(events):
        body["next_offset"] = encode_offset([start + limit])
    return jsonify(body)


# -- control API (no auth) -------------------------------------------------------------------------------


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "Expected a JSON body.", "invalid_request")
    return body


def _control_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Turn a bad control request (ValueError/TypeError from the state) into a 400, not a 500."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        raise ApiError(400, str(exc), "invalid_request") from None


@control.post("/reset")
def reset() -> Response:
    body = request.get_json(silent=True) or {}
    _state().reset(keep_webhook_target=bool(body.get("keep_webhook_target")))
    return jsonify({"ok": True})


@control.post("/invoices")
def add_invoices() -> tuple[Response, int]:
    body = _json_body()
    if isinstance(body, list):
        return jsonify({"invoices": _control_call(_state().add_invoices, body)}), 201
    return jsonify({"invoice": _control_call(_state().add_invoice, **body)}), 201


@control.get("/invoices")
def all_invoices() -> Response:
    return jsonify({"invoices": _state().invoices()})


@control.patch("/invoices/<invoice_id>")
def update_invoice(invoice_id: str) -> Response:
    return jsonify({"invoice": _control_call(_state().update_invoice, invoice_id, **_json_body())})


@control.post("/invoices/<invoice_id>/delete")
def delete_invoice(invoice_id: str) -> Response:
    """Delete an invoice as Chargebee would (kept with deleted: true, an invoice_deleted event);
    body `{"webhook": false}` records the event as skipped instead of posting it."""
    body = request.get_json(silent=True) or {}
    state = _state()
    invoice, events = _control_call(state.delete_invoice, invoice_id, webhooks=body.get("webhook", True) is not False)
    state.deliver_async(events)
    return jsonify({"invoice": invoice})


def _add_many_or_one(resource: str, add_one: Any, add_many: Any) -> tuple[Response, int]:
    body = _json_body()
    if isinstance(body, list):
        return jsonify({f"{resource}s": _control_call(add_many, body)}), 201
    if not isinstance(body, dict):
        raise ApiError(400, f"Expected a {resource} object or a list of them.", "invalid_request")
    return jsonify({resource: _control_call(add_one, **body)}), 201


def _fields() -> dict[str, Any]:
    body = _json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "Expected an object of fields.", "invalid_request")
    return body


@control.post("/customers")
def add_customers() -> tuple[Response, int]:
    return _add_many_or_one("customer", _state().add_customer, _state().add_customers)


@control.get("/customers")
def all_customers() -> Response:
    return jsonify({"customers": _state().customers()})


@control.patch("/customers/<customer_id>")
def update_customer(customer_id: str) -> Response:
    return jsonify({"customer": _control_call(_state().update_customer, customer_id, **_fields())})


@control.post("/subscriptions")
def add_subscriptions() -> tuple[Response, int]:
    return _add_many_or_one("subscription", _state().add_subscription, _state().add_subscriptions)


@control.get("/subscriptions")
def all_subscriptions() -> Response:
    return jsonify({"subscriptions": _state().subscriptions()})


@control.patch("/subscriptions/<subscription_id>")
def update_subscription(subscription_id: str) -> Response:
    return jsonify({"subscription": _control_call(_state().update_subscription, subscription_id, **_fields())})


@control.post("/credit_notes")
def add_credit_notes() -> tuple[Response, int]:
    """A customer's refundable credits: `{"customer_id": ..., "total": 500, "currency_code": "USD"}`."""
    return _add_many_or_one("credit_note", _state().add_credit_note, _credit_notes_of)


def _credit_notes_of(notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_state().add_credit_note(**fields) for fields in notes]


@control.get("/credit_notes")
def all_credit_notes() -> Response:
    return jsonify({"credit_notes": _state().credit_notes()})


@control.post("/credit_notes/<credit_note_id>/void")
def void_credit_note(credit_note_id: str) -> Response:
    """Void a credit note as an admin would in Chargebee's UI (a write-off reversed behind our back)."""
    return jsonify({"credit_note": _control_call(_state().void_credit_note, credit_note_id)})


@control.post("/payments")
def add_payment() -> tuple[Response, int]:
    """A payment arriving on the site for a customer, as an excess payment:
    `{"customer_id": ..., "amount": 1250, "currency_code": "GBP", "payment_method": "bank_transfer",
    "event_type": "payment_succeeded", "webhook": true}`; its event posted to the webhook target."""
    body = _fields()
    state = _state()
    webhook = body.pop("webhook", True) is not False
    customer, txn, events = _control_call(
        state.record_excess_payment,
        body.pop("customer_id", None),
        body.pop("amount", None),
        body.pop("currency_code", None),
        body.pop("payment_method", "bank_transfer"),
        event_type=body.pop("event_type", "payment_succeeded"),
        webhooks=webhook,
        **body,
    )
    state.deliver_async(events)
    return jsonify({"customer": customer, "transaction": txn}), 201


@control.get("/transactions")
def all_transactions() -> Response:
    return jsonify({"transactions": _state().transactions()})


@control.get("/calls")
def calls() -> Response:
    return jsonify({"calls": _state().calls(request.args.get("path_contains"), request.args.get("method"))})


@control.post("/faults")
def add_fault() -> tuple[Response, int]:
    return jsonify({"fault": _control_call(_state().add_fault, **_json_body())}), 201


@control.get("/faults")
def faults() -> Response:
    return jsonify({"faults": _state().faults()})


@control.delete("/faults")
def clear_faults() -> Response:
    _state().clear_faults()
    return jsonify({"ok": True})


@control.post("/webhook")
def set_webhook() -> Response:
    body = _json_body()
    _control_call(_state().set_webhook_target, body.get("url"), body.get("user", ""), body.get("password", ""))
    return jsonify({"webhook": _state().webhook_target()})


@control.get("/deliveries")
def deliveries() -> Response:
    return jsonify({"deliveries": _state().deliveries()})


@control.post("/events")
def record_event() -> tuple[Response, int]:
    body = _json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "Expected an object with event_type and content.", "invalid_request")
    return jsonify({"event": _control_call(_state().record_event, body.get("event_type"), body.get("content"))}), 201


@control.get("/events")
def events() -> Response:
    return jsonify({"events": _state().events(request.args.get("event_type"))})


@control.get("/settings")
def get_settings() -> Response:
    return jsonify(_state().settings())


@control.post("/settings")
def settings() -> Response:
    """Switch Chargebee behaviours the docs leave open or that are off by default (until reset):

    - `invalid_state_status`: 409 (default) or 400, the status of invalid_state_for_request;
    - `deleted_invoice_retrieve_status`: 404 (default, resource_not_found) or 200 (the invoice with
      `deleted: true`), what GET /invoices/{id} answers for a deleted invoice (UNCONFIRMED);
    - `deleted_invoice_write_off_status`: 404 (default, resource_not_found), 400 or 409
      (invalid_state_for_request), what write_off answers for a deleted invoice (UNCONFIRMED);
    - `calls_per_minute`: an integer, or null for no limit.
    """
    body = _json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "Expected an object of settings.", "invalid_request")
    return jsonify(_control_call(_state().configure, **body))
