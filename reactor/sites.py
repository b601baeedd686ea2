"""The Chargebee sites one deployment serves (`Site`), read from the environment by `read_sites`.

A site is a Chargebee account that "operates independently": its own API key, rate limit and
webhooks. Invoice, customer and event ids are unique only within a site, so everything the reactor
keeps for a site lives under that site's key prefix and its jobs go through that site's queue.

The *home* site is the one configured as before several sites existed (CHARGEBEE_SITE or
CHARGEBEE_API_BASE, CHARGEBEE_API_KEY, REACTOR_WEBHOOK_USER/PASSWORD): it keeps the deployment's
own key prefix and queue, so an upgrade finds its Redis data where it left it. Every site named in
REACTOR_SITES besides it is read from `REACTOR_SITE_<NAME>_*` variables (docs/configuration.md)
and lives under `<prefix>:site:<name>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOME_WITHOUT_NAME = "default"
"""The home site's name when only CHARGEBEE_API_BASE (or the sandbox) configures it."""

SITE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
"""A Chargebee site name as it appears in `<name>.chargebee.com`: lower-case letters, digits, dashes."""


class SiteConfigError(ValueError):
    """A site's settings are missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Site:
    """One Chargebee site: where its API is, how to call it, how its webhooks authenticate, and
    where its data lives in Redis."""

    name: str
    api_base: str | None
    api_key: str = field(default="", repr=False)
    rate_limit: int = 150
    webhook_user: str = ""
    webhook_password: str = field(default="", repr=False)
    home: bool = True

    def key_prefix(self, deployment_prefix: str) -> str:
        """Where this site's Redis keys live: the deployment's prefix for the home site (today's
        keys), `<prefix>:site:<name>` for the others. No key of the home site starts with
        `<prefix>:site:`, so a site's keys never meet another's."""
        return deployment_prefix if self.home else f"{deployment_prefix}:site:{self.name}"

    def queue_name(self, deployment_queue: str) -> str:
        """The RQ queue of this site's jobs: the deployment's queue for the home site."""
        return deployment_queue if self.home else f"{deployment_queue}:{self.name}"


def variable(name: str, suffix: str) -> str:
    """`REACTOR_SITE_<NAME>_<SUFFIX>`: the site name upper-cased, dashes as underscores."""
    return f"REACTOR_SITE_{name.upper().replace('-', '_')}_{suffix}"


def site_names(raw: str) -> tuple[str, ...]:
    """REACTOR_SITES: names separated by commas or blanks, each a Chargebee site name, none twice."""
    names = tuple(part for part in re.split(r"[\s,]+", raw.strip()) if part)
    for name in names:
        if not SITE_NAME.fullmatch(name):
            raise SiteConfigError(
                f"REACTOR_SITES: {name!r} is not a Chargebee site name (lower-case letters, digits and dashes, "
                "as in <name>.chargebee.com)"
            )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SiteConfigError(f"REACTOR_SITES names {', '.join(twice)} more than once")
    return names


def _api_key(env: Mapping[str, str], name: str) -> str:
    """REACTOR_SITE_<NAME>_API_KEY, or the first line of the file REACTOR_SITE_<NAME>_API_KEY_FILE names
    (a secret mounted by the platform); exactly one of them."""
    inline, path = variable(name, "API_KEY"), variable(name, "API_KEY_FILE")
    value, file = env.get(inline, "").strip(), env.get(path, "").strip()
    if value and file:
        raise SiteConfigError(f"set {inline} or {path} for site {name!r}, not both")
    if file:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SiteConfigError(f"{path}: cannot read the API key file ({exc.__class__.__name__})") from None
        if not value or "\n" in value:
            raise SiteConfigError(f"{path}: the file must hold the API key alone, on one line")
    if not value:
        raise SiteConfigError(f"{inline} (or {path}) is required for site {name!r} named in REACTOR_SITES")
    return value


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SiteConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise SiteConfigError(f"{name} must be at least 1, got {value}")
    return value


def read_site(env: Mapping[str, str], name: str, *, rate_limit: int, webhook_auth: str) -> Site:
    """A site named in REACTOR_SITES, from its `REACTOR_SITE_<NAME>_*` variables."""
    api_key = _api_key(env, name)
    api_base = env.get(variable(name, "API_BASE"), "").strip().rstrip("/") or f"https://{name}.chargebee.com/api/v2"
    user, password = env.get(variable(name, "WEBHOOK_USER"), ""), env.get(variable(name, "WEBHOOK_PASSWORD"), "")
    if webhook_auth == "basic" and not (user and password):
        raise SiteConfigError(
            f"{variable(name, 'WEBHOOK_USER')} and {variable(name, 'WEBHOOK_PASSWORD')} are required for site "
            f"{name!r}: each site's webhooks have their own Basic auth"
        )
    return Site(
        name=name,
        api_base=api_base,
        api_key=api_key,
        rate_limit=_positive(env, variable(name, "RATE_LIMIT"), rate_limit),
        webhook_user=user,
        webhook_password=password,
        home=False,
    )
