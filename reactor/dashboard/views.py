"""The on-call dashboard at /admin: recent decisions, dead letters (with replay), held write-offs
(released in held.py), the rules in force, and write-offs per day per currency, net of undos.
Server-rendered, no JavaScript, no CDN. Every page's header names who is logged in.

Off (404) unless REACTOR_ADMIN_USER and REACTOR_ADMIN_PASSWORD are set (one admin; these are not
the webhook credentials), or REACTOR_DASHBOARD=1 for the named users of `reactor users`
(reactor/console/users.py). A user's role decides what they may do: a viewer reads, an approver also
approves, declines, releases, undoes and replays (`role_required`: 403 otherwise). A login form
starts a signed session cookie (HttpOnly, SameSite=Lax, Secure unless REACTOR_ADMIN_INSECURE_COOKIE=1,
12 hours at most, REACTOR_SESSION_IDLE without a request). The signing key is REACTOR_SECRET_KEY, or else a random
key created once and kept in Redis (`{prefix}:admin:secret_key`), so every gunicorn worker and a
restarted web accept the same sessions (a web started before Redis answered takes it at its first
dashboard request after). Each login also gets a random session id recorded in Redis
(`{prefix}:admin:session:<id>`, its TTL renewed to the idle time by each request, within the 12
hours); a cookie counts only while its id is there and its user still exists, and logout deletes it,
so a copy of the cookie stops working at logout. Every POST carries a per-session CSRF token. Failed
logins are limited per client address and per user name with the `limits` package (429 with
Retry-After). Everything shown is escaped by Jinja's autoescaping: event content comes from outside.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import math
import secrets
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import wraps
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from limits import parse
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import HTTPException, TooManyRequests

from .. import ids
from ..config import ConfigError, Settings
from ..console.deadletters import DeadLetterError, DeadLetters
from ..console.invoice_state import undone_write_offs
from ..console.tally import daily_write_offs
from ..console.users import User, UserError, UserStore
from ..ingest.events import JOB_ID_SAFE
from ..jobs.audit import OUTCOMES, AuditFilter, AuditLog
from ..jobs.held import list_held
from ..jobs.recovery import open_candidates
from ..keys import Keys
from ..reloads import RulesReloadReporter
from ..rules import RulesError
from ..rules.money import to_major
from ..timestamps import shown_time
from .sites import site_usage

log = logging.getLogger(__name__)

admin = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")
admin.add_app_template_filter(shown_time, "utc")  # `{{ record.at|utc }}`: every time on a page, as the CLI shows it

LOGIN_LIMIT = parse("10 per 15 minutes")
"""Failed logins per client address, and (apart) per user name: one address cannot try many names
past it, nor many addresses one name."""
SESSION_LIFETIME = timedelta(hours=12)
CHART_DAYS = 30
DECISION_LIMITS = (25, 50, 100, 500)
SECRET_PENDING = "reactor.dashboard.views.secret_pending"  # app.extensions: the shared key is still to be read
MAX_JOB_ID_LENGTH = 200  # RQ's ids here are `evaluate-<event id>` or `replay-...`: far shorter


def init_admin(app: Flask, settings: Settings, connection: redis.Redis) -> None:
    """Register the dashboard when admin credentials are configured or REACTOR_DASHBOARD=1 asks for it
    (named users); otherwise /admin stays a 404."""
    if not (settings.admin_user and settings.admin_password) and not settings.dashboard_users:
        return
    if settings.secret_key:
        app.secret_key = settings.secret_key
    else:
        shared = _shared_secret(connection, settings.deployment_key_prefix)
        # Started without Redis: a key of this process's own until Redis answers (_adopt_shared_secret).
        app.secret_key = shared or secrets.token_hex(32)
        app.extensions[SECRET_PENDING] = shared is None
    app.config.update(
        SESSION_COOKIE_NAME="reactor_admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Sent by browsers over HTTPS only (and to http://localhost, which they treat as secure).
        SESSION_COOKIE_SECURE=not settings.admin_insecure_cookie,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    storage = RedisStorage(
        "redis://",
        connection_pool=connection.connection_pool,
        key_prefix=Keys(settings.deployment_key_prefix).namespace("admin"),
    )
    app.extensions["reactor.dashboard.views.limiter"] = FixedWindowRateLimiter(storage)
    app.register_blueprint(admin)


def _shared_secret(connection: redis.Redis, prefix: str) -> str | None:
    """One random signing key for every web process, created by whichever starts first; None while
    Redis does not answer."""
    key = Keys(prefix).admin_secret_key()
    try:
        connection.set(key, secrets.token_hex(32), nx=True)
        value = connection.get(key)
        if value:
            return value.decode()
    except redis.RedisError as exc:
        log.warning("admin: Redis unavailable (%s); sessions are signed with a per-process key", exc)
    return None


@admin.before_request
def _adopt_shared_secret() -> None:
    """A web process that started without Redis signs with a key of its own, which the other
    gunicorn workers do not accept; it takes the shared key at its first dashboard request once Redis
    answers (a session it signed before then must log in again, as it could not have one in Redis)."""
    if current_app.extensions.get(SECRET_PENDING):
        shared = _shared_secret(_redis(), _settings().deployment_key_prefix)
        if shared:
            current_app.secret_key = shared
            current_app.extensions[SECRET_PENDING] = False


def _settings() -> Settings:
    return current_app.config["REACTOR_SETTINGS"]


def _redis() -> redis.Redis:
    return current_app.extensions["reactor.redis"]


def site_settings() -> Settings:
    """The settings of the site the page shows (`?site=NAME`, `_pick_site`): its key prefix, queue and
    Chargebee, so that what the page reads and every action it takes are that site's."""
    return g.site_settings


@admin.before_request
def _pick_site() -> None:
    """The site of this request: `?site=NAME`, else the deployment's first (the home site); an
    unknown name is a 404 naming the configured sites, once logged in."""
    settings = _settings()
    name = request.args.get("site") or settings.site_names[0]
    try:
        g.site_settings = settings.for_site(name)
    except ConfigError as exc:  # told after the login check (`login_required`): the names are for ops
        g.site_settings = settings.for_site(settings.site_names[0])
        g.site_refused = str(exc)


@admin.url_defaults
def _keep_site(endpoint: str, values: dict[str, Any]) -> None:
    """Every dashboard link and form of a page keeps its site (`?site=`) when there are several."""
    scoped = g.get("site_settings")
    if scoped is not None and scoped.several_sites and "site" not in values and endpoint != "admin.login":
        values["site"] = scoped.site_name


def _session_key(session_id: str) -> str:
    """Sessions are the deployment's, not a site's: one login serves every site's pages."""
    return Keys(_settings().deployment_key_prefix).admin_session(session_id)


def _users() -> UserStore:
    """The deployment's users (its settings' prefix: users and sessions are not per site)."""
    return UserStore(_redis(), _settings())


def _idle_seconds() -> int:
    return min(_settings().session_idle, int(SESSION_LIFETIME.total_seconds()))


def _start_session(user: str) -> None:
    """A fresh session whose id is recorded in Redis while it is used (revoked by logout)."""
    session_id = secrets.token_urlsafe(32)
    _redis().set(_session_key(session_id), user, ex=_idle_seconds())
    session.clear()
    session.permanent = True
    session["admin"] = user
    session["sid"] = session_id
    session["since"] = int(time.time())


def _session_user() -> User | None:
    """The user of a live session: the cookie names a session id that logout has not revoked, idle
    no longer than REACTOR_SESSION_IDLE, at most SESSION_LIFETIME old, of a user who still exists
    (with the role they have now). Redis unreachable: 503 (fail closed)."""
    session_id, name, since = session.get("sid"), session.get("admin"), session.get("since")
    if not isinstance(session_id, str) or not isinstance(name, str):
        return None
    remaining = SESSION_LIFETIME.total_seconds() - (time.time() - since) if isinstance(since, int) else 0
    try:
        stored = _redis().get(_session_key(session_id))
        if stored is None or stored.decode() != name:
            return None
        if remaining <= 0:  # past its absolute lifetime (a session from before `since` was kept too)
            _redis().delete(_session_key(session_id))
            return None
        user = _users().get(name)
        if user is None:
            return None
        _redis().expire(_session_key(session_id), max(1, int(min(_idle_seconds(), remaining))))
    except redis.RedisError:
        abort(503, description="the dashboard cannot check sessions: Redis is unavailable")
    except UserError as exc:  # REACTOR_USERS_FILE unreadable: nobody is let in
        abort(503, description=str(exc))
    return user


def _session_live() -> bool:
    return _session_user() is not None


def _end_session() -> None:
    session_id = session.get("sid")
    if isinstance(session_id, str):
        try:
            _redis().delete(_session_key(session_id))
        except redis.RedisError:
            abort(503, description="Redis is unavailable: the session could not be ended; try again")
    session.clear()


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _check_csrf() -> None:
    sent = request.form.get("csrf", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="missing or stale form token; reload the page and try again")


check_csrf = _check_csrf  # for the forms of the dashboard's other modules (reactor/dashboard/diff.py)


@admin.app_context_processor
def _template_helpers() -> dict[str, Any]:
    """`csrf_token()` for the forms, `user` for the header (who is logged in) on every page, `may` for
    what the role allows, and the sites for the site selector (shown when there are several) with the
    page's own."""
    settings, scoped = _settings(), g.get("site_settings")
    return {
        "csrf_token": csrf_token,
        "user": g.get("admin_user"),
        "may": may,
        "sites": settings.site_names if settings.several_sites else (),
        "site": scoped.site_name if scoped is not None else "",
    }


def checked_invoice_id(invoice_id: str) -> str:
    """The invoice id of a dashboard URL, or 400 naming the rule (reactor/ids.py)."""
    if not ids.INVOICE.accepts(invoice_id):
        abort(400, description=f"not an invoice id: {ids.INVOICE.rule}")
    return invoice_id


def login_required(view: Any) -> Any:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = _session_user()
        if user is None:
            session.clear()
            return redirect(url_for("admin.login", next=request.full_path if request.query_string else request.path))
        g.admin_user, g.admin_role = user.name, user.role
        if g.get("site_refused"):
            abort(404, description=g.site_refused)
        return view(*args, **kwargs)

    return wrapped


def role_required(role: str) -> Any:
    """Below `login_required`: 403 for a logged-in user whose role is below `role`."""

    def decorate(view: Any) -> Any:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = User(g.admin_user, g.admin_role)
            if not user.may(role):
                abort(403, description=f"{user.name} has the role {user.role}; this needs an {role} or above")
            return view(*args, **kwargs)

        return wrapped

    return decorate


def current_person() -> str:
    """The logged-in user's name, as approvals record it."""
    return g.admin_user


def may(role: str) -> bool:
    """For templates: whether the logged-in user holds `role` (buttons shown only to them)."""
    return "admin_role" in g and User(g.admin_user, g.admin_role).may(role)


def _live_user() -> str | None:
    """Who is logged in, for an error page's header: None without a live session, or when Redis cannot
    say (the error page is shown all the same)."""
    try:
        return session.get("admin") if _session_live() else None
    except HTTPException:  # _session_live's 503: Redis is unavailable
        return None


@admin.after_request
def _no_cache(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@admin.errorhandler(HTTPException)
def _error_page(exc: HTTPException) -> Any:
    code = exc.code or 500
    if "admin_user" not in g:  # an error before login_required looked (a form token refused, a 404...)
        g.admin_user = _live_user()
    page = render_template("admin/error.html", code=code, name=exc.name, description=exc.description)
    response = make_response(page, code)
    for name, value in exc.get_headers():  # Retry-After on a 429, Allow on a 405
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


@admin.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        _check_csrf()
        limiter: FixedWindowRateLimiter = current_app.extensions["reactor.dashboard.views.limiter"]
        client = request.remote_addr or "unknown"
        name = request.form.get("user", "")[:64]
        for scope, who, what in (("login", client, "from this address"), ("login-user", name, "for this user")):
            if not limiter.test(LOGIN_LIMIT, scope, who):
                reset = limiter.get_window_stats(LOGIN_LIMIT, scope, who).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                raise TooManyRequests(
                    description=f"too many failed logins {what}; try again in {wait} seconds", retry_after=wait
                )
        try:
            user = _users().authenticate(name, request.form.get("password", ""))
        except UserError as exc:
            abort(503, description=str(exc))
        if user is not None:
            _start_session(user.name)
            log.info("admin login of %s (%s) from %s", user.name, user.role, client)
            return redirect(_safe_next(request.args.get("next")))
        limiter.hit(LOGIN_LIMIT, "login", client)
        limiter.hit(LOGIN_LIMIT, "login-user", name)
        log.warning("admin login failed from %s", client)
        error = "Wrong user name or password."
    return render_template("admin/login.html", error=error), 401 if error else 200


def _safe_next(target: str | None) -> str:
    """Where a login goes on to: `target` when it is a dashboard page (a path under /admin/ on this
    host), else home. A login link must not send anyone elsewhere, and a control character (CR or
    LF, even percent-encoded) or a backslash, which browsers read as a slash, never reaches the
    Location header: werkzeug refuses a header with a line break, which was a 500."""
    home = url_for("admin.dashboard")
    if not target or "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in unquote(target)):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not (parts.path == "/admin" or parts.path.startswith("/admin/")):
        return home
    return target


@admin.post("/logout")
def logout() -> Any:
    _check_csrf()
    _end_session()
    return redirect(url_for("admin.login"))


@admin.get("/")
@login_required
def dashboard() -> Any:
    settings, connection = site_settings(), _redis()
    filters = {name: (request.args.get(name) or "").strip() for name in ("invoice", "event", "rule", "outcome")}
    try:
        limit = int(request.args.get("limit", DECISION_LIMITS[0]))
    except ValueError:
        limit = DECISION_LIMITS[0]
    limit = limit if limit in DECISION_LIMITS else DECISION_LIMITS[0]
    decisions = _decisions(connection, settings, filters, limit)
    return render_template(
        "admin/dashboard.html",
        user=session.get("admin"),
        filters=filters,
        limit=limit,
        limits=DECISION_LIMITS,
        outcomes=sorted(OUTCOMES),
        decisions=decisions,
        undone=undone_write_offs(connection, settings.key_prefix, decisions),
        dead_letters=_dead_letters(connection, settings),
        held=list_held(connection, settings.key_prefix),
        recoveries=open_candidates(connection, Keys(settings.key_prefix)),
        rules=_rules_view(connection, _settings()),
        chart=write_off_chart(connection, settings, datetime.now(timezone.utc).date()),
        usage=_site_usage(connection),
    )


def _site_usage(connection: redis.Redis) -> list[Any]:
    """Every site's budgets used and Chargebee calls used (read only), for the front page."""
    live = current_app.extensions["reactor.rules"]
    try:
        limits = live.current().limits
    except RulesError:
        limits = None
    deployment = _settings()
    scoped = [deployment.for_site(name) for name in deployment.site_names]
    return site_usage(connection, scoped, limits, datetime.now(timezone.utc))


def _decisions(connection: redis.Redis, settings: Settings, filters: dict[str, str], limit: int) -> list[Any]:
    """Newest first. Invoice, event and outcome filter in AuditLog.query; the rule filter here."""
    audit = AuditLog(connection, Keys(settings.key_prefix).audit())
    records = audit.query(
        AuditFilter(
            invoice_id=filters["invoice"] or None,
            event_id=filters["event"] or None,
            outcomes=[filters["outcome"]] if filters["outcome"] else None,
        ),
        newest_first=True,
    )
    if filters["rule"]:
        records = (r for r in records if r.rule == filters["rule"])
    return list(itertools.islice(records, limit))


def _dead_letters(connection: redis.Redis, settings: Settings) -> list[Any]:
    return DeadLetters(connection, settings).list()


@admin.post("/dead-letters/<path:job_id>/replay")
@login_required
@role_required("approver")
def replay(job_id: str) -> Any:
    _check_csrf()
    if len(job_id) > MAX_JOB_ID_LENGTH or not JOB_ID_SAFE.fullmatch(job_id):
        abort(400, description="not a job id: at most 200 letters, digits, '_' or '-'")
    live = current_app.extensions["reactor.rules"]
    letters = DeadLetters(
        _redis(), site_settings(), rules_version=lambda: live.current().version, actor=f"admin:{session.get('admin')}"
    )
    try:
        letters.replay(job_id)
    except (DeadLetterError, KeyError) as exc:
        flash(str(exc.args[0] if exc.args else exc), "error")
    else:
        log.info("dead letter %s replayed from the dashboard", job_id, extra={"job_id": job_id})
        flash(f"Requeued {job_id}: it runs again on the current rules and a fresh invoice.", "ok")
    return redirect(url_for("admin.dashboard") + "#dead-letters")


def _rules_view(connection: redis.Redis, settings: Settings) -> dict[str, Any]:
    live = current_app.extensions["reactor.rules"]
    status = live.status(detail=True)  # behind the login: each problem's sentence, not just its kind
    try:
        ruleset = live.current()
    except RulesError:
        ruleset = None
    try:
        last_refused = RulesReloadReporter(connection, settings.deployment_key_prefix).last_refused()
    except redis.RedisError:
        last_refused = None
    return {"status": status, "rules": ruleset.rules if ruleset else (), "last_refused": last_refused}


# -- the chart -----------------------------------------------------------------------------------

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")


@dataclass(frozen=True)
class _Frame:
    """What every chart shares: `days` UTC days from `first`, drawn `width` x `height` pixels."""

    first: date
    days: int
    width: int = 600
    height: int = 120


def write_off_chart(connection: redis.Redis, settings: Settings, today: date, days: int = CHART_DAYS) -> dict[str, Any]:
    """Bars of the amount written off per UTC day, one small chart per currency (each its own scale:
    yen and dollars do not share an axis), net of undos: a day's bar is what still stands of that
    day's write-offs, and what was undone of them since is its own series stacked on it. Plain
    numbers for an inline SVG template."""
    first = today - timedelta(days=days - 1)
    daily = daily_write_offs(connection, Keys(settings.key_prefix).audit(), first, today)
    frame = _Frame(first, days)
    charts = []
    for index, currency in enumerate(daily.currencies()):
        net, undone = daily.net(currency), daily.undone.get(currency, {})
        gross = {day: max(amount, 0) + undone.get(day, 0) for day, amount in net.items()}
        peak = max(to_major(v, currency) for v in gross.values()) or 1
        written_total, undone_total, net_total = daily.totals(currency)
        charts.append(
            {
                "currency": currency,
                "color": PALETTE[index % len(PALETTE)],
                "bars": _bars({d: v for d, v in net.items() if v > 0}, currency, peak, frame),
                "undone_bars": _bars(undone, currency, peak, frame, below=net),
                "peak": f"{peak} {currency}",
                "total": f"{to_major(net_total, currency)} {currency}",
                "written_off": f"{to_major(written_total, currency)} {currency}",
                "undone": f"{to_major(undone_total, currency)} {currency}" if undone_total else None,
            }
        )
    return {
        "first": first.isoformat(),
        "last": today.isoformat(),
        "days": days,
        "width": frame.width,
        "height": frame.height,
        "charts": charts,
    }


def _bars(
    amounts: dict[date, int],
    currency: str,
    peak: Decimal | int,
    frame: _Frame,
    below: dict[date, int] | None = None,
) -> list[dict[str, Any]]:
    """One bar per day that has an amount, scaled to the currency's `peak` (major units); stacked on
    the day's amount in `below` when given (the undone part on what still stands)."""
    gap = 2
    height = frame.height
    bar_width = frame.width / frame.days - gap
    bars = []
    for offset in range(frame.days):
        day = frame.first + timedelta(days=offset)
        if not amounts.get(day):
            continue
        major = to_major(amounts[day], currency)
        floor = max((below or {}).get(day, 0), 0)
        base = float(to_major(floor, currency) / peak) * height
        bar_height = max(1.0, float(major / peak) * height)
        bars.append(
            {
                "x": round(offset * (bar_width + gap), 1),
                "y": round(max(height - base - bar_height, 0.0), 1),
                "width": round(bar_width, 1),
                "height": round(bar_height, 1),
                "label": f"{day.isoformat()}: {major} {currency}" + (" undone" if below is not None else ""),
            }
        )
    return bars
