"""`reactor run` and `reactor web`: start the processes and the local stand-ins they need.

`reactor run` is the one-command local setup: an embedded redis-server (AOF on, data in ./var/redis/,
kept from one run to the next; `--fresh` deletes it first) when REDIS_URL is unset, the Chargebee
sandbox when no site is configured (in memory: its demo invoices start again at every run), then
the web process (gunicorn) and a worker with its scheduler. It says "Ready." once the web accepts
connections. A part that dies is started again (the embedded Redis too, on its port and data
directory); Ctrl-C stops everything.
In sandbox mode (no Chargebee configured) it fills in what a first run lacks with demo values that
are printed and never used against a real Chargebee: the webhook's credentials and the dashboard's
login (`sandbox_dashboard`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path

import click
import redis

from ..config import ConfigError, Settings, log_settings, require_webhook_credentials, web_server_settings
from ..logs import wants_json
from ..sites import variable
from .children import Child, EmbeddedRedisChild, start_children, stop_all, supervise
from .redis_server import EmbeddedRedis, free_port

log = logging.getLogger(__name__)
# What `reactor run` says it started, and where (the dashboard's login too), is shown whatever
# REACTOR_LOG_LEVEL says: that setting quiets the processes' routine lines, not this summary.
log.setLevel(logging.INFO)

DEV_WEBHOOK_USER = "reactor"
DEV_WEBHOOK_PASSWORD = "sandbox-only-password"
DEV_ADMIN_USER = "admin"
DEV_ADMIN_PASSWORD = "sandbox-only-dashboard"
# The Procfile's web process, after the Python interpreter.
WEB_COMMAND = ("-m", "gunicorn", "-c", "python:reactor.gunicorn_conf", "reactor.web:create_app()")


def require_free_port(host: str, port: int) -> None:
    """Refuse a port something already listens on. gunicorn's workers bind with SO_REUSEPORT
    (reactor.gunicorn_conf), which would otherwise share the port with that listener silently."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed port in TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            message = f"cannot listen on {host}:{port}: {exc.strerror} (another reactor running?)"
            raise click.ClickException(message) from None


def check_web_env(env: Mapping[str, str]) -> None:
    """Refuse, in one line, a variable reactor.gunicorn_conf would refuse in the web process (and
    WEB_CONCURRENCY, which gunicorn itself reads with int() before our config file runs)."""
    try:
        web_server_settings(env)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def serve_web(settings: Settings, env: Mapping[str, str], host: str, port: int, workers: int) -> None:
    """Exec gunicorn with our config, as the Procfile does, in `env` with the address and the
    worker count (a WEB_CONCURRENCY already in `env` wins) that reactor.gunicorn_conf reads."""
    try:
        require_webhook_credentials(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    child = {**env, "PORT": str(port), "HOST": host}
    child.setdefault("WEB_CONCURRENCY", str(workers))
    check_web_env(child)
    require_free_port(host, port)
    os.execve(sys.executable, [sys.executable, *WEB_COMMAND], child)


def sandbox_dashboard(settings: Settings, host: str = "127.0.0.1") -> dict[str, str]:
    """The variables `reactor run` gives its processes so that the dashboard is on in sandbox mode:
    the demo login when no REACTOR_ADMIN_USER and REACTOR_ADMIN_PASSWORD are set, and a session
    cookie without `Secure`, as the local run is plain HTTP. The demo login's password is published,
    so it is given only to a web listening on the loopback (`--host 0.0.0.0` needs a login of one's
    own). Outside sandbox mode, nothing: the dashboard stays as configured (off until both are set),
    its cookie `Secure`."""
    if not settings.sandbox_mode:
        return {}
    extra = {"REACTOR_ADMIN_INSECURE_COOKIE": "1"}
    if not (settings.admin_user and settings.admin_password) and is_loopback(host):
        extra.update(REACTOR_ADMIN_USER=DEV_ADMIN_USER, REACTOR_ADMIN_PASSWORD=DEV_ADMIN_PASSWORD)
    return extra


def is_loopback(host: str) -> bool:
    """Whether a listening address is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dashboard_line(settings: Settings, extra: Mapping[str, str], base_url: str) -> str:
    """What `reactor run` says about the dashboard: its URL and who logs in; the password only when
    it is the demo one (a configured password is a secret and never printed)."""
    demo_password = extra.get("REACTOR_ADMIN_PASSWORD")
    if demo_password:
        login = f"user {extra['REACTOR_ADMIN_USER']!r}, password {demo_password!r}; sandbox only"
    elif settings.admin_user and settings.admin_password:
        login = f"user {settings.admin_user!r}, password in REACTOR_ADMIN_PASSWORD"
    elif settings.sandbox_mode:
        return (
            "Dashboard: off (the demo login is only offered on a loopback --host; "
            "set REACTOR_ADMIN_USER and REACTOR_ADMIN_PASSWORD to turn it on)"
        )
    else:
        return "Dashboard: off (set REACTOR_ADMIN_USER and REACTOR_ADMIN_PASSWORD to turn it on)"
    return f"Dashboard: {base_url}/admin/  ({login})"


def embedded_url_file(settings: Settings) -> Path:
    """Where `reactor run` records the URL of the embedded Redis it started, for the other commands."""
    return settings.var_dir / "redis.url"


def sandbox_url_file(settings: Settings) -> Path:
    """Where `reactor run` records the API base of the local sandbox it started (removed on stop)."""
    return settings.var_dir / "sandbox.url"


def embedded_data_dir(settings: Settings) -> Path:
    """Where the embedded Redis of `reactor run` keeps its data (its AOF), and `--fresh` clears it."""
    return settings.var_dir / "redis"


def refuse_fresh_with_redis_url(settings: Settings) -> None:
    """`--fresh` clears the embedded Redis's data only: a configured Redis is never flushed."""
    if settings.redis_url:
        raise click.ClickException(
            "--fresh starts the embedded Redis empty (it deletes var/redis/), and REDIS_URL is set: a configured "
            "Redis is never flushed by the reactor. Unset REDIS_URL to start a fresh local run, or empty that "
            "Redis yourself"
        )


def _start_embedded_redis(settings: Settings, stack: ExitStack, fresh: bool = False) -> EmbeddedRedis:
    marker = embedded_url_file(settings)
    if marker.exists():
        url = marker.read_text().strip()
        try:
            if redis.Redis.from_url(url, socket_connect_timeout=0.5).ping():
                raise click.ClickException(
                    f"an embedded Redis is already running for {settings.var_dir}/ at {url}: "
                    "another `reactor run` in this directory? Stop it first."
                )
        except redis.RedisError:
            pass  # stale marker from a run that was killed
    data_dir = embedded_data_dir(settings)
    if fresh and data_dir.exists():  # no Redis runs on it (above), so nothing is lost mid-write
        shutil.rmtree(data_dir)
        log.info("Redis:     --fresh: deleted %s/ (decisions, audit trail, marks); starting empty", data_dir)
    server = EmbeddedRedis(data_dir, port=free_port(), binary=settings.redis_server_binary)
    stack.callback(server.stop)  # before start(): a stop requested while it starts must stop it too
    server.start()
    marker.write_text(server.url + "\n")
    stack.callback(lambda: marker.unlink(missing_ok=True))
    log.info("Redis:     embedded redis-server at %s (AOF on, data in %s/redis/)", server.url, settings.var_dir)
    return server


def _start_sandbox(
    settings: Settings,
    port: int,
    webhook_url: str,
    user: str,
    password: str,
    stack: ExitStack,
    api_key: str | None = None,
    site: str | None = None,
    record: bool = True,
) -> tuple[str, str]:
    from ..sandbox import DEMO_API_KEY, SandboxServer, SandboxState, seed_demo  # late: start-up time (Flask)

    api_key = api_key or DEMO_API_KEY
    state = SandboxState(api_key=api_key, site=site or "sandbox")
    invoices = seed_demo(state)
    try:
        server = SandboxServer(state=state, port=port).start()
    except OSError:
        server = SandboxServer(state=state, port=0).start()
    stack.callback(server.stop)
    # Where Chargebee would send follow-up webhooks: to us. With the skip header none are sent.
    state.set_webhook_target(webhook_url, user, password)
    if record:
        # Where the `reactor` commands of this directory (sweep, rules explain --invoice-id) find it, as
        # they find the embedded Redis in redis.url; removed when this run stops. With several sandbox
        # sites, the first (the home site) is recorded.
        marker = sandbox_url_file(settings)
        marker.write_text(server.api_base + "\n")
        stack.callback(lambda: marker.unlink(missing_ok=True))
    named = f" for site {site}" if site else " (no CHARGEBEE_SITE set)"
    log.info("Chargebee: local sandbox%s at %s, %d demo invoices", named, server.api_base, len(invoices))
    return server.api_base, api_key


def _start_sandbox_sites(
    settings: Settings,
    names: tuple[str, ...],
    port: int,
    base_url: str,
    user: str,
    password: str,
    stack: ExitStack,
) -> dict[str, str]:
    """One sandbox per name, each on its own port with its own API key and its own demo invoices (the
    same ids on each: two sites' invoices), and the environment that makes them the deployment's
    sites: the first is the home site (CHARGEBEE_SITE, its webhook /webhooks/chargebee), the others
    are REACTOR_SITES with their REACTOR_SITE_<NAME>_* and their own webhook credentials."""
    from ..sandbox import DEMO_API_KEY  # late: start-up time (Flask)

    env: dict[str, str] = {}
    for index, name in enumerate(names):
        home = index == 0
        site_user, site_password = (user, password) if home else (f"{user}-{name}", f"{password}-{name}")
        url = f"{base_url}/webhooks/chargebee" if home else f"{base_url}/webhooks/chargebee/{name}"
        api_key = f"{DEMO_API_KEY}_{name.replace('-', '_')}"
        api_base, _ = _start_sandbox(
            settings, port + index, url, site_user, site_password, stack, api_key, name, record=home
        )
        if home:
            env.update(CHARGEBEE_SITE=name, CHARGEBEE_API_BASE=api_base, CHARGEBEE_API_KEY=api_key)
            continue
        env[variable(name, "API_KEY")], env[variable(name, "API_BASE")] = api_key, api_base
        env[variable(name, "WEBHOOK_USER")], env[variable(name, "WEBHOOK_PASSWORD")] = site_user, site_password
        log.info("Webhook:   POST %s  (site %s, Basic auth user %r)", url, name, site_user)
    env["REACTOR_SITES"] = ",".join(names[1:])
    return env


def _ready_once_listening(host: str, port: int) -> Callable[[], bool]:
    """A check that says "Ready." once the web accepts a connection on its port (gunicorn takes a
    second or two to load the app and bind), and answers whether it has."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)

    def ready() -> bool:
        try:
            socket.create_connection((target, port), timeout=0.5).close()
        except OSError:
            return False
        log.info("Ready. Ctrl-C stops everything.")
        return True

    return ready


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_all(
    settings: Settings,
    env: Mapping[str, str],
    host: str,
    port: int | None,
    sandbox_port: int,
    fresh: bool = False,
    sandbox_sites: tuple[str, ...] = (),
) -> int:
    """Start everything `reactor run` needs and watch it; the children get `env` and what they share.
    Its lines and theirs go to the same stderr in one format: text on a terminal, JSON lines off one
    (REACTOR_LOG_FORMAT decides otherwise, for all of them). `fresh` starts the embedded Redis empty.
    `sandbox_sites` (sandbox mode only): one sandbox per name, served as that many Chargebee sites."""
    json_lines = wants_json(log_settings(env).json_lines)
    # Until `supervise` takes SIGTERM over, it unwinds what has been started, as Ctrl-C does: the
    # default action would end this process at once and leave Redis (a session of its own) running.
    signal.signal(signal.SIGTERM, _interrupt)
    port = port or settings.port
    if fresh:
        refuse_fresh_with_redis_url(settings)
    check_web_env({**env, "PORT": str(port), "HOST": host})  # before anything starts
    require_free_port(host, port)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    child_env = dict(env)
    with ExitStack() as stack:
        embedded = None
        if settings.redis_url:
            child_env["REDIS_URL"] = settings.redis_url
        else:
            embedded = _start_embedded_redis(settings, stack, fresh)
            child_env["REDIS_URL"] = embedded.url
        user, password = settings.webhook_user, settings.webhook_password
        if settings.webhook_auth == "basic" and not (user and password):
            if not settings.sandbox_mode:
                raise click.ClickException(
                    "set REACTOR_WEBHOOK_USER and REACTOR_WEBHOOK_PASSWORD (the credentials on your Chargebee webhook)"
                )
            user, password = DEV_WEBHOOK_USER, DEV_WEBHOOK_PASSWORD
            child_env["REACTOR_WEBHOOK_USER"], child_env["REACTOR_WEBHOOK_PASSWORD"] = user, password
        base_url = f"http://127.0.0.1:{port}"
        webhook_url = f"{base_url}/webhooks/chargebee"
        dashboard = sandbox_dashboard(settings, host)
        child_env.update(dashboard)
        if settings.sandbox_mode and len(sandbox_sites) > 1:
            child_env.update(
                _start_sandbox_sites(settings, sandbox_sites, sandbox_port, base_url, user, password, stack)
            )
        elif settings.sandbox_mode:
            api_base, api_key = _start_sandbox(settings, sandbox_port, webhook_url, user, password, stack)
            child_env["CHARGEBEE_API_BASE"], child_env["CHARGEBEE_API_KEY"] = api_base, api_key
        else:
            log.info("Chargebee: %s", settings.api_base)
        child_env["PORT"], child_env["HOST"] = str(port), host
        child_env.setdefault("WEB_CONCURRENCY", "2")
        child_env["REACTOR_LOG_FORMAT"] = "json" if json_lines else "text"
        python = sys.executable
        # Each in a session of its own, so that Ctrl-C reaches only this process, which then stops
        # them once each (a second signal makes an RQ worker kill its running job) and Redis last;
        # one that dies meanwhile is started again (reactor/local/children.py).
        commands = {
            "web": [python, *WEB_COMMAND],
            "worker": [python, "-m", "reactor", "worker"],
            "cron": [python, "-m", "reactor", "cron"],
        }
        children: dict[str, Child] = {}
        stack.callback(stop_all, children)
        start_children(commands, child_env, into=children)
        log.info("Rules:     %s", Path(settings.rules_path).resolve())
        log.info("Webhook:   POST %s  (Basic auth user %r)", webhook_url, user)
        log.info("%s", dashboard_line(settings, dashboard, base_url))
        redis_child = EmbeddedRedisChild(embedded) if embedded else None
        return supervise(children, redis_child, ready=_ready_once_listening(host, port))
