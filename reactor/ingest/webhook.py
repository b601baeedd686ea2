"""Chargebee's webhook endpoint: authenticate, screen, validate, then one Redis transaction that
marks the event seen, stores it and enqueues its evaluation (reactor/ingest/events.py). It answers in
milliseconds; everything slow happens in workers. Redis unreachable answers 503, so Chargebee keeps
the event and retries it later. docs/security.md, "Hostile clients", says what is refused and why.
"""

from __future__ import annotations

import base64
import functools
import hmac
import logging
import time
from dataclasses import dataclass

import orjson
import redis
from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import Counter, Histogram

from ..config import Settings
from ..keys import EVALUATE_JOB
from ..rules.event_types import CHARGEBEE_EVENT_TYPES
from .envelope import EnvelopeError, Event, parse_event
from .events import EventStore
from .guard import Refusal, WebhookGuard
from .replication import NotReplicated

IGNORED_HOOK = "reactor.ingest.on_ignored"
"""`app.extensions` key of a mapping, site name → a callable given each accepted event of that site
that carries no invoice."""

log = logging.getLogger(__name__)

EVENTS = Counter(
    "reactor_events_received_total",
    "Webhook deliveries by event type, outcome (queued, duplicate, ignored, rejected, unavailable) and site",
    ["event_type", "outcome", "site"],
)
UNKNOWN_SITE = "unknown"
"""The `site` label of a delivery refused before its site was known (an unknown site's URL, too large
for the web server): the names a sender puts in URLs never become series."""
OTHER_EVENT_TYPE = "other"
"""The `event_type` label of an event whose type Chargebee does not list (CHARGEBEE_EVENT_TYPES)."""


def event_type_label(event_type: str) -> str:
    """The event type as EVENTS labels it: a type Chargebee lists by name, any other as `other`, so
    a sender that makes up types adds one series, not one per type (`unknown` is a delivery refused
    before its type was read)."""
    return event_type if event_type in CHARGEBEE_EVENT_TYPES else OTHER_EVENT_TYPE


WEBHOOK_LATENCY = Histogram(
    "reactor_webhook_seconds",
    "Time to answer a webhook delivery",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


webhooks = Blueprint("webhooks", __name__)

REALM = 'Basic realm="chargebee-reactor", charset="UTF-8"'


def error_response(status: int, error: str, message: str, **headers: str) -> Response:
    response = jsonify({"error": error, "message": message})
    response.status_code = status
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


@functools.lru_cache(maxsize=4)
def _basic_header(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def _authorized(settings: Settings) -> bool:
    """Basic auth, both parts compared in constant time over bytes (no early exit on the user)."""
    if settings.webhook_auth == "none":
        return True
    header = request.headers.get("Authorization", "")
    # Chargebee sends the same header every time: compared whole first, with no decoding.
    if hmac.compare_digest(header.encode(), _basic_header(settings.webhook_user, settings.webhook_password)):
        return True
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:
        return False
    user, sep, password = decoded.partition(b":")
    user_ok = hmac.compare_digest(user, settings.webhook_user.encode())
    password_ok = hmac.compare_digest(password, settings.webhook_password.encode())
    return bool(sep) and user_ok and password_ok


# What the webhook takes (docs/security.md, "Hostile clients"). Chargebee posts `application/json`;
# a `charset` parameter is taken when it says UTF-8 (the body is decoded as UTF-8 whatever it says),
# other parameters are ignored. Anything else, a missing Content-Type included, gets 415, as does a
# body in any Content-Encoding but identity: the reactor decodes no compression (a gzip body would
# otherwise be refused as "not UTF-8", and decompressing would undo the 1 MiB body limit).
JSON_MEDIA_TYPE = "application/json"
UTF8_CHARSETS = frozenset({"utf-8", "utf8"})


def unsupported_media(content_type: str | None, content_encoding: str | None) -> str | None:
    """Why a body with these headers is not taken (answered 415), or None when it is."""
    if content_encoding:
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        if any(c not in ("identity", "") for c in codings):
            shown = content_encoding.strip()[:40]
            return f"Content-Encoding {shown!r} is not accepted: send the body uncompressed (identity)"
    if content_type == JSON_MEDIA_TYPE:  # what Chargebee sends: no parsing
        return None
    media_type, _, params = (content_type or "").partition(";")
    if media_type.strip().lower() != JSON_MEDIA_TYPE:
        shown = (content_type or "").strip()[:60]
        got = f"got {shown!r}" if shown else "got none"
        return f"Content-Type must be application/json (a Chargebee event); {got}"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in UTF8_CHARSETS:
            return f"charset {value.strip()[:20]!r} is not accepted: the body must be UTF-8"
    return None


@dataclass(frozen=True)
class SiteWebhook:
    """What the webhook of one Chargebee site needs: that site's settings (its Basic-auth
    credentials), its EventStore (its key prefix and queue) and its guard. Failed logins are counted
    per site: Chargebee posts every site's webhooks from the same addresses, so one site's wrong
    credentials must not hold back another's deliveries."""

    settings: Settings
    store: EventStore
    guard: WebhookGuard  # the allow-list, and this site's failed-login count per address

    @property
    def name(self) -> str:
        """The site's name, as the `site` label of reactor_events_received_total."""
        return self.settings.site_name or self.settings.chargebee_site or UNKNOWN_SITE


SITE_URL = "/webhooks/chargebee/<site>"


@webhooks.post("/webhooks/chargebee")
def receive() -> Response:
    """The home site's webhook (the one URL there was before several sites). A deployment whose sites
    are all named in REACTOR_SITES has no home site: the event cannot be placed, so it is refused
    with 404 (Chargebee keeps it and retries) rather than stored for some site."""
    sites: dict[str, SiteWebhook] = current_app.extensions["reactor.ingest.sites"]
    home = current_app.config["REACTOR_SETTINGS"].home_site
    if home is None or home.name not in sites:
        EVENTS.labels("unknown", "unknown_site", UNKNOWN_SITE).inc()
        return error_response(
            404,
            "unknown_site",
            f"this deployment serves several Chargebee sites and no default one: "
            f"each site's webhook is {SITE_URL} (e.g. /webhooks/chargebee/acme-eu)",
        )
    return _receive(sites[home.name])


@webhooks.post(SITE_URL)
def receive_for_site(site: str) -> Response:
    """The webhook of the site named in the URL: its own Basic auth, its own data. An unknown name is
    refused with 404 after the address screen (the message does not list the configured sites)."""
    sites: dict[str, SiteWebhook] = current_app.extensions["reactor.ingest.sites"]
    target = sites.get(site)
    if target is None:
        guard: WebhookGuard = current_app.extensions["reactor.ingest.guard"]
        refused = guard.screen(request.remote_addr)
        if refused is not None:
            return _guard_refusal(refused)
        EVENTS.labels("unknown", "unknown_site", UNKNOWN_SITE).inc()
        return error_response(404, "unknown_site", "no Chargebee site of that name is served here")
    return _receive(target)


def _receive(site: SiteWebhook) -> Response:
    """One delivery, checked in order: the client (address screen, then Basic auth), the headers (so
    that a body they rule out is never read), the body; then the event is accepted."""
    started = time.perf_counter()
    settings, store = site.settings, site.store
    refused = _refuse_client(settings, site.guard, site.name)
    if refused is None:
        refused = _refuse_headers(settings, site.name)
    if refused is not None:
        return refused
    # A chunked body has no Content-Length: the stream is cut one byte past the limit, so a body
    # that reaches that byte was longer than allowed.
    body = request.get_data(cache=False)
    if len(body) > settings.max_body_bytes:
        EVENTS.labels("unknown", "too_large", site.name).inc()
        return error_response(413, "too_large", f"body exceeds the limit of {settings.max_body_bytes} bytes")
    try:
        event = parse_event(body)
    except EnvelopeError as exc:
        return _reject(store, exc, site.name)
    return _accept(site, event, started)


def _guard_refusal(refusal: Refusal, site: str = UNKNOWN_SITE) -> Response:
    EVENTS.labels("unknown", refusal.error, site).inc()
    extra = {"Retry_After": str(refusal.retry_after)} if refusal.retry_after else {}
    return error_response(refusal.status, refusal.error, refusal.message, **extra)


def _refuse_client(settings: Settings, guard: WebhookGuard, site: str) -> Response | None:
    """The answer to a client that may not deliver (blocked address, failed-auth limit, wrong
    credentials), or None to go on."""
    refusal = guard.screen(request.remote_addr)
    if refusal is not None:
        return _guard_refusal(refusal, site)
    if _authorized(settings):
        return None
    refusal = guard.failed(request.remote_addr)
    if refusal is not None:
        EVENTS.labels("unknown", refusal.error, site).inc()
        return error_response(refusal.status, refusal.error, refusal.message, Retry_After=str(refusal.retry_after))
    EVENTS.labels("unknown", "unauthorized", site).inc()
    return error_response(401, "unauthorized", "missing or wrong Basic-auth credentials", WWW_Authenticate=REALM)


def _refuse_headers(settings: Settings, site: str) -> Response | None:
    """The answer to a body the headers already rule out (media type, encoding, a declared length
    over the limit) before a byte of it is read, or None to go on."""
    refused_media = unsupported_media(request.headers.get("Content-Type"), request.headers.get("Content-Encoding"))
    if refused_media is not None:
        EVENTS.labels("unknown", "unsupported_media", site).inc()
        return error_response(415, "unsupported_media_type", refused_media, Accept_Encoding="identity")
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        EVENTS.labels("unknown", "too_large", site).inc()
        return error_response(
            413, "too_large", f"body of {length} bytes exceeds the limit of {settings.max_body_bytes}"
        )
    return None


def _reject(store: EventStore, refusal: EnvelopeError, site: str) -> Response:
    """400 for a body that is not an event we take, with its receipt kept under the event id it
    carries; Redis unreachable answers 503 instead, so that the retry leaves the receipt."""
    try:
        store.refused(refusal.event_id, refusal.event_type, str(refusal))
    except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError) as exc:
        EVENTS.labels("unknown", "unavailable", site).inc()
        log.error("redis unavailable, answering 503: %s", exc, extra={"event_id": refusal.event_id})
        return error_response(503, "unavailable", "storage is unavailable; retry later", Retry_After="120")
    EVENTS.labels("unknown", "rejected", site).inc()
    log.warning("webhook rejected: %s", refusal, extra={"event_id": refusal.event_id})
    return error_response(400, "bad_event", str(refusal))


def _accept(site: SiteWebhook, event: Event, started: float) -> Response:
    """Dedupe, store and enqueue in one Redis transaction (the site's store); Redis unreachable, or no
    replica confirming the write when one must (REACTOR_REPLICA_ACK), answers 503 so that Chargebee
    keeps the event and retries it."""
    store, label, name = site.store, event_type_label(event.event_type), site.name
    try:
        accepted = store.accept(event, EVALUATE_JOB)
    except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError) as exc:
        EVENTS.labels(label, "unavailable", name).inc()
        log.error("redis unavailable, answering 503: %s", exc, extra={"event_id": event.id})
        return error_response(503, "unavailable", "storage is unavailable; retry later", Retry_After="120")
    except NotReplicated as exc:
        EVENTS.labels(label, "unavailable", name).inc()
        log.error("event not yet on a replica, answering 503: %s", exc, extra={"event_id": event.id})
        return error_response(503, "unavailable", "storage is not replicated; retry later", Retry_After="120")
    if accepted.outcome == "ignored":
        _on_ignored(site.settings.site_name, event)
    EVENTS.labels(label, accepted.outcome, name).inc()
    WEBHOOK_LATENCY.observe(time.perf_counter() - started)
    log.info(
        "event %s %s",
        event.event_type,
        accepted.outcome,
        extra={"event_id": event.id, "invoice_id": event.invoice_id},
    )
    return _json_response({"status": accepted.outcome, "event_id": event.id})


def _on_ignored(site_name: str, event: Event) -> None:
    """An event without an invoice reaches no job: the app's hook for its site (reactor/web.py: a
    payment for a customer whose invoice we wrote off is a recovery candidate) runs here; it never
    changes the answer, and its failure is logged."""
    hook = current_app.extensions.get(IGNORED_HOOK, {}).get(site_name)
    if hook is None:
        return
    try:
        hook(event)
    except Exception:  # the event is received and counted already: never a 5xx for this
        log.exception("the hook for an event without an invoice failed", extra={"event_id": event.id})


def _json_response(body: dict[str, str]) -> Response:
    """What `jsonify` answers, for the webhook's own answer, without its per-call provider lookup."""
    return Response(orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + b"\n", mimetype="application/json")
