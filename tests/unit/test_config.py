"""Settings (and the web server's and logging's) come from an environment once and are refused with
the variable's name when wrong."""

import logging
import sys
from pathlib import Path

import pytest

from reactor.config import (
    LOG_LEVELS,
    ConfigError,
    LogSettings,
    WebServerSettings,
    load_settings,
    log_settings,
    require_webhook_credentials,
    web_server_settings,
)


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
        ({"REACTOR_REDIS_WAIT": "soon"}, "REACTOR_REDIS_WAIT must be a number of seconds"),
        ({"REACTOR_REDIS_WAIT": "-1"}, "REACTOR_REDIS_WAIT must be 0 or more seconds"),
        ({"REACTOR_REDIS_WAIT": "inf"}, "REACTOR_REDIS_WAIT must be 0 or more seconds"),
        ({"REACTOR_REDIS_WAIT": "nan"}, "REACTOR_REDIS_WAIT must be 0 or more seconds"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env, dotenv=False)


@pytest.mark.parametrize(("raw", "seconds"), [(None, None), ("", None), ("0", 0.0), ("90", 90.0), ("2.5", 2.5)])
def test_the_wait_for_redis_is_forever_unless_redis_wait_is_set(raw, seconds):
    env = {} if raw is None else {"REACTOR_REDIS_WAIT": raw}
    assert load_settings(env, dotenv=False).redis_wait == seconds


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


def test_the_web_server_defaults_are_the_documented_ones():
    server = web_server_settings({})
    assert server == WebServerSettings()
    assert server.bind == "0.0.0.0:8000" and server.workers == 2 and server.connections == 1000
    assert server.reuse_port and not server.access_log and server.metrics_dir is None
    assert server.control_socket == Path("var/gunicorn-8000.ctl")


def test_the_web_server_reads_its_variables():
    env = {
        "HOST": "127.0.0.1",
        "PORT": "9000",
        "WEB_CONCURRENCY": "4",
        "WEB_CONNECTIONS": "50",
        "WEB_REUSE_PORT": "0",
        "REACTOR_ACCESS_LOG": "1",
        "PROMETHEUS_MULTIPROC_DIR": "/tmp/metrics",
        "REACTOR_VAR_DIR": "/srv/reactor/var",
    }
    server = web_server_settings(env)
    assert server.bind == "127.0.0.1:9000" and (server.workers, server.connections) == (4, 50)
    assert not server.reuse_port and server.access_log and server.metrics_dir == "/tmp/metrics"
    assert server.control_socket == Path("/srv/reactor/var/gunicorn-9000.ctl")  # one per directory and port
    assert web_server_settings({"WEB_CONTROL_SOCKET": "0"}).control_socket is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WEB_CONCURRENCY": "abc"}, "WEB_CONCURRENCY must be a whole number, got 'abc'"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be at least 1"),
        ({"WEB_CONNECTIONS": "many"}, "WEB_CONNECTIONS must be a whole number"),
        ({"PORT": "http"}, "PORT must be a whole number"),
        ({"WEB_REUSE_PORT": "maybe"}, "WEB_REUSE_PORT must be 1 or 0"),
        ({"REACTOR_ACCESS_LOG": "stdout"}, "REACTOR_ACCESS_LOG must be 1 or 0"),
        ({"WEB_CONTROL_SOCKET": "/run/g.ctl"}, "WEB_CONTROL_SOCKET must be 1 or 0"),
    ],
)
def test_bad_web_server_variables_are_refused_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        web_server_settings(env)


def test_log_settings_default_to_info_and_the_terminal_decides_the_format():
    assert log_settings({}) == LogSettings(level="INFO", json_lines=None)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"REACTOR_LOG_LEVEL": "warning"}, LogSettings(level="WARNING")),
        ({"REACTOR_LOG_FORMAT": "JSON"}, LogSettings(json_lines=True)),
        ({"REACTOR_LOG_FORMAT": "text", "REACTOR_LOG_LEVEL": "DEBUG"}, LogSettings(level="DEBUG", json_lines=False)),
    ],
)
def test_log_settings_read_level_and_format(env, expected):
    assert log_settings(env) == expected


def test_the_log_levels_are_the_standard_librarys_names():
    assert all(isinstance(logging.getLevelName(name), int) for name in LOG_LEVELS)  # a known name gives its number
    if sys.version_info >= (3, 11):
        assert sorted(LOG_LEVELS) == sorted(logging.getLevelNamesMapping())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REACTOR_LOG_LEVEL": "LOUD"}, "REACTOR_LOG_LEVEL must be DEBUG, INFO"),
        ({"REACTOR_LOG_FORMAT": "xml"}, "REACTOR_LOG_FORMAT must be 'json' or 'text'"),
    ],
)
def test_bad_log_settings_are_refused_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        log_settings(env)


def test_the_metrics_directory_and_the_redis_binary_are_read_with_the_settings():
    settings = load_settings({"PROMETHEUS_MULTIPROC_DIR": "/tmp/m", "REACTOR_REDIS_SERVER": "/opt/redis"}, dotenv=False)
    assert settings.metrics_dir == "/tmp/m" and settings.redis_server_binary == "/opt/redis"
    unset = load_settings({"PROMETHEUS_MULTIPROC_DIR": ""}, dotenv=False)
    assert unset.metrics_dir is None and unset.redis_server_binary is None


def test_the_notify_url_is_read_and_kept_out_of_the_settings_repr():
    url = "https://hooks.slack.com/services/T0/B0/xoxb-secret-token"
    settings = load_settings({"REACTOR_NOTIFY_URL": url, "REACTOR_NOTIFY_INTERVAL": "5"}, dotenv=False)
    assert (settings.notify_url, settings.notify_interval) == (url, 5)
    assert "xoxb-secret-token" not in repr(settings)
    assert load_settings({}, dotenv=False).notify_url is None


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example/xoxb-secret", "hooks.example/xoxb-secret", "https://", "http://h:port/xoxb-secret"]
)
def test_a_bad_notify_url_is_refused_in_one_line_without_showing_it(url):
    with pytest.raises(ConfigError, match="REACTOR_NOTIFY_URL must be an http") as refused:
        load_settings({"REACTOR_NOTIFY_URL": url}, dotenv=False)
    assert "xoxb-secret" not in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match="REACTOR_NOTIFY_INTERVAL must be at least 1"):
        load_settings({"REACTOR_NOTIFY_INTERVAL": "0"}, dotenv=False)


def test_triage_is_on_unless_turned_off() -> None:
    assert load_settings({}, dotenv=False).triage is True
    assert load_settings({"REACTOR_TRIAGE": "0"}, dotenv=False).triage is False
    with pytest.raises(ConfigError, match="REACTOR_TRIAGE"):
        load_settings({"REACTOR_TRIAGE": "sometimes"}, dotenv=False)


def test_the_audit_archive_is_under_the_var_directory_unless_a_url_is_given() -> None:
    settings = load_settings({"REACTOR_VAR_DIR": "/srv/reactor/var"}, dotenv=False)
    assert settings.audit_archive_url == "/srv/reactor/var/audit-archive"
    assert (settings.audit_segment_records, settings.audit_segment_seconds) == (50_000, 3600)
    assert (settings.audit_keep, settings.audit_archive_interval) == (1_000_000, 60)
    settings = load_settings(
        {
            "REACTOR_AUDIT_ARCHIVE": " s3://audit-bucket/reactor ",
            "REACTOR_AUDIT_SEGMENT_RECORDS": "1000",
            "REACTOR_AUDIT_SEGMENT_SECONDS": "600",
            "REACTOR_AUDIT_KEEP": "0",
            "REACTOR_AUDIT_ARCHIVE_INTERVAL": "5",
        },
        dotenv=False,
    )
    assert settings.audit_archive_url == "s3://audit-bucket/reactor"
    assert (settings.audit_segment_records, settings.audit_segment_seconds) == (1000, 600)
    assert (settings.audit_keep, settings.audit_archive_interval) == (0, 5)
    with pytest.raises(ConfigError, match="REACTOR_AUDIT_SEGMENT_RECORDS must be at least 1"):
        load_settings({"REACTOR_AUDIT_SEGMENT_RECORDS": "0"}, dotenv=False)


def test_relief_delays_default_to_gb_six_months_and_de_none():
    assert dict(load_settings({}, dotenv=False).relief_delays) == {"GB": 6, "DE": 0}


def test_relief_delays_are_country_month_pairs():
    assert load_settings({"REACTOR_RELIEF_DELAYS": "FR=6, GB=6"}, dotenv=False).relief_delays == (("FR", 6), ("GB", 6))
    assert load_settings({"REACTOR_RELIEF_DELAYS": ""}, dotenv=False).relief_delays == ()
    for bad in ("gb=6", "GB", "GB=six", "GBR=6", "GB=121"):
        with pytest.raises(ConfigError, match="REACTOR_RELIEF_DELAYS"):
            load_settings({"REACTOR_RELIEF_DELAYS": bad}, dotenv=False)
