"""Fixtures the integration tests share on top of tests/conftest.py: the dashboard behind its login,
an invoice the reactor wrote off, a write-off left in the dead letters, a Redis the test starts
late and `reactor` processes started before it, and the check that a block wrote nothing. What they
share with the tests (constants, login, outcomes) is in tests/integration/helpers.py."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.registry import FailedJobRegistry

from reactor.config import Settings
from reactor.jobs.audit import AuditLog
from reactor.local.redis_server import EmbeddedRedis, free_port
from reactor.sandbox import SandboxServer
from tests.helpers import ReactorProcess, RedisState, WebServer, pending_jobs, wait_for
from tests.integration.helpers import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    EXHAUSTED_RULES,
    exhausted_invoice,
    make_event,
    outcomes,
    post_event,
)


@pytest.fixture
def admin_settings(settings: Settings) -> Settings:
    # Plain HTTP here, and requests (unlike browsers on localhost) keeps a Secure cookie for HTTPS.
    return replace(settings, admin_user=ADMIN_USER, admin_password=ADMIN_PASSWORD, admin_insecure_cookie=True)


@pytest.fixture
def admin_web(admin_settings: Settings, redis_conn: redis.Redis) -> Iterator[WebServer]:
    """The web app with the dashboard on: ADMIN_USER logs in with ADMIN_PASSWORD."""
    server = WebServer(admin_settings)
    yield server
    server.stop()


@pytest.fixture
def our_write_off(sandbox: SandboxServer, web: WebServer, redis_conn: redis.Redis, start_worker, rules_file) -> dict:
    """An invoice the reactor wrote off through a webhook and a real worker, under EXHAUSTED_RULES."""
    rules_file(EXHAUSTED_RULES)
    invoice = exhausted_invoice(sandbox)
    start_worker()
    assert post_event(web.webhook_url, make_event(invoice)).status_code == 200
    wait_for(lambda: "written_off" in outcomes(redis_conn, invoice["id"]), what="our write-off")
    assert sandbox.state.get_invoice(invoice["id"])["status"] == "paid"
    return invoice


@pytest.fixture
def failed_by_server_errors(
    sandbox: SandboxServer, web: WebServer, redis_conn: redis.Redis, start_worker, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A write-off that Chargebee answered 500 to on every attempt, now in the dead letters: its
    event (which carries card details, for the tests that show it), its invoice and its job id."""
    invoice = exhausted_invoice(sandbox)
    sandbox.state.add_fault(match="write_off", status=500, times=None)
    event = make_event(invoice, card={"masked_number": "************4242", "gateway_account_id": "gw_secret_77"})
    assert post_event(web.webhook_url, event).status_code == 200
    start_worker()
    registry = FailedJobRegistry(settings.queue_name, connection=redis_conn)
    wait_for(lambda: registry.count == 1, timeout=30, what="the job in the dead letters")
    return event, invoice, f"evaluate-{event['id']}"


@pytest.fixture
def late_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own on a free port, not started: the test starts it (`start()`)
    once the processes it started first say that they wait for it. Ask for it before the fixtures
    that start processes, so that it stops after them."""
    binary = os.environ.get("REACTOR_REDIS_SERVER") or None  # as the session's redis_server finds it
    server = EmbeddedRedis(tmp_path / "late-redis", port=free_port(), binary=binary)
    yield server
    server.stop()


@pytest.fixture
def late_settings(settings: Settings, late_redis: EmbeddedRedis) -> Settings:
    """The test settings, on `late_redis`."""
    return replace(settings, redis_url=late_redis.url)


@pytest.fixture
def start_reactor(tmp_path: Path) -> Iterator[Callable[..., ReactorProcess]]:
    """`start_reactor(env, "cron")`: `reactor cron` as a process of its own, its output in cron.log
    (the first word of the arguments names the log); every one is stopped at the end."""
    processes: list[ReactorProcess] = []

    def start(env: dict[str, str], *args: str) -> ReactorProcess:
        process = ReactorProcess(list(args), env, tmp_path / f"{args[0]}-{len(processes) + 1}.log")
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()


@pytest.fixture
def nothing_written(redis_conn: redis.Redis, sandbox: SandboxServer) -> Callable[..., Any]:
    """`with nothing_written(): ...` fails unless the block queued no job, appended no audit record,
    left every Redis key as it found it (RedisState) and made no write call to the sandbox (no
    POST: write_off, apply_credits, remove a credit note...), its invoices and credit notes unchanged.
    `ignore` names the keys a block may change: only shared bookkeeping that is no record."""

    @contextlib.contextmanager
    def checked(ignore: Callable[[bytes], bool] = lambda _k: False) -> Iterator[None]:
        jobs, records = set(pending_jobs(redis_conn)), AuditLog(redis_conn).count()
        posts, site = len(sandbox.state.calls(method="POST")), _site(sandbox)
        before = RedisState.read(redis_conn)
        yield
        changes = RedisState.read(redis_conn).changes_since(before, ignore)
        assert sorted(set(pending_jobs(redis_conn)) - jobs) == [], "a job was queued"
        assert AuditLog(redis_conn).count() == records, "an audit record was written"
        assert changes == [], "Redis was written:\n" + "\n".join(changes)
        assert sandbox.state.calls(method="POST")[posts:] == [], "Chargebee was written to"
        assert _site(sandbox) == site, "the sandbox's invoices or credit notes changed"

    return checked


def _site(sandbox: SandboxServer) -> tuple[list[dict[str, Any]], ...]:
    return sandbox.state.invoices(), sandbox.state.credit_notes(), sandbox.state.write_off_notes()
