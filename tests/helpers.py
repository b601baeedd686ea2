"""What tests share besides fixtures: constants, waiting on a condition, a Redis's whole state, and
the real processes the fixtures in conftest.py start (the web app under a WSGI server, `reactor
worker` processes)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from werkzeug.serving import make_server

from reactor.config import Settings
from reactor.web import create_app

REPO = Path(__file__).resolve().parent.parent

WEBHOOK_USER = "chargebee"
WEBHOOK_PASSWORD = "s3cret-webhook-password"

RULES = """\
version: 1
mode: {mode}
limits:
  max_write_off: {{USD: 500, EUR: 450, JPY: 60000}}
rules:
  - name: protect-enterprise
    when:
      - invoice.customer_id: {{starts_with: "ent_"}}
    action: skip
  - name: dunning-exhausted-small-balance
    on: [payment_failed, invoice_updated]
    when:
      - invoice.dunning_status: exhausted
      - invoice.status: {{in: [not_paid, payment_due]}}
      - invoice.amount_due: {{lte: {{USD: 25, EUR: 20, JPY: 3000}}}}
    action: write_off
    comment: "Auto write-off ({{rule}}): dunning exhausted, {{amount_due}} {{currency}} due"
"""


LOG_FIELDS = ("ts", "level", "logger", "msg")  # on every log line (reactor/logs.py, docs/metrics.md)


def log_records(output: str, what: str = "the output") -> list[dict]:
    """Every non-empty line of a process's output, each of which must be one JSON object with the
    fields every log line has, as the reactor writes them when not on a terminal."""
    records = []
    for number, line in enumerate(output.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} of {what} is not JSON: {line!r}")
        assert isinstance(record, dict), f"line {number} of {what} is not a JSON object: {line!r}"
        assert all(isinstance(record.get(field), str) for field in LOG_FIELDS), f"line {number} of {what}: {line!r}"
        records.append(record)
    return records


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.05, what: str = "") -> object:
    """Poll until predicate() is truthy; fail the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


# A job's hash lives from its enqueue until it ends (result_ttl 0 deletes it then, a failure keeps it
# in the dead letters), and its status goes queued -> started -> deleted, scheduled (a retry), deferred
# or failed with no gap: a dequeued job not yet marked started still reads "queued". So while no job
# hash holds one of these, no job is left that could make a call or write a record.
PENDING_JOB_STATUSES = frozenset({b"queued", b"started", b"scheduled", b"deferred"})


def pending_jobs(connection: redis.Redis) -> list[str]:
    """The ids of the RQ jobs that have yet to run or to end, read in one transaction."""
    keys = list(connection.scan_iter(match="rq:job:*", count=1000, _type="HASH"))
    pipe = connection.pipeline(transaction=True)
    for key in keys:
        pipe.hget(key, "status")
    statuses = pipe.execute() if keys else []
    pending = [key for key, status in zip(keys, statuses, strict=True) if status in PENDING_JOB_STATUSES]
    return [key.decode().removeprefix("rq:job:") for key in pending]


def events_in_inboxes(connection: redis.Redis) -> int:
    """Events waiting for triage or claimed by a triage job, under any key prefix (reactor/ingest/inbox.py)."""
    keys = [*connection.scan_iter(match="*:inbox", count=1000), *connection.scan_iter(match="*:inbox:claimed")]
    pipe = connection.pipeline(transaction=True)
    for key in keys:
        (pipe.zcard if key.endswith(b":claimed") else pipe.llen)(key)
    return sum(pipe.execute()) if keys else 0


def wait_settled(connection: redis.Redis, timeout: float = 30.0) -> None:
    """Wait until no job could still act: the condition before asserting that something did *not*
    happen (a second write-off, a retry), in place of a sleep that hopes it would have by then.
    The inbox is read first: a triage job queues an event's evaluation job before it lets go of
    the event, so an event is always in one place or the other."""
    wait_for(
        lambda: not events_in_inboxes(connection) and not pending_jobs(connection),
        timeout,
        what="every event triaged and every job ended (pending: see pending_jobs, events_in_inboxes)",
    )


class WebServer:
    def __init__(self, settings: Settings, connection: redis.Redis | None = None):
        self.app = create_app(settings, connection)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.webhook_url = f"{self.url}/webhooks/chargebee"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACTOR_", "CHARGEBEE_", "REDIS_"))}
    env.update(
        REDIS_URL=settings.redis_url or "",
        CHARGEBEE_API_BASE=settings.chargebee_api_base or "",
        CHARGEBEE_API_KEY=settings.chargebee_api_key,
        REACTOR_RULES=str(settings.rules_path),
        REACTOR_RETRY_INTERVALS=",".join(str(i) for i in settings.retry_intervals),
        REACTOR_HTTP_TIMEOUT=str(settings.http_timeout),
        REACTOR_VAR_DIR=str(settings.var_dir),
        REACTOR_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
        REACTOR_JOB_TIMEOUT=str(settings.job_timeout),
        REACTOR_LOCK_TTL=str(settings.lock_ttl),
        REACTOR_CHARGEBEE_RATE_LIMIT=str(settings.chargebee_rate_limit),
        REACTOR_RATE_LIMIT_WINDOW=str(settings.rate_limit_window),
        REACTOR_RATE_LIMIT_MAX_WAIT=str(settings.rate_limit_max_wait),
        REACTOR_ABANDONED_AFTER=str(settings.abandoned_after),
        REACTOR_MAINTENANCE_INTERVAL=str(settings.maintenance_interval),
    )
    env["REACTOR_WORKER_CLASS"] = settings.worker_class
    env["REACTOR_VERIFY_EVENTS"] = "1" if settings.verify_events else "0"
    if settings.redis_wait is not None:
        env["REACTOR_REDIS_WAIT"] = str(settings.redis_wait)
    if settings.notify_url:
        env["REACTOR_NOTIFY_URL"] = settings.notify_url
        env["REACTOR_NOTIFY_INTERVAL"] = str(settings.notify_interval)
    return env


def descendants(pid: int) -> list[int]:
    """Every process below `pid`. RQ's work horse calls setpgrp(), so killing the worker's process
    group would leave the horse running, whereas a crash of the machine or container takes both."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (zombies, already dead, left out)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(stat.parent.name))
    return members


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll until predicate() is truthy; False on timeout (for teardown, which must not fail)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


class ReactorProcess:
    """`reactor ARGS...` as a real process, its output in a log file for failure messages."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reactor", *args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the process and all below it at once, as a crash would (a worker: its scheduler and its
        work horse)."""
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        self.proc.wait(10)

    def stop(self) -> None:
        """Stop the process as a deploy does (SIGTERM), then whatever is left of its process group.

        RQ's scheduler is a forked child in the worker's group. A worker that dies without stopping
        it (a crash, a SIGKILL to it alone) leaves an orphan that would go on renewing `rq:scheduler-lock:*`
        in the next test's Redis; so the group must be empty before the test is over."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            if wait_until(lambda: not group_members(self.proc.pid), timeout=10):
                break
        self.log.close()


class WorkerProcess(ReactorProcess):
    """`reactor worker` as a real process."""

    def __init__(self, settings: Settings, log_path: Path, name: str):
        super().__init__(["worker", "--name", name], worker_env(settings), log_path)


@dataclass(frozen=True)
class RedisState:
    """Every key of a Redis with its type, its value as DUMP serialises it (whatever the type: a
    string, a hash, a stream with its consumer groups...) and its remaining life, read in one
    transaction: what a dry run, a preview or a report must leave as it found it."""

    keys: dict[bytes, tuple[bytes, bytes | None, int]]  # key -> (type, DUMP, PTTL in ms; -1 none)
    read_at: float  # time.monotonic()

    @classmethod
    def read(cls, connection: redis.Redis) -> RedisState:
        names = list(connection.scan_iter(count=1000))
        pipe = connection.pipeline(transaction=True)
        for name in names:
            pipe.type(name)
            pipe.dump(name)
            pipe.pttl(name)
        found = pipe.execute() if names else []
        read_at = time.monotonic()
        triples = [tuple(found[i : i + 3]) for i in range(0, len(found), 3)]
        return cls({n: t for n, t in zip(names, triples, strict=True) if t[1] is not None}, read_at)  # type: ignore[misc]

    def changes_since(self, before: RedisState, ignore: Callable[[bytes], bool] = lambda _k: False) -> list[str]:
        """What differs from `before`, one line a key: added, changed (the value; a TTL that only ran
        down is no change) or removed. A key whose TTL ran out in between expired: that is no write."""
        elapsed_ms = (self.read_at - before.read_at) * 1000
        lines = []
        for name in sorted(set(before.keys) | set(self.keys)):
            if ignore(name):
                continue
            old, new = before.keys.get(name), self.keys.get(name)
            if old is None and new is not None:
                lines.append(f"added {new[0].decode()} {name.decode(errors='replace')}")
            elif new is None and old is not None:
                if not 0 <= old[2] <= elapsed_ms + 1000:
                    lines.append(f"removed {old[0].decode()} {name.decode(errors='replace')}")
            elif old is not None and new is not None and old[:2] != new[:2]:
                lines.append(f"changed {new[0].decode()} {name.decode(errors='replace')}")
        return lines
