"""Several Chargebee sites in one deployment: how REACTOR_SITES and `REACTOR_SITE_<NAME>_*` are read."""

from __future__ import annotations

import pytest

from reactor.config import ConfigError, load_settings

HOME = {
    "CHARGEBEE_SITE": "acme",
    "CHARGEBEE_API_KEY": "key_home",
    "REACTOR_WEBHOOK_USER": "cb",
    "REACTOR_WEBHOOK_PASSWORD": "pw_home",
}
EU = {
    "REACTOR_SITE_ACME_EU_API_KEY": "key_eu",
    "REACTOR_SITE_ACME_EU_WEBHOOK_USER": "cb-eu",
    "REACTOR_SITE_ACME_EU_WEBHOOK_PASSWORD": "pw_eu",
}


def test_without_reactor_sites_the_one_site_keeps_todays_keys_and_queue() -> None:
    settings = load_settings(HOME, dotenv=False)
    assert settings.site_names == ("acme",) and not settings.several_sites
    scoped = settings.for_site("acme")
    assert (scoped.key_prefix, scoped.queue_name, scoped.api_base) == (
        "reactor",
        "reactor",
        "https://acme.chargebee.com/api/v2",
    )
    assert scoped.chargebee_api_key == "key_home" and scoped.webhook_password == "pw_home"


def test_the_sandbox_is_the_home_site_named_default() -> None:
    settings = load_settings({}, dotenv=False)
    assert settings.sandbox_mode and settings.site_names == ("default",)
    assert settings.for_site("default").key_prefix == "reactor"


def test_a_second_site_lives_under_its_own_prefix_queue_key_and_credentials() -> None:
    settings = load_settings({**HOME, **EU, "REACTOR_SITES": "acme, acme-eu"}, dotenv=False)
    assert settings.site_names == ("acme", "acme-eu") and settings.several_sites and not settings.sandbox_mode
    eu = settings.for_site("acme-eu")
    assert eu.key_prefix == "reactor:site:acme-eu" and eu.queue_name == "reactor:acme-eu"
    assert eu.api_base == "https://acme-eu.chargebee.com/api/v2" and eu.chargebee_api_key == "key_eu"
    assert (eu.webhook_user, eu.webhook_password) == ("cb-eu", "pw_eu") and eu.site_name == "acme-eu"
    assert eu.deployment_key_prefix == "reactor"
    # scoping twice does not nest prefixes
    assert eu.for_site("acme").key_prefix == "reactor" and eu.for_site("acme-eu").key_prefix == eu.key_prefix
    # the home site keeps its own
    assert settings.for_site("acme").chargebee_api_key == "key_home"


def test_sites_without_a_home_site() -> None:
    settings = load_settings({**EU, "REACTOR_SITES": "acme-eu"}, dotenv=False)
    assert settings.site_names == ("acme-eu",) and settings.home_site is None and not settings.sandbox_mode


def test_each_site_may_have_its_own_rate_limit_and_api_base() -> None:
    env = {
        **EU,
        "REACTOR_SITES": "acme-eu",
        "REACTOR_SITE_ACME_EU_RATE_LIMIT": "40",
        "REACTOR_SITE_ACME_EU_API_BASE": "http://127.0.0.1:9/api/v2/",
        "REACTOR_CHARGEBEE_RATE_LIMIT": "90",
    }
    eu = load_settings(env, dotenv=False).for_site("acme-eu")
    assert eu.chargebee_rate_limit == 40 and eu.api_base == "http://127.0.0.1:9/api/v2"
    del env["REACTOR_SITE_ACME_EU_RATE_LIMIT"]
    assert load_settings(env, dotenv=False).for_site("acme-eu").chargebee_rate_limit == 90


def test_the_api_key_may_come_from_a_file(tmp_path) -> None:
    key = tmp_path / "key"
    key.write_text("key_from_file\n")
    env = {k: v for k, v in EU.items() if not k.endswith("API_KEY")}
    env |= {"REACTOR_SITES": "acme-eu", "REACTOR_SITE_ACME_EU_API_KEY_FILE": str(key)}
    settings = load_settings(env, dotenv=False)
    assert settings.for_site("acme-eu").chargebee_api_key == "key_from_file"
    assert "key_from_file" in settings.secrets


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"REACTOR_SITES": "acme-eu"},
            "REACTOR_SITE_ACME_EU_API_KEY (or REACTOR_SITE_ACME_EU_API_KEY_FILE) is required",
        ),
        ({**EU, "REACTOR_SITES": "Acme.EU"}, "'Acme.EU' is not a Chargebee site name"),
        ({**EU, "REACTOR_SITES": "acme-eu,acme-eu"}, "names acme-eu more than once"),
        (
            {"REACTOR_SITES": "acme-eu", "REACTOR_SITE_ACME_EU_API_KEY": "k"},
            "REACTOR_SITE_ACME_EU_WEBHOOK_USER and REACTOR_SITE_ACME_EU_WEBHOOK_PASSWORD are required",
        ),
        ({**EU, "REACTOR_SITES": "acme-eu", "REACTOR_SITE_ACME_EU_RATE_LIMIT": "0"}, "must be at least 1"),
        ({**EU, "REACTOR_SITES": "acme-eu", "REACTOR_SITE_ACME_EU_API_KEY_FILE": "/nonexistent"}, "not both"),
    ],
)
def test_a_bad_site_setting_is_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_settings(env, dotenv=False)


def test_an_unknown_site_is_refused_with_the_names_there_are() -> None:
    settings = load_settings({**HOME, **EU, "REACTOR_SITES": "acme-eu"}, dotenv=False)
    with pytest.raises(ConfigError, match=r"no Chargebee site named 'acme-us' is configured \(sites: acme, acme-eu\)"):
        settings.for_site("acme-us")


def test_every_sites_secrets_are_redacted_even_before_settings_are_valid() -> None:
    from reactor.config import secrets_in

    settings = load_settings({**HOME, **EU, "REACTOR_SITES": "acme-eu"}, dotenv=False)
    assert {"key_eu", "pw_eu", "key_home", "pw_home"} <= set(settings.secrets)
    assert {"key_eu", "pw_eu"} <= set(secrets_in({**EU, "REACTOR_SITES": "Bad Name"}))
