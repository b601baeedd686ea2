"""The pure parts of reactor/ingest/guard.py: reading an address, matching it against the allow-list,
and the limiter's key for it."""

from __future__ import annotations

import pytest

from reactor.config import ConfigError, load_settings
from reactor.ingest.guard import UNPARSEABLE, WebhookGuard, is_allowed, parse_address, parse_networks

NETWORKS = parse_networks(("203.0.113.0/24", "2001:db8::/32"))


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("203.0.113.10", True),
        ("203.0.114.10", False),
        ("2001:db8::1", True),
        ("::ffff:203.0.113.10", True),  # IPv4 seen through an IPv6 socket
        ("2001:db9::1", False),
        ("not-an-address", False),
        ("", False),
        (None, False),
    ],
)
def test_only_addresses_inside_a_listed_network_are_allowed(address: str | None, allowed: bool) -> None:
    assert is_allowed(parse_address(address), NETWORKS) is allowed


def test_an_empty_allow_list_allows_everyone_even_an_unreadable_address() -> None:
    assert is_allowed(parse_address("garbage"), ())


def test_every_unreadable_address_shares_one_limiter_bucket() -> None:
    assert WebhookGuard.bucket("a, b") == WebhookGuard.bucket("x" * 500) == UNPARSEABLE
    assert WebhookGuard.bucket("::ffff:198.51.100.7") == "198.51.100.7"


def test_allow_list_cidrs_are_validated_when_settings_load() -> None:
    settings = load_settings({"REACTOR_WEBHOOK_ALLOW": " 203.0.113.7, 2001:db8::/32 ,"}, dotenv=False)
    assert settings.webhook_allow == ("203.0.113.7/32", "2001:db8::/32")
    with pytest.raises(ConfigError, match="REACTOR_WEBHOOK_ALLOW"):
        load_settings({"REACTOR_WEBHOOK_ALLOW": "203.0.113.0/33"}, dotenv=False)


def test_the_failure_limit_and_flags_are_validated_when_settings_load() -> None:
    with pytest.raises(ConfigError, match="REACTOR_AUTH_FAILURE_LIMIT"):
        load_settings({"REACTOR_AUTH_FAILURE_LIMIT": "lots"}, dotenv=False)
    with pytest.raises(ConfigError, match="REACTOR_VERIFY_EVENTS"):
        load_settings({"REACTOR_VERIFY_EVENTS": "maybe"}, dotenv=False)
    assert load_settings({"REACTOR_VERIFY_EVENTS": "1"}, dotenv=False).verify_events


def test_settings_repr_shows_no_secret() -> None:
    settings = load_settings(
        {
            "CHARGEBEE_API_BASE": "http://127.0.0.1:1/api/v2",
            "CHARGEBEE_API_KEY": "key-in-repr",
            "REACTOR_WEBHOOK_PASSWORD": "password-in-repr",
            "REACTOR_ADMIN_PASSWORD": "admin-in-repr",
            "REACTOR_SECRET_KEY": "signing-in-repr",
        },
        dotenv=False,
    )
    assert not any(secret in repr(settings) for secret in ("key-in", "password-in", "admin-in", "signing-in"))
