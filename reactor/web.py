"""The web process's app: Chargebee's webhook (reactor/ingest/webhook.py), the dashboard
(reactor/dashboard/), health and readiness, the OpenAPI description and Prometheus metrics.

gunicorn builds it as `reactor.web:create_app()` (the Procfile's web line).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.resources import files
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .config import Settings, load_settings, require_webhook_credentials
from .dashboard import metrics
from .dashboard.views import init_admin
from .ingest.envelope import Event
from .ingest.events import EventStore
from .ingest.guard import WebhookGuard, trust_proxies
from .ingest.replication import ReplicaAck
from .ingest.webhook import EVENTS, IGNORED_HOOK, UNKNOWN_SITE, SiteWebhook, error_response, webhooks
from .jobs.audit import AuditLog
from .jobs.audit.archive import archive_lag
from .jobs.held import list_held
from .jobs.recovery import CandidateLog, note_payments
from .keys import Keys
from .notices import Notices
from .redaction import redact, remember
from .redis_connect import connect
from .redis_wait import eviction_refusal, redis_address, wait_for_redis
from .reloads import RulesReloadReporter
from .rules import RulesError, load_rules
from .rules.live import LiveRules

log = logging.getLogger(__name__)

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@health.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers and rules are loaded; a refused rules edit, held write-offs and the
    audit archive's lag are reported, not fatal."""
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
        settings: Settings = current_app.config["REACTOR_SETTINGS"]
        if settings.several_sites:
            per_site = {name: site_checks(connection, settings.for_site(name)) for name in settings.site_names}
            checks["held"] = {name: held for name, (held, _) in per_site.items()}
            checks["audit_archive"] = {name: lag for name, (_, lag) in per_site.items()}
        else:
            checks["held"], checks["audit_archive"] = site_checks(connection, settings)
    response = jsonify({"status": "ready" if ready else "not_ready", "checks": checks})
    response.status_code = 200 if ready else 503
    return response


def site_checks(connection: redis.Redis, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """A site's held write-offs (they need a person, but the reactor is still ready) and its audit
    archive's lag (reported, never fatal: Chargebee must keep being answered while it catches up)."""
    held_items = list_held(connection, settings.key_prefix)
    held = {"count": len(held_items), "reasons": sorted({h.reason or "" for h in held_items})[:5]}
    return held, archive_lag(connection, Keys(settings.key_prefix).audit()).as_dict()


@health.get("/openapi.yaml")
def openapi() -> Response:
    """This API's own description (OpenAPI 3.0), as shipped in the package."""
    return Response(files("reactor").joinpath("openapi.yaml").read_bytes(), mimetype="application/yaml")


@health.get("/metrics")
def metrics_endpoint() -> Response:
    collector = current_app.extensions["reactor.dashboard.metrics"]
    body = metrics.render(collector, current_app.config["REACTOR_SETTINGS"].metrics_dir)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def connect_redis(settings: Settings) -> redis.Redis:
    """REDIS_URL (a plain or a Sentinel URL: reactor/redis_connect.py) with short timeouts, so that
    a dead Redis turns into a quick 503 rather than a hung request."""
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (`reactor run` starts an embedded Redis for you)")
    return connect(
        settings.redis_url,
        socket_connect_timeout=settings.redis_socket_timeout,
        socket_timeout=settings.redis_socket_timeout,
        health_check_interval=30,
        # One immediate retry reconnects a pooled connection that a Redis restart closed; more
        # (redis-py's default backs off three times) would hold Chargebee's request for seconds.
        retry=Retry(NoBackoff(), 1),
    )


def watch_redis(connection: redis.Redis) -> threading.Thread:
    """Say in the log when this process starts without Redis, and when Redis answers. The app does
    not wait: meanwhile /healthz answers, /readyz says 503 and why, and webhooks get 503 (Chargebee
    retries), each request trying Redis afresh. A thread (a greenlet under gunicorn's gevent
    workers) does the waiting and the saying."""

    def wait() -> None:
        try:
            wait_for_redis(connection)
            refused = eviction_refusal(connection)  # at start, gunicorn_conf.py's check refused it already
        except redis.RedisError as exc:  # refused (a wrong password): every request will say so too
            log.error("Redis at %s refuses this web process: %s", redis_address(connection), exc)
            return
        if refused:
            log.error("%s", refused)

    thread = threading.Thread(target=wait, name="reactor-redis-wait", daemon=True)
    thread.start()
    return thread


def live_rules(settings: Settings, connection: redis.Redis) -> LiveRules:
    """The rules in force, loaded now so that a broken file is logged at start (the app still
    starts: /readyz says not ready until a good file is in place)."""
    notices = Notices(connection, settings.key_prefix, enabled=bool(settings.notify_url))
    reporter = RulesReloadReporter(connection, settings.key_prefix, notices)
    loader = functools.partial(load_rules, sites=settings.site_names)  # a misspelt `sites:` name is refused
    live = LiveRules(settings.rules_path, loader=loader, reporter=reporter)
    try:
        live.current()
    except RulesError as exc:
        log.error("rules not loaded: %s", exc)
    return live


def payment_watch(settings: Settings, connection: redis.Redis) -> Callable[[Event], None]:
    """What the webhook does with an event that carries no invoice: a payment of a customer whose
    invoice we wrote off (an excess payment's event has no invoice) is a recovery candidate
    (reactor/jobs/recovery.py); Redis only, a few round trips, and only for such a customer."""
    keys = Keys(settings.key_prefix)
    candidates = CandidateLog(
        connection,
        keys,
        AuditLog(connection, keys.audit()),
        Notices(connection, settings.key_prefix, enabled=bool(settings.notify_url)),
        lambda: datetime.now(timezone.utc),
    )

    def watch(event: Event) -> None:
        note_payments(candidates, event.id, event.event_type, event.content)

    return watch


def site_webhooks(settings: Settings, connection: redis.Redis, replica_ack: ReplicaAck) -> dict[str, SiteWebhook]:
    """Each site's webhook: its settings (credentials), its EventStore on its keys and queue, and its
    guard (the one allow-list; failed logins counted under the site's keys)."""
    found = {}
    for site in settings.sites:
        scoped = settings.for_site(site.name)
        queue = Queue(scoped.queue_name, connection=connection)
        store = EventStore.from_settings(connection, queue, scoped, replica_ack)
        guard = WebhookGuard(connection, settings.webhook_allow, settings.auth_failure_limit, scoped.key_prefix)
        found[site.name] = SiteWebhook(scoped, store, guard)
    return found


def create_app(settings: Settings | None = None, connection: redis.Redis | None = None) -> Flask:
    """Build the web app. `settings` default to the environment's, `connection` to `connect_redis`."""
    if settings is None:
        settings = load_settings()
    remember(settings.secrets)  # no answer nor log line of this process shows them
    require_webhook_credentials(settings)
    if connection is None:
        connection = connect_redis(settings)
    watch_redis(connection)
    app = Flask("reactor")
    app.config["REACTOR_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    app.extensions["reactor.redis"] = connection
    replica_ack = ReplicaAck(settings.replica_ack, settings.replica_ack_timeout)
    sites = site_webhooks(settings, connection, replica_ack)
    app.extensions["reactor.ingest.sites"] = sites
    if settings.home_site is not None:  # the home site's store, as before several sites
        app.extensions["reactor.ingest.events"] = sites[settings.home_site.name].store
    app.extensions[IGNORED_HOOK] = {
        name: payment_watch(settings.for_site(name), connection) for name in settings.site_names
    }
    live = live_rules(settings, connection)
    app.extensions["reactor.rules"] = live
    app.register_blueprint(webhooks)
    app.register_blueprint(health)
    # The address screen of a URL that names no site served here (each site's own guard counts its
    # failed logins: reactor/ingest/webhook.py).
    app.extensions["reactor.ingest.guard"] = WebhookGuard(
        connection, settings.webhook_allow, settings.auth_failure_limit, settings.deployment_key_prefix
    )
    trust_proxies(app, settings.trusted_proxies)
    app.extensions["reactor.dashboard.metrics"] = metrics.RedisCollector(connection, settings, live)
    init_admin(app, settings, connection)
    register_error_handlers(app, settings)
    app.after_request(redact_answer)
    return app


REDACTED_TYPES = ("text/", "application/json")
"""Answers whose body is text for someone to read, and so is redacted as it leaves."""


def redact_answer(response: Response) -> Response:
    """No answer carries a secret (reactor/redaction.py): every text body, /readyz, error bodies and
    dashboard pages alike, is redacted here, after the error handlers, as it leaves the app. A
    streamed or file answer (none carries text of ours) is left alone."""
    if response.is_streamed or response.direct_passthrough or not (response.mimetype or "").startswith(REDACTED_TYPES):
        return response
    body = response.get_data(as_text=True)
    clean = redact(body)
    if clean != body:
        response.set_data(clean)
    return response


def register_error_handlers(app: Flask, settings: Settings) -> None:
    """Every error answers as the `Error` schema of reactor/openapi.yaml says, in JSON."""

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        EVENTS.labels("unknown", "too_large", UNKNOWN_SITE).inc()
        return error_response(413, "too_large", f"body exceeds the limit of {settings.max_body_bytes} bytes")

    @app.errorhandler(HTTPException)
    def httperror_response(exc: HTTPException) -> Response:
        return error_response(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or "")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return error_response(500, "internal_error", "unexpected error; the event was not accepted, retry later")
