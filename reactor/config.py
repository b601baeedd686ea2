"""Settings, read once from the environment (and an optional `.env`) and validated at start.

Everything below `config` receives a `Settings`; nothing else reads `os.environ`, so a test
builds the settings it wants and passes them in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_RETRY_INTERVALS = (10, 30, 120, 600, 1800)
"""Seconds between attempts of a failing Chargebee call (429/5xx/timeouts): about 45 minutes in all
before the job is left in the dead-letter registry. A Retry-After from Chargebee lengthens a step."""


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    chargebee_site: str | None = None
    chargebee_api_key: str = field(default="", repr=False)
    chargebee_api_base: str | None = None
    webhook_auth: str = "basic"  # "basic" | "none"
    webhook_user: str = ""
    webhook_password: str = field(default="", repr=False)
    rules_path: Path = Path("rules.yaml")
    port: int = 8000
    var_dir: Path = Path("var")
    queue_name: str = "reactor"
    key_prefix: str = "reactor"
    max_body_bytes: int = 1024 * 1024
    dedupe_ttl: int = 4 * 24 * 3600
    event_ttl: int = 30 * 24 * 3600
    http_timeout: float = 20.0
    retry_intervals: tuple[int, ...] = DEFAULT_RETRY_INTERVALS
    job_timeout: int = 180
    lock_ttl: int = 0  # 0: derived, see invoice_lock_ttl
    redis_socket_timeout: float = 2.0
    admin_user: str = ""  # the /admin dashboard is off (404) until both are set
    admin_password: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)  # signs dashboard sessions; unset: one kept in Redis
    admin_insecure_cookie: bool = False  # True: the dashboard's cookie lacks `Secure` (plain-HTTP use only)
    chargebee_rate_limit: int = 150  # calls per window, shared by every worker (test sites: 150/min)
    rate_limit_window: int = 60  # seconds; Chargebee counts per minute, tests shorten it
    rate_limit_max_wait: float = 10.0  # longest a call waits for a slot before its job is deferred
    abandoned_after: int = 60  # seconds without a worker heartbeat before a started job is retried
    maintenance_interval: int = 30  # how often workers look for abandoned jobs
    worker_class: str = "fork"  # "fork": a work horse per job (isolation); "simple": jobs run in the worker process
    sweep_cron: str = "0 */6 * * *"  # when `reactor cron` runs the sweep; "" = never
    sweep_interval: int = 0  # seconds between sweeps instead of sweep_cron (0 = use sweep_cron)
    verify_events: bool = False  # re-fetch every event from Chargebee and act only on its copy
    webhook_allow: tuple[str, ...] = ()  # CIDRs the webhook accepts; empty: any address (docs/security.md)
    trusted_proxies: int = 0  # proxies in front of the web whose X-Forwarded-For entries are believed
    auth_failure_limit: str = "20/minute"  # failed webhook logins per client address before 429

    @property
    def invoice_lock_ttl(self) -> int:
        """How long a per-invoice lock outlives its last renewal. The holder renews it before each
        Chargebee call, so it must cover one call: a wait for a rate-limit slot plus the HTTP timeout,
        plus a margin. A holder that dies (SIGKILL) blocks its invoice for at most this long."""
        return self.lock_ttl or math.ceil(self.http_timeout + self.rate_limit_max_wait) + 5

    @property
    def heartbeat_interval(self) -> int:
        """How often a busy worker tells Redis it is alive; a third of the abandonment delay."""
        return max(1, self.abandoned_after // 3)

    @property
    def sandbox_mode(self) -> bool:
        """No Chargebee configured: the reactor talks to its local stand-in."""
        return not self.chargebee_site and not self.chargebee_api_base

    @property
    def api_base(self) -> str | None:
        if self.chargebee_api_base:
            return self.chargebee_api_base.rstrip("/")
        if self.chargebee_site:
            return f"https://{self.chargebee_site}.chargebee.com/api/v2"
        return None

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _intervals(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return DEFAULT_RETRY_INTERVALS
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated seconds, e.g. 10,30,120; got {raw!r}") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{name} must list one or more non-negative seconds, got {raw!r}")
    return values


def _cron(env: Mapping[str, str], name: str, default: str) -> str:
    """A five-field cron expression (UTC), or empty to disable."""
    if name not in env:
        return default
    value = " ".join(env[name].split())
    if value:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ConfigError(f"{name} must be a cron expression such as '0 */6 * * *' (or empty), got {value!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128), validated now, not on the first request."""
    import ipaddress

    networks = []
    for part in filter(None, (p.strip() for p in env.get(name, "").split(","))):
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(f"{name}: {part!r} is not an IP network such as 203.0.113.0/24") from None
    return tuple(networks)


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    from limits import parse

    raw = env.get(name, "").strip() or default
    try:
        parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a rate such as 20/minute, got {raw!r}") from None
    return raw


WORKER_CLASSES = ("fork", "simple")


def _worker_class(env: Mapping[str, str]) -> str:
    """REACTOR_WORKER_CLASS: how RQ runs a job (docs/benchmarks.md has the figures behind the default)."""
    value = env.get("REACTOR_WORKER_CLASS", "").strip().lower() or Settings.worker_class
    if value not in WORKER_CLASSES:
        raise ConfigError(f"REACTOR_WORKER_CLASS must be 'fork' or 'simple', got {value!r}")
    return value


def load_settings(env: Mapping[str, str] | None = None, dotenv: bool = True) -> Settings:
    """Build and validate settings. `.env` in the working directory fills unset variables."""
    if env is None:
        merged = dict(os.environ)
        if dotenv and Path(".env").is_file():
            from dotenv import dotenv_values

            for key, value in dotenv_values(".env").items():
                if value is not None:
                    merged.setdefault(key, value)
        env = merged

    auth = env.get("REACTOR_WEBHOOK_AUTH", "basic").strip().lower() or "basic"
    if auth not in ("basic", "none"):
        raise ConfigError(f"REACTOR_WEBHOOK_AUTH must be 'basic' or 'none', got {auth!r}")
    user = env.get("REACTOR_WEBHOOK_USER", "")
    password = env.get("REACTOR_WEBHOOK_PASSWORD", "")
    site = env.get("CHARGEBEE_SITE", "").strip() or None
    api_base = env.get("CHARGEBEE_API_BASE", "").strip() or None
    api_key = env.get("CHARGEBEE_API_KEY", "").strip()
    if (site or api_base) and not api_key:
        raise ConfigError("CHARGEBEE_API_KEY is required when CHARGEBEE_SITE or CHARGEBEE_API_BASE is set")
    if site and ("." in site or "/" in site):
        raise ConfigError(f"CHARGEBEE_SITE is the site name only (e.g. 'acme-test'), got {site!r}")

    settings = Settings(
        redis_url=env.get("REDIS_URL", "").strip() or None,
        chargebee_site=site,
        chargebee_api_key=api_key,
        chargebee_api_base=api_base,
        webhook_auth=auth,
        webhook_user=user,
        webhook_password=password,
        rules_path=Path(env.get("REACTOR_RULES", "").strip() or "rules.yaml"),
        port=_int(env, "PORT", 8000, minimum=1),
        var_dir=Path(env.get("REACTOR_VAR_DIR", "").strip() or "var"),
        queue_name=env.get("REACTOR_QUEUE", "").strip() or "reactor",
        max_body_bytes=_int(env, "REACTOR_MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        dedupe_ttl=_int(env, "REACTOR_DEDUPE_TTL", 4 * 24 * 3600, minimum=3 * 24 * 3600 + 7 * 3600),
        event_ttl=_int(env, "REACTOR_EVENT_TTL", 30 * 24 * 3600, minimum=4 * 24 * 3600),
        http_timeout=_float(env, "REACTOR_HTTP_TIMEOUT", 20.0),
        retry_intervals=_intervals(env, "REACTOR_RETRY_INTERVALS"),
        job_timeout=_int(env, "REACTOR_JOB_TIMEOUT", 180, minimum=5),
        admin_user=env.get("REACTOR_ADMIN_USER", "").strip(),
        admin_password=env.get("REACTOR_ADMIN_PASSWORD", ""),
        secret_key=env.get("REACTOR_SECRET_KEY", ""),
        admin_insecure_cookie=_flag(env, "REACTOR_ADMIN_INSECURE_COOKIE"),
        lock_ttl=_int(env, "REACTOR_LOCK_TTL", 0, minimum=0),
        chargebee_rate_limit=_int(env, "REACTOR_CHARGEBEE_RATE_LIMIT", 150, minimum=1),
        rate_limit_window=_int(env, "REACTOR_RATE_LIMIT_WINDOW", 60, minimum=1),
        rate_limit_max_wait=_float(env, "REACTOR_RATE_LIMIT_MAX_WAIT", 10.0),
        abandoned_after=_int(env, "REACTOR_ABANDONED_AFTER", 60, minimum=3),
        maintenance_interval=_int(env, "REACTOR_MAINTENANCE_INTERVAL", 30, minimum=1),
        worker_class=_worker_class(env),
        verify_events=_flag(env, "REACTOR_VERIFY_EVENTS"),
        sweep_cron=_cron(env, "REACTOR_SWEEP_CRON", Settings.sweep_cron),
        sweep_interval=_int(env, "REACTOR_SWEEP_INTERVAL", 0, minimum=0),
        webhook_allow=_networks(env, "REACTOR_WEBHOOK_ALLOW"),
        trusted_proxies=_int(env, "REACTOR_TRUSTED_PROXIES", 0, minimum=0),
        auth_failure_limit=_rate(env, "REACTOR_AUTH_FAILURE_LIMIT", "20/minute"),
    )
    check_timeouts(settings)
    return settings


JOB_CHARGEBEE_CALLS = 4


def check_timeouts(settings: Settings) -> None:
    """Refuse timeouts that contradict each other: a job must be able to wait out a dead holder's
    invoice lock and then make its Chargebee calls (each after a rate-limit wait) before RQ kills it,
    and the lock must outlast one call, or two jobs could call Chargebee for one invoice at once.
    A write-off makes at most JOB_CHARGEBEE_CALLS calls: the invoice, the customer and the
    subscription a rule reads (reactor/jobs/facts.py), and write_off itself."""
    call = settings.http_timeout + settings.rate_limit_max_wait
    if settings.invoice_lock_ttl <= call:
        raise ConfigError(
            f"REACTOR_LOCK_TTL ({settings.invoice_lock_ttl}s) must exceed REACTOR_HTTP_TIMEOUT + "
            f"REACTOR_RATE_LIMIT_MAX_WAIT ({call:g}s): the lock must outlive one Chargebee call"
        )
    needed = settings.invoice_lock_ttl + JOB_CHARGEBEE_CALLS * call
    if settings.job_timeout < needed:
        raise ConfigError(
            f"REACTOR_JOB_TIMEOUT ({settings.job_timeout}s) must be at least the invoice lock TTL plus "
            f"{JOB_CHARGEBEE_CALLS} Chargebee calls with their rate-limit waits ({needed:g}s)"
        )


def require_webhook_credentials(settings: Settings) -> None:
    """The web process refuses to start open to the internet by accident."""
    if settings.webhook_auth == "basic" and not (settings.webhook_user and settings.webhook_password):
        raise ConfigError(
            "REACTOR_WEBHOOK_USER and REACTOR_WEBHOOK_PASSWORD are required "
            "(the Basic-auth credentials set on the Chargebee webhook); "
            "set REACTOR_WEBHOOK_AUTH=none to accept unauthenticated deliveries"
        )
