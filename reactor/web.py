"""The web process: Chargebee's webhook endpoint, health and readiness, metrics.

The webhook answers in milliseconds: authenticate, validate, then one Redis transaction that
marks the event seen, stores it and enqueues its evaluation. Everything slow happens in workers.
Redis unreachable answers 503, so Chargebee keeps the event and retries it later.
"""

from __future__ import annotations

import base64
import functools
import hmac
import logging
import time
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from . import metrics
from .config import Settings, require_webhook_credentials
from .events import EnvelopeError, EventStore, parse_event
from .keys import EVALUATE_JOB
from .rules import RulesError
from .rules.live import LiveRules
from .security import WebhookGuard, trust_proxies

log = logging.getLogger(__name__)

webhooks = Blueprint("webhooks", __name__)
health = Blueprint("health", __name__)

REALM = 'Basic realm="chargebee-reactor", charset="UTF-8"'


def _error(status: int, error: str, message: str, **headers: str) -> Response:
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


@webhooks.post("/webhooks/chargebee")
def receive() -> Response:
    started = time.perf_counter()
    settings: Settings = current_app.config["REACTOR_SETTINGS"]
    store: EventStore = current_app.extensions["reactor.events"]
    guard: WebhookGuard = current_app.extensions["reactor.security"]
    refusal = guard.screen(request.remote_addr)
    if refusal is not None:
        metrics.EVENTS.labels("unknown", refusal.error).inc()
        extra = {"Retry_After": str(refusal.retry_after)} if refusal.retry_after else {}
        return _error(refusal.status, refusal.error, refusal.message, **extra)
    if not _authorized(settings):
        refusal = guard.failed(request.remote_addr)
        if refusal is not None:
            metrics.EVENTS.labels("unknown", refusal.error).inc()
            return _error(refusal.status, refusal.error, refusal.message, Retry_After=str(refusal.retry_after))
        metrics.EVENTS.labels("unknown", "unauthorized").inc()
        return _error(401, "unauthorized", "missing or wrong Basic-auth credentials", WWW_Authenticate=REALM)
    refused_media = unsupported_media(request.headers.get("Content-Type"), request.headers.get("Content-Encoding"))
    if refused_media is not None:
        metrics.EVENTS.labels("unknown", "unsupported_media").inc()
        return _error(415, "unsupported_media_type", refused_media, Accept_Encoding="identity")
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        metrics.EVENTS.labels("unknown", "too_large").inc()
        return _error(413, "too_large", f"body of {length} bytes exceeds the limit of {settings.max_body_bytes}")
    # A chunked body has no Content-Length: the stream is cut one byte past the limit, so a body
    # that reaches that byte was longer than allowed.
    body = request.get_data(cache=False)
    if len(body) > settings.max_body_bytes:
        metrics.EVENTS.labels("unknown", "too_large").inc()
        return _error(413, "too_large", f"body exceeds the limit of {settings.max_body_bytes} bytes")
    try:
        event = parse_event(body)
    except EnvelopeError as exc:
        metrics.EVENTS.labels("unknown", "rejected").inc()
        log.warning("webhook rejected: %s", exc)
        return _error(400, "bad_event", str(exc))
    try:
        accepted = store.accept(event, EVALUATE_JOB)
    except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError) as exc:
        metrics.EVENTS.labels(event.event_type, "unavailable").inc()
        log.error("redis unavailable, answering 503: %s", exc, extra={"event_id": event.id})
        return _error(503, "unavailable", "storage is unavailable; retry later", Retry_After="120")
    metrics.EVENTS.labels(event.event_type, accepted.outcome).inc()
    metrics.WEBHOOK_LATENCY.observe(time.perf_counter() - started)
    log.info(
        "event %s %s",
        event.event_type,
        accepted.outcome,
        extra={"event_id": event.id, "invoice_id": event.invoice_id},
    )
    return jsonify({"status": accepted.outcome, "event_id": event.id})


@health.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@health.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers and rules are loaded; a refused rules edit is reported, not fatal."""
    connection: redis.Redis = current_app.extensions["reactor.redis"]
    live: LiveRules = current_app.extensions["reactor.rules"]
    checks: dict[str, Any] = {}
    ready = True
    try:
        connection.ping()
        checks["redis"] = "ok"
    except redis.RedisError as exc:
        checks["redis"] = f"unavailable: {exc.__class__.__name__}"
        ready = False
    rules_status = live.status()
    checks["rules"] = rules_status
    if rules_status["version"] is None:
        ready = False
    if checks["redis"] == "ok":  # held write-offs need a person, but the reactor is still ready
        from .jobs.held import list_held

        held_items = list_held(connection, current_app.config["REACTOR_SETTINGS"].key_prefix)
        checks["held"] = {"count": len(held_items), "reasons": sorted({h.reason or "" for h in held_items})[:5]}
    response = jsonify({"status": "ready" if ready else "not_ready", "checks": checks})
    response.status_code = 200 if ready else 503
    return response


@health.get("/openapi.yaml")
def openapi() -> Response:
    """This API's own description (OpenAPI 3.0), as shipped in the package."""
    from importlib.resources import files

    return Response(files("reactor").joinpath("openapi.yaml").read_bytes(), mimetype="application/yaml")


@health.get("/metrics")
def metrics_endpoint() -> Response:
    return Response(metrics.render(current_app.extensions["reactor.metrics"]), mimetype=CONTENT_TYPE_LATEST)


def create_app(settings: Settings | None = None, connection: redis.Redis | None = None) -> Flask:
    """Build the web app. `connection` defaults to REDIS_URL with short timeouts, so that a dead
    Redis turns into a quick 503 rather than a hung request."""
    if settings is None:
        from .config import load_settings

        settings = load_settings()
    require_webhook_credentials(settings)
    if connection is None:
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL is not set (`reactor run` starts an embedded Redis for you)")
        connection = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=settings.redis_socket_timeout,
            socket_timeout=settings.redis_socket_timeout,
            health_check_interval=30,
            # One immediate retry reconnects a pooled connection that a Redis restart closed; more
            # (redis-py's default backs off three times) would hold Chargebee's request for seconds.
            retry=Retry(NoBackoff(), 1),
        )
    app = Flask("reactor")
    app.config["REACTOR_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    queue = Queue(settings.queue_name, connection=connection)
    app.extensions["reactor.redis"] = connection
    app.extensions["reactor.events"] = EventStore.from_settings(connection, queue, settings)
    live = LiveRules(settings.rules_path, reporter=metrics.RulesReloadReporter(connection, settings.key_prefix))
    try:
        live.current()
    except RulesError as exc:
        log.error("rules not loaded: %s", exc)
    app.extensions["reactor.rules"] = live
    app.register_blueprint(webhooks)
    app.register_blueprint(health)
    app.extensions["reactor.security"] = WebhookGuard(
        connection, settings.webhook_allow, settings.auth_failure_limit, settings.key_prefix
    )
    trust_proxies(app, settings.trusted_proxies)
    app.extensions["reactor.metrics"] = metrics.RedisCollector(connection, settings, live)
    from .admin import init_admin

    init_admin(app, settings, connection)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        metrics.EVENTS.labels("unknown", "too_large").inc()
        return _error(413, "too_large", f"body exceeds the limit of {settings.max_body_bytes} bytes")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _error(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or "")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return _error(500, "internal_error", "unexpected error; the event was not accepted, retry later")

    return app
