"""reactor/redaction.py: every configured secret, and any URL's password, replaced wherever it stands;
and reactor/config.py's list of the secrets a process holds (`Settings.secrets`, `secrets_in`)."""

from __future__ import annotations

import base64
import json
import logging
import sys
from pathlib import Path

import pytest

from reactor.config import Settings, secrets_in
from reactor.logs import JsonFormatter, TextFormatter
from reactor.redaction import REDACTED, Redactor, remember
from reactor.rules.live import LiveRules
from reactor.rules.problems import ProblemKind

KEY = "cbkey_live_9Qm2"
PASSWORD = "whpw-7Tq!x@y"


def test_a_secret_is_replaced_wherever_it_stands_in_a_longer_text() -> None:
    redactor = Redactor([KEY, PASSWORD])
    text = f"key={KEY};pw:{PASSWORD}\nAuthorization for {KEY}{KEY}, and {PASSWORD[:-1]} is not it"
    assert redactor(text) == (
        f"key={REDACTED};pw:{REDACTED}\nAuthorization for {REDACTED}{REDACTED}, and {PASSWORD[:-1]} is not it"
    )


def test_empty_and_short_values_redact_nothing() -> None:
    redactor = Redactor(["", "a", "abc"])
    text = "a plain line about abc, with no secret in it"
    assert redactor(text) == text


def test_a_secret_that_contains_another_is_replaced_whole() -> None:
    assert Redactor(["pass", "password-long"])("x password-long y pass z") == f"x {REDACTED} y {REDACTED} z"


def test_a_url_encoded_secret_is_replaced_too() -> None:
    assert Redactor(["p@ss/w:rd"])("redis://h/?password=p%40ss%2Fw%3Ard&x=1") == (f"redis://h/?password={REDACTED}&x=1")
    assert Redactor(["p@ss/w:rd"])("quoted: p%40ss%2Fw%3Ard") == f"quoted: {REDACTED}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:hunter22@10.0.0.5:6379/0", f"redis://:{REDACTED}@10.0.0.5:6379/0"),
        ("rediss://default:hunter22@cache:6380", f"rediss://default:{REDACTED}@cache:6380"),
        ("https://user:tok-en.1@hooks.example.com/x", f"https://user:{REDACTED}@hooks.example.com/x"),
        ("REDIS_URL=redis://:p@ss@host/0 next", f"REDIS_URL=redis://:{REDACTED}@host/0 next"),  # an unencoded @
        (
            "redis+sentinel://:pw1@s1:26379,s2:26379/mymaster/0?sentinel_password=pw2&ssl_cert_reqs=none",
            f"redis+sentinel://:{REDACTED}@s1:26379,s2:26379/mymaster/0?sentinel_password={REDACTED}"
            "&ssl_cert_reqs=none",
        ),
        ("(see https://example.com:8443/a?b=c and redis://127.0.0.1:6379/0)", None),  # no credentials
        ("redis://user@host:6379/0", None),  # a user, no password
    ],
)
def test_a_urls_password_is_replaced_even_when_nobody_configured_it(text: str, expected: str | None) -> None:
    assert Redactor()(text) == (expected if expected is not None else text)


def test_settings_name_every_secret_they_hold_and_the_forms_text_carries_it_in() -> None:
    settings = Settings(
        redis_url="redis+sentinel://:redis%2Fpw@s1:26379/mymaster?sentinel_password=sentinel-pw",
        chargebee_api_key=KEY,
        webhook_user="chargebee",
        webhook_password=PASSWORD,
        admin_user="oncall",
        admin_password="admin-pw-1",
        secret_key="signing-key-1",
        notify_url="https://hooks.slack.com/services/T000/B000/XXXXSECRET",
    )
    secrets = set(settings.secrets)
    assert {KEY, PASSWORD, "admin-pw-1", "signing-key-1", settings.notify_url} <= secrets
    assert {"redis/pw", "redis%2Fpw", "sentinel-pw", "/services/T000/B000/XXXXSECRET"} <= secrets
    assert base64.b64encode(f"{KEY}:".encode()).decode() in secrets  # the API key's Basic-auth header
    assert base64.b64encode(f"chargebee:{PASSWORD}".encode()).decode() in secrets
    assert "" not in secrets and "chargebee" not in secrets and "oncall" not in secrets  # users are not secret
    assert set(secrets_in(environment_of(settings))) == secrets


def environment_of(settings: Settings) -> dict[str, str]:
    return {
        "REDIS_URL": settings.redis_url or "",
        "CHARGEBEE_API_KEY": settings.chargebee_api_key,
        "REACTOR_WEBHOOK_USER": settings.webhook_user,
        "REACTOR_WEBHOOK_PASSWORD": settings.webhook_password,
        "REACTOR_ADMIN_USER": settings.admin_user,
        "REACTOR_ADMIN_PASSWORD": settings.admin_password,
        "REACTOR_SECRET_KEY": settings.secret_key,
        "REACTOR_NOTIFY_URL": settings.notify_url or "",
    }


def test_settings_without_secrets_name_none() -> None:
    assert Settings().secrets == ()
    assert secrets_in({}) == ()


def test_a_malformed_redis_url_still_gives_up_its_password() -> None:
    assert "pw-in-bad-url" in Settings(redis_url="redis://:pw-in-bad-url@[::1/0").secrets


# The process's own redactor: what the log formatters, the web's answers and Redis writes use.

LOGGED = "log-SECRET-2f9c"


@pytest.fixture
def logged_secret() -> str:
    remember([LOGGED])
    return LOGGED


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("reactor.test", logging.ERROR, __file__, 1, message, args, exc_info)


def failure(message: str) -> BaseException:
    try:
        raise RuntimeError(message)
    except RuntimeError:
        return sys.exc_info()[1]  # type: ignore[return-value]


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter("%(levelname)s %(name)s: %(message)s")])
def test_log_lines_and_their_tracebacks_carry_no_secret(logged_secret: str, formatter: logging.Formatter) -> None:
    line = formatter.format(
        record(
            "connecting with %s to redis://:%s@db:6379 (ünïcode %s)",
            logged_secret,
            "url-pw",
            logged_secret,
            exc=failure(f"refused {logged_secret}"),
        )
    )
    assert logged_secret not in line and "url-pw" not in line
    text = json.loads(line)["msg"] + json.loads(line)["exc"] if isinstance(formatter, JsonFormatter) else line
    assert text.count(REDACTED) == 4 and "RuntimeError: refused" in text and "ünïcode" in text


def test_a_rules_file_that_is_a_dotenv_shows_only_position_and_kind_on_readyz(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(f"# saved over rules.yaml\nCHARGEBEE_API_KEY={KEY}\nREACTOR_WEBHOOK_PASSWORD={PASSWORD}\n")
    live = LiveRules(path)

    status = live.status()

    assert status["errors"] == [f"{path}:2:1: {ProblemKind.NOT_RULES.value}"]
    assert live.error is not None and KEY in live.error.problems[0].message  # the sentence ops read in full
    assert KEY in live.status(detail=True)["errors"][0]  # behind the dashboard's login (redacted as it leaves)
