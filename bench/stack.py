"""The reactor as the Procfile runs it, on free loopback ports, for the benchmarks that need it whole.

`running_stack()` starts a real redis-server (AOF on), the sandbox as its own process (no latency,
no faults), the web under gunicorn (`gunicorn -c python:reactor.gunicorn_conf
"reactor.web:create_app()"`, the Procfile's `web:`) and, with `start_workers()`, `reactor worker`
processes (the Procfile's `worker:`). Everything is stopped on the way out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from ingest import PASSWORD, USER, gunicorn  # noqa: E402

from reactor.local.redis_server import EmbeddedRedis, free_port  # noqa: E402
from reactor.sandbox.state import DEMO_API_KEY  # noqa: E402

NO_RATE_LIMIT = 100_000_000
"""REACTOR_CHARGEBEE_RATE_LIMIT meaning "out of the way" for a benchmark."""


@dataclass
class Stack:
    """What is running, and how to reach it."""

    work: Path
    env: dict[str, str]
    conn: redis.Redis
    redis_pid: int
    sandbox_control: str
    web_port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def sandbox_pid(self) -> int:
        return self.procs[0].pid

    @property
    def web_pid(self) -> int:
        """The gunicorn master (its workers are its children)."""
        return self.procs[1].pid

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/webhooks/chargebee"


def wait_for(check: Callable[[], object], timeout: float, what: str, pause: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(pause)


def is_up(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def reactor_env(redis_url: str, sandbox_port: int, rate_limit: int, extra: dict[str, str] | None) -> dict[str, str]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "REACTOR_WEBHOOK_USER": USER,
        "REACTOR_WEBHOOK_PASSWORD": PASSWORD,
        "REACTOR_RULES": str(ROOT / "rules.yaml"),
        "CHARGEBEE_API_BASE": f"http://127.0.0.1:{sandbox_port}/api/v2",
        "CHARGEBEE_API_KEY": DEMO_API_KEY,
        "REACTOR_CHARGEBEE_RATE_LIMIT": str(rate_limit),
        **(extra or {}),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


@contextmanager
def running_stack(
    work: Path, *, rate_limit: int = NO_RATE_LIMIT, web: bool = True, extra_env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """Redis, the sandbox and (unless web=False) the web, up and answering; all stopped on exit."""
    (work / "logs").mkdir(parents=True, exist_ok=True)
    server = EmbeddedRedis(work / "redis").start()
    sandbox_port, web_port = free_port(), free_port()
    env = reactor_env(server.url, sandbox_port, rate_limit, extra_env)
    stack = Stack(work, env, server.client(), server.process.pid if server.process else 0,
                  f"http://127.0.0.1:{sandbox_port}/_sandbox", web_port)  # fmt: skip
    sandbox_cmd = [sys.executable, "-m", "reactor.sandbox", "--port", str(sandbox_port), "--no-seed"]
    try:
        with (work / "logs" / "sandbox.log").open("ab") as out:
            stack.procs.append(subprocess.Popen(sandbox_cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
        wait_for(lambda: is_up(f"{stack.sandbox_control}/faults"), 30, "the sandbox")
        if web:
            stack.procs.append(gunicorn("reactor.web:create_app()", web_port, env, work / "logs" / "web.log"))
            wait_for(lambda: is_up(f"http://127.0.0.1:{web_port}/healthz"), 30, "the web")
        yield stack
    finally:
        stop(stack.workers + stack.procs)
        server.stop()


def start_workers(stack: Stack, count: int, label: str, command: list[str] | None = None) -> None:
    """`count` worker processes (`reactor worker` unless `command` says otherwise), registered with RQ."""
    before = stack.conn.scard("rq:workers")
    for n in range(count):
        cmd = command or [str(Path(sys.executable).parent / "reactor"), "worker", "--name", f"{label}-{n}"]
        with (stack.work / "logs" / f"{label}-{n}.log").open("ab") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=stack.env, stdout=out, stderr=subprocess.STDOUT)
        stack.workers.append(proc)
    wait_for(lambda: stack.conn.scard("rq:workers") >= before + count, 60, "the workers to register")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    procs.clear()


def seed_invoices(stack: Stack, invoices: list[dict[str, object]]) -> list[dict[str, object]]:
    """Create the invoices in the sandbox, 1,000 a request; returns them as the sandbox stored them."""
    stored: list[dict[str, object]] = []
    for start in range(0, len(invoices), 1000):
        answer = requests.post(f"{stack.sandbox_control}/invoices", json=invoices[start : start + 1000], timeout=120)
        answer.raise_for_status()
        stored += answer.json()["invoices"]
    return stored


def sandbox_calls(stack: Stack, **query: str) -> list[dict[str, object]]:
    return requests.get(f"{stack.sandbox_control}/calls", params=query, timeout=120).json()["calls"]
