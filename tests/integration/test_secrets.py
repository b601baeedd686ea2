"""Secrets never leave: one full flow with distinctive secret values (the Chargebee API key, the
webhook password, the admin password and signing key), then every place a secret could surface is
searched for them and for their Basic-auth (base64) forms: the web app's log records, the worker's
log file, the HTTP answers, the dashboard's HTML, `reactor dlq show`, and every value in Redis.

And a `.env` saved over rules.yaml, under the real web (gunicorn), `reactor worker` and `reactor
rules check`: /readyz names the refusal's position and kind and no word of the file; the logs, the
dashboard, the commands' output and Redis hold the refusal, but none of the secrets."""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
import requests
from rq.registry import FailedJobRegistry

from reactor.config import EX_CONFIG
from reactor.ingest.packing import UnpackError, unpack
from reactor.jobs.audit import AuditFilter, AuditLog
from reactor.keys import Keys
from reactor.local.redis_server import free_port
from reactor.rules import ProblemKind
from tests.helpers import REPO, WEBHOOK_USER, ReactorProcess, WebServer, log_records, wait_for, worker_env
from tests.integration.helpers import exhausted_invoice, make_event, post_event, token
from tests.integration.ops_helpers import reactor

pytestmark = pytest.mark.integration

API_KEY = "cbkey_SECRET_q7Wm2Zx9"
WEBHOOK_PASSWORD = "whpw-SECRET-4kT8vR1n"
WRONG_PASSWORD = "whpw-OLD-SECRET-p3Ld6Hs0"  # a stale password a misconfigured sender still uses
ADMIN_USER = "oncall"
ADMIN_PASSWORD = "adminpw-SECRET-J5nB0cQe"
SECRET_KEY = "signing-SECRET-Yh2Ug7Fs"


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


NEEDLES = [
    API_KEY,
    WEBHOOK_PASSWORD,
    WRONG_PASSWORD,
    ADMIN_PASSWORD,
    SECRET_KEY,
    basic(API_KEY, ""),
    basic(WEBHOOK_USER, WEBHOOK_PASSWORD),
    basic(WEBHOOK_USER, WRONG_PASSWORD),
]


def leaks(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


def redis_text(connection: redis.Redis) -> str:
    """Every key and value in Redis as text; compressed RQ job fields and packed values are inflated first."""
    parts: list[bytes] = []
    for key in connection.scan_iter(count=1000):
        kind = connection.type(key).decode()
        values: list[bytes] = []
        if kind == "string":
            values = [connection.get(key) or b""]
        elif kind == "hash":
            values = [b for pair in connection.hgetall(key).items() for b in pair]
        elif kind == "list":
            values = connection.lrange(key, 0, -1)
        elif kind == "set":
            values = list(connection.smembers(key))
        elif kind == "zset":
            values = [member for member, _ in connection.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [b for _, fields in connection.xrange(key) for pair in fields.items() for b in pair]
        for value in [key, *values]:
            parts.append(value)
            with contextlib.suppress(zlib.error):
                parts.append(zlib.decompress(value))
            with contextlib.suppress(UnpackError):  # stored events and trace entries
                parts.append(unpack(value))
    return "\n".join(p.decode("utf-8", "replace") for p in parts)


@pytest.fixture
def secret_sandbox(sandbox) -> Iterator:
    """The sandbox accepting only the distinctive API key."""
    original = sandbox.state.api_key
    sandbox.state.api_key = API_KEY
    yield sandbox
    sandbox.state.api_key = original


def test_no_secret_appears_in_logs_answers_pages_cli_output_or_redis(
    secret_sandbox, settings, redis_conn, start_worker, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_settings = replace(
        settings,
        chargebee_api_key=API_KEY,
        webhook_password=WEBHOOK_PASSWORD,
        admin_user=ADMIN_USER,
        admin_password=ADMIN_PASSWORD,
        admin_insecure_cookie=True,  # the test's client logs in over plain http
        secret_key=SECRET_KEY,
        retry_intervals=(1,),
    )
    web = WebServer(secret_settings)
    answers: list[str] = []
    try:
        good = exhausted_invoice(secret_sandbox)
        refused = exhausted_invoice(secret_sandbox)
        answers.append(post_event(web.webhook_url, make_event(good), auth=(WEBHOOK_USER, WEBHOOK_PASSWORD)).text)
        unauthorized = post_event(web.webhook_url, make_event(good), auth=(WEBHOOK_USER, WRONG_PASSWORD))
        assert unauthorized.status_code == 401
        answers.append(unauthorized.text + str(unauthorized.headers))
        worker = start_worker(secret_settings)
        wait_for(
            lambda: any(
                r.outcome == "written_off" for r in AuditLog(redis_conn).query(AuditFilter(invoice_id=good["id"]))
            )
        )

        # Chargebee refuses the key once (401): the job goes to the dead letters with the error.
        secret_sandbox.state.add_fault("write_off", 401, times=1, api_error_code="api_authentication_failed")
        failing = make_event(refused)
        answers.append(post_event(web.webhook_url, failing, auth=(WEBHOOK_USER, WEBHOOK_PASSWORD)).text)
        registry = FailedJobRegistry(settings.queue_name, connection=redis_conn)
        wait_for(lambda: registry.count == 1, 30, what="the refused write-off in the dead letters")

        browser = requests.Session()
        form = browser.get(f"{web.url}/admin/login", timeout=5).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        browser.post(
            f"{web.url}/admin/login", data={"user": ADMIN_USER, "password": ADMIN_PASSWORD, "csrf": csrf}, timeout=5
        )
        dashboard = browser.get(f"{web.url}/admin/", timeout=5)
        assert dashboard.status_code == 200 and failing["id"] in dashboard.text
        answers += [dashboard.text, str(browser.cookies.get_dict())]
        for path in ("/readyz", "/metrics", "/healthz"):
            answers.append(requests.get(f"{web.url}{path}", timeout=5).text)

        shown = reactor(secret_settings, "dlq", "show", failing["id"])
        assert shown.exit_code == 0 and "api_authentication_failed" in shown.output
    finally:
        web.stop()

    sources = {
        "web log records": "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records),
        "worker log": worker.output(),
        "http answers and pages": "\n".join(answers),
        "reactor dlq show": shown.output,
        "redis": redis_text(redis_conn),
    }
    # The search sees real data: each source holds what the flow put there.
    assert "queued" in sources["web log records"] and "401" in sources["web log records"]
    assert "written_off" in sources["redis"] and "api_authentication_failed" in sources["worker log"]
    assert {name: leaks(text) for name, text in sources.items() if leaks(text)} == {}


REDIS_PASSWORD = "redispw-SECRET-Lm3Vb8"  # in the .env only: redacted as the password of a URL
NOTIFY_URL = "https://hooks.example.com/services/T0SECRET/B0SECRET/notifySECRETtoken9"
DOTENV = f"""\
# local settings
REDIS_URL=redis://:{REDIS_PASSWORD}@10.0.0.7:6379/0
CHARGEBEE_SITE=acme-test
CHARGEBEE_API_KEY={API_KEY}
REACTOR_WEBHOOK_USER={WEBHOOK_USER}
REACTOR_WEBHOOK_PASSWORD={WEBHOOK_PASSWORD}
"""
DOTENV_NEEDLES = [*NEEDLES, REDIS_PASSWORD, "notifySECRETtoken9"]
FILE_WORDS = ["local settings", "REDIS_URL", "CHARGEBEE_SITE", "acme-test", "REACTOR_WEBHOOK_USER"]


def dotenv_leaks(text: str) -> list[str]:
    return [needle for needle in DOTENV_NEEDLES if needle in text]


def test_a_dotenv_saved_over_rules_yaml_is_refused_by_position_and_kind_and_its_secrets_go_nowhere(
    settings, redis_conn, tmp_path
) -> None:
    settings.rules_path.write_text(DOTENV)
    env = worker_env(settings)
    env.update(
        CHARGEBEE_API_KEY=API_KEY,
        REACTOR_WEBHOOK_USER=WEBHOOK_USER,
        REACTOR_WEBHOOK_PASSWORD=WEBHOOK_PASSWORD,
        REACTOR_ADMIN_USER=ADMIN_USER,
        REACTOR_ADMIN_PASSWORD=ADMIN_PASSWORD,
        REACTOR_ADMIN_INSECURE_COOKIE="1",  # the test's client logs in over plain http
        REACTOR_SECRET_KEY=SECRET_KEY,
        REACTOR_NOTIFY_URL=NOTIFY_URL,  # so the refused edit is also a notice in Redis
    )
    port = free_port()
    web = ReactorProcess(
        ["web", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env, tmp_path / "web.log"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url), timeout=30, what=f"the web answering; log: {web.log_path}")
        ready = requests.get(f"{url}/readyz", timeout=5)
        browser = requests.Session()
        form = browser.get(f"{url}/admin/login", timeout=5).text
        data = {"user": ADMIN_USER, "password": ADMIN_PASSWORD, "csrf": token(form)}
        browser.post(f"{url}/admin/login", data=data, timeout=5)
        dashboard = browser.get(f"{url}/admin/", timeout=5)
    finally:
        web.stop()
    command = subprocess.run(
        [sys.executable, "-m", "reactor", "rules", "check"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    worker = subprocess.run(  # on a terminal's format: click prints the refusal itself
        [sys.executable, "-m", "reactor", "worker", "--burst"],
        env={**env, "REACTOR_LOG_FORMAT": "text"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # /readyz, which anyone who reaches it reads: where, and what kind of problem, not a word of the file
    assert ready.status_code == 503
    assert ready.json()["checks"]["rules"]["errors"] == [f"{settings.rules_path}:2:1: {ProblemKind.NOT_RULES.value}"]
    assert [word for word in FILE_WORDS if word in ready.text] == []
    # behind the dashboard's login, on ops' terminal and in the logs, the whole sentence, redacted
    assert dashboard.status_code == 200 and "CHARGEBEE_SITE=acme-test" in dashboard.text
    assert command.returncode == 1 and "CHARGEBEE_SITE=acme-test" in command.stderr
    assert worker.returncode == EX_CONFIG and "CHARGEBEE_SITE=acme-test" in worker.stderr
    refusals = [r for r in log_records(web.output(), "the web's log") if "rules file refused" in r["msg"]]
    assert refusals and "CHARGEBEE_SITE=acme-test" in refusals[0]["msg"]
    stored = redis_text(redis_conn)
    assert redis_conn.exists(Keys().rules_last_refused()) and "CHARGEBEE_SITE=acme-test" in stored
    assert redis_conn.xlen(Keys().notices()) == 1  # the notice of the refused edit
    sources = {
        "/readyz": ready.text,
        "dashboard": dashboard.text,
        "web log": web.output(),
        "reactor rules check": command.stdout + command.stderr,
        "reactor worker": worker.stdout + worker.stderr,
        "redis": stored,
    }
    assert {name: dotenv_leaks(text) for name, text in sources.items() if dotenv_leaks(text)} == {}


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
