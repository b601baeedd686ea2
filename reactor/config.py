"""Settings, read once from the environment (and an optional `.env`) and validated at start.

Everything below `config` receives a `Settings`; nothing else reads `os.environ`, so a test
builds the settings it wants and passes them in.
"""

from __future__ import annotations

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
    chargebee_api_key: str = ""
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
    job_timeout: int = 120
    lock_ttl: int = 150
    redis_socket_timeout: float = 2.0

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

    return Settings(
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
        job_timeout=_int(env, "REACTOR_JOB_TIMEOUT", 120, minimum=5),
    )


def require_webhook_credentials(settings: Settings) -> None:
    """The web process refuses to start open to the internet by accident."""
    if settings.webhook_auth == "basic" and not (settings.webhook_user and settings.webhook_password):
        raise ConfigError(
            "REACTOR_WEBHOOK_USER and REACTOR_WEBHOOK_PASSWORD are required "
            "(the Basic-auth credentials set on the Chargebee webhook); "
            "set REACTOR_WEBHOOK_AUTH=none to accept unauthenticated deliveries"
        )
