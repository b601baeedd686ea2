"""A deployment of two Chargebee sites for the ops surface's tests: `acme` (the home site, on the
`sandbox` fixture, keys under `reactor`) and `acme-eu` (a second sandbox process of its own, keys
under `reactor:site:acme-eu`), both in the one test Redis. Data is seeded per site through the
site-scoped settings (`settings.for_site(name)`) and the writers the jobs use."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner, Result

from reactor.cli import main
from reactor.config import Settings, load_settings
from reactor.sandbox import DEMO_API_KEY, SandboxServer
from tests.helpers import WEBHOOK_PASSWORD, WEBHOOK_USER
from tests.integration.ops_helpers import cli_env

HOME, OTHER = "acme", "acme-eu"


@dataclass
class TwoSites:
    """The deployment's settings and the environment its processes read."""

    settings: Settings
    env: dict[str, str]
    other_sandbox: SandboxServer

    def site(self, name: str) -> Settings:
        return self.settings.for_site(name)

    def reactor(self, *args: str, input: str | None = None) -> Result:
        """`reactor ARGS...` in-process with the two sites' environment; stdin not a terminal."""
        env = {**cli_env(self.settings), **self.env}
        return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def two_site_env(settings: Settings, other: SandboxServer) -> dict[str, str]:
    """The variables that add `acme-eu` to the test settings' site, which they name `acme`."""
    return {
        "CHARGEBEE_SITE": HOME,
        "REACTOR_SITES": f"{HOME},{OTHER}",
        "REACTOR_SITE_ACME_EU_API_KEY": DEMO_API_KEY,
        "REACTOR_SITE_ACME_EU_API_BASE": other.api_base,
        "REACTOR_SITE_ACME_EU_WEBHOOK_USER": WEBHOOK_USER + "-eu",
        "REACTOR_SITE_ACME_EU_WEBHOOK_PASSWORD": WEBHOOK_PASSWORD + "-eu",
    }


def load_two_sites(settings: Settings, other: SandboxServer) -> TwoSites:
    env = {k: v for k, v in cli_env(settings).items() if v is not None}
    env.update(
        REACTOR_WEBHOOK_USER=settings.webhook_user,
        REACTOR_WEBHOOK_PASSWORD=settings.webhook_password,
        REACTOR_ADMIN_USER=settings.admin_user,
        REACTOR_ADMIN_PASSWORD=settings.admin_password,
        REACTOR_ADMIN_INSECURE_COOKIE="1" if settings.admin_insecure_cookie else "0",
    )
    env.update(two_site_env(settings, other))
    if settings.notify_url:
        env.update(REACTOR_NOTIFY_URL=settings.notify_url, REACTOR_NOTIFY_INTERVAL=str(settings.notify_interval))
    loaded = load_settings({k: v for k, v in env.items() if v}, dotenv=False)
    return TwoSites(loaded.with_overrides(http_timeout=settings.http_timeout), two_site_env(settings, other), other)


@pytest.fixture
def other_sandbox() -> Iterator[SandboxServer]:
    """A second sandbox process: acme-eu's Chargebee."""
    with SandboxServer() as server:
        yield server
