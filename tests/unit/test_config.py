"""Settings come from the environment once and are refused with the variable's name when wrong."""

import pytest

from reactor.config import ConfigError, load_settings, require_webhook_credentials


def test_defaults_mean_embedded_redis_and_the_sandbox():
    settings = load_settings({}, dotenv=False)
    assert settings.redis_url is None and settings.sandbox_mode and settings.api_base is None
    assert str(settings.rules_path) == "rules.yaml" and settings.port == 8000


def test_site_gives_the_chargebee_api_base():
    settings = load_settings({"CHARGEBEE_SITE": "acme-test", "CHARGEBEE_API_KEY": "k"}, dotenv=False)
    assert settings.api_base == "https://acme-test.chargebee.com/api/v2" and not settings.sandbox_mode


def test_api_base_override_wins_over_the_site():
    env = {
        "CHARGEBEE_SITE": "acme",
        "CHARGEBEE_API_BASE": "http://127.0.0.1:8001/api/v2/",
        "CHARGEBEE_API_KEY": "k",
    }
    assert load_settings(env, dotenv=False).api_base == "http://127.0.0.1:8001/api/v2"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHARGEBEE_SITE": "acme"}, "CHARGEBEE_API_KEY is required"),
        ({"CHARGEBEE_SITE": "acme.chargebee.com", "CHARGEBEE_API_KEY": "k"}, "site name only"),
        ({"PORT": "eighty"}, "PORT must be a whole number"),
        ({"REACTOR_WEBHOOK_AUTH": "hmac"}, "REACTOR_WEBHOOK_AUTH"),
        ({"REACTOR_DEDUPE_TTL": "3600"}, "REACTOR_DEDUPE_TTL must be at least"),
        ({"REACTOR_RETRY_INTERVALS": "10,soon"}, "REACTOR_RETRY_INTERVALS"),
        ({"REACTOR_HTTP_TIMEOUT": "0"}, "REACTOR_HTTP_TIMEOUT must be positive"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env, dotenv=False)


def test_webhook_credentials_are_required_unless_auth_is_off():
    with pytest.raises(ConfigError, match="REACTOR_WEBHOOK_USER"):
        require_webhook_credentials(load_settings({}, dotenv=False))
    require_webhook_credentials(load_settings({"REACTOR_WEBHOOK_AUTH": "none"}, dotenv=False))
    require_webhook_credentials(
        load_settings({"REACTOR_WEBHOOK_USER": "u", "REACTOR_WEBHOOK_PASSWORD": "p"}, dotenv=False)
    )


def test_the_password_never_appears_in_the_settings_repr():
    settings = load_settings({"REACTOR_WEBHOOK_USER": "u", "REACTOR_WEBHOOK_PASSWORD": "hunter2"}, dotenv=False)
    assert "hunter2" not in repr(settings)
