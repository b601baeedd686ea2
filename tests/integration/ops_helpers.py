"""Driving the `reactor` command the way on-call does (in-process, or as a process of its own),
`reactor run` as the README's quick start does, and dead letters made on purpose."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import redis
from click.testing import CliRunner, Result
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.results import Result as JobResult

from reactor.cli import main
from reactor.config import Settings
from reactor.ingest.events import evaluation_job_id
from reactor.jobs.audit import AuditRecord
from reactor.keys import Keys
from tests.helpers import REPO, descendants, worker_env

TRACEBACK = """Traceback (most recent call last):
  File "reactor/jobs.py", line 250, in write_off_invoice
reactor.chargebee.ServerError: Chargebee answered 500 (internal_error) on POST /invoices/inv_x/write_off
"""


def cli_env(settings: Settings) -> dict[str, str | None]:
    """The settings as the environment the command reads; unrelated REACTOR_* variables unset."""
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("REACTOR_", "CHARGEBEE_", "REDIS_", "COLUMNS"))
    }
    env.update(
        REDIS_URL=settings.redis_url,
        CHARGEBEE_API_BASE=settings.chargebee_api_base,
        CHARGEBEE_API_KEY=settings.chargebee_api_key,
        REACTOR_RULES=str(settings.rules_path),
        REACTOR_RETRY_INTERVALS=",".join(str(i) for i in settings.retry_intervals),
        REACTOR_VAR_DIR=str(settings.var_dir),
        REACTOR_LOG_FORMAT="json",
    )
    return env


def reactor(settings: Settings, *args: str, input: str | None = None) -> Result:
    """Run `reactor ARGS...` in-process; stdin is not a terminal, as under cron or in a pipe."""
    return CliRunner().invoke(main, list(args), env=cli_env(settings), input=input, catch_exceptions=False)


def reactor_process(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m reactor ARGS...` as a process of its own, with the environment a worker gets."""
    return subprocess.run(
        [sys.executable, "-m", "reactor", *args],
        env=worker_env(settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def reactor_on_terminal(settings: Settings, *args: str, columns: int = 80, timeout: float = 60) -> str:
    """Run `python -m reactor ARGS...` on a pseudo-terminal `columns` wide (COLUMNS set too, as a
    shell sets it), as on-call runs it; its output with the terminal's colours taken out."""
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**worker_env(settings), "COLUMNS": str(columns), "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reactor", *args], stdin=child, stdout=child, stderr=child, env=env, cwd=REPO
    )
    os.close(child)
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the command has exited and closed the terminal
        while chunk := os.read(parent, 65536):
            chunks.append(chunk)
    os.close(parent)
    proc.wait(timeout)
    return ANSI.sub("", b"".join(chunks).decode().replace("\r\n", "\n"))


def run_env(tmp_path: Path, name: str, var: str | None = None) -> dict[str, str]:
    """The environment of `reactor run` with nothing configured: the shipped rules, var-NAME/ (or
    var-VAR/, for runs that share one) for state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REACTOR_", "CHARGEBEE_", "REDIS_", "WEB_"))}
    env.update(REACTOR_RULES=str(REPO / "rules.yaml"), REACTOR_VAR_DIR=str(tmp_path / f"var-{var or name}"))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a SIGABRT writes every thread's stack to the log (stopped())
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def reactor_run(
    tmp_path: Path, port: int, sandbox_port: int, name: str, *args: str, var: str | None = None
) -> subprocess.Popen[bytes]:
    """`reactor run ARGS...` started in tmp_path as a user starts it, its output in NAME.log, its
    state in var-NAME/ (or var-VAR/)."""
    log = (tmp_path / f"{name}.log").open("wb")
    command = [sys.executable, "-m", "reactor", "run", "--port", str(port), "--sandbox-port", str(sandbox_port), *args]
    env = run_env(tmp_path, name, var)
    # Its own process group, as a shell gives a foreground job: Ctrl-C signals the whole group.
    return subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def kill_run(proc: subprocess.Popen[bytes]) -> None:
    """Kill what is left of a `reactor run` (the test's cleanup, whatever happened): every process below it."""
    if proc.poll() is None:
        for pid in descendants(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


DASHBOARD_LINE = re.compile(r"^Dashboard: (?P<url>\S+)  \(user '(?P<user>[^']+)', password '(?P<password>[^']+)'", re.M)


def printed_dashboard(output: str) -> tuple[str, str, str]:
    """The dashboard's URL, user and password as `reactor run` logged them in `output` (JSON lines,
    not being on a terminal)."""
    match = DASHBOARD_LINE.search("\n".join(_messages(output)))
    assert match, f"no dashboard URL and login in the output of `reactor run`:\n{output[-2000:]}"
    return match["url"], match["user"], match["password"]


SANDBOX_LINE = re.compile(
    r"^Chargebee: local sandbox(?: for site (?P<site>\S+))?.* at (?P<api_base>http://\S+), \d+ demo invoices$", re.M
)


def printed_sandboxes(output: str) -> dict[str | None, str]:
    """The API base of each sandbox that `reactor run` logged in `output`, by site (None: the one
    sandbox of a run without --sandbox-sites). Not always at the --sandbox-port a test chose:
    another process may take that port in the meantime, and the sandbox then serves on a free one."""
    return {match["site"]: match["api_base"] for match in SANDBOX_LINE.finditer("\n".join(_messages(output)))}


def printed_sandbox(output: str) -> str:
    """The API base of the one sandbox `reactor run` logged in `output` (printed_sandboxes)."""
    sandboxes = printed_sandboxes(output)
    assert len(sandboxes) == 1, f"not one sandbox in the output of `reactor run`:\n{output[-2000:]}"
    return next(iter(sandboxes.values()))


def _messages(output: str) -> list[str]:
    """The messages of the JSON log lines in `output` (a line still being written is left out)."""
    messages = []
    for line in output.splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            messages.append(json.loads(line).get("msg", ""))
    return messages


def child(run_pid: int, command: str) -> int | None:
    """The pid of `reactor COMMAND` that `reactor run` (run_pid) started, if one is running."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
            if int(fields[1]) == run_pid and fields[0] != "Z" and cmdline[-3:-1] == [b"reactor", command.encode()]:
                return int(stat.parent.name)
    return None


def alive(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def store_event(connection: redis.Redis, event: dict[str, Any]) -> None:
    connection.set(Keys().event(event["id"]), json.dumps(event), ex=30 * 24 * 3600)


def make_dead_letter(
    connection: redis.Redis,
    settings: Settings,
    event: dict[str, Any],
    *,
    failed_ago: timedelta = timedelta(minutes=5),
    store: bool = True,
    job_id: str | None = None,
) -> Job:
    """A job in RQ's FailedJobRegistry as a worker leaves it after the last retry, without the
    minutes of retries: for the paths that refuse or select, where how it failed does not matter."""
    if store:
        store_event(connection, event)
    invoice_id = event["content"]["invoice"]["id"]
    queue = Queue(settings.queue_name, connection=connection)
    job = Job.create(
        "reactor.jobs.evaluate",
        args=(event["id"],),
        id=job_id or evaluation_job_id(event["id"]),
        connection=connection,
        origin=queue.name,
        failure_ttl=settings.event_ttl,
        meta={"event_id": event["id"], "event_type": event["event_type"], "invoice_id": invoice_id},
    )
    job.retries_left = 0
    job.retry_intervals = list(settings.retry_intervals)
    failed_at = datetime.now(timezone.utc) - failed_ago
    job.started_at = failed_at
    job.ended_at = failed_at
    job.set_status(JobStatus.FAILED, pipeline=None)
    job.save()
    FailedJobRegistry(queue=queue).add(job, ttl=settings.event_ttl)
    JobResult.create_failure(job, settings.event_ttl, exc_string=TRACEBACK)
    return job


def written_off(invoice_id: str, event_id: str, amount: int = 1250, currency: str = "USD") -> AuditRecord:
    """An audit record of a live write-off by the shipped dunning rule, as a worker writes it."""
    return AuditRecord(
        event_id=event_id,
        invoice_id=invoice_id,
        event_type="payment_failed",
        outcome="written_off",
        action="write_off",
        rule="dunning-exhausted-small-balance",
        amount_due=amount,
        currency=currency,
        mode="live",
        rules_version="3f9c0a1b2c4d",
        reason="rule dunning-exhausted-small-balance matched",
        job_id=f"evaluate-{event_id}",
    )
