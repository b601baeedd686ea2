"""The processes `reactor run` starts (web, worker, cron), watched and restarted when they die.

A child that exits without being asked to (a crash, the OOM killer, `kill -9`) is started again
after a pause from redis-py's `ExponentialBackoff`: 1 s, doubling, at most RESTART_BACKOFF_CAP.
Its count of exits in a row starts again once it has run STEADY_AFTER seconds; from KEEPS_DYING
exits in a row on, the line that says so says that it keeps dying. A child that exits EX_CONFIG (78)
refused to start on a bad configuration (a wrong Redis password, a refused rules file): it is not
started again, and `reactor run` stops everything. Ctrl-C or SIGTERM to `reactor run` stops every
child once (`stop_all`), and restarts none.

Each child runs in a session of its own (so that Ctrl-C in the terminal reaches only `reactor run`)
and so leads a process group: what it leaves behind when it dies (RQ's scheduler, gunicorn's
workers) is told to stop with it. RQ's work horse makes a group of its own and finishes its job;
a job cut off is recovered like any abandoned job (docs/guarantees.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from redis.backoff import ExponentialBackoff

from ..config import EX_CONFIG
from .redis_server import EmbeddedRedis, RedisServerError

log = logging.getLogger(__name__)
log.setLevel(
    logging.INFO
)  # as reactor.local.supervisor's: `reactor run` says what it does whatever REACTOR_LOG_LEVEL says

RESTART_BACKOFF_CAP = 60.0
RESTART_BACKOFF = ExponentialBackoff(cap=RESTART_BACKOFF_CAP, base=1)
STEADY_AFTER = 60.0
"""Seconds a child must run before its exit no longer counts as one more in a row."""
KEEPS_DYING = 3
STOP_TIMEOUT = 25.0
"""Seconds the children get to stop after SIGTERM (a worker finishes its job) before SIGKILL."""


@dataclass
class Child:
    """One process of `reactor run`: its command, the process now running it, and its exits."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str]
    process: subprocess.Popen[bytes] = field(init=False)
    started: float = field(init=False)
    exits_in_a_row: int = 0
    restart_at: float | None = None  # set while it waits to be started again

    def __post_init__(self) -> None:
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=self.env, start_new_session=True)
        self.started = time.monotonic()
        self.restart_at = None

    def exited(self, code: int) -> None:
        """Record an exit nobody asked for, schedule the restart, and say so."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # what it left behind in its group
        now = time.monotonic()
        if now - self.started >= STEADY_AFTER:
            self.exits_in_a_row = 0
        pause = RESTART_BACKOFF.compute(self.exits_in_a_row)
        self.exits_in_a_row += 1
        self.restart_at = now + pause
        how = f"was killed by {signal_name(-code)}" if code < 0 else f"exited with status {code}"
        if self.exits_in_a_row < KEEPS_DYING:
            log.warning("%s %s; restarting it in %g s", self.name, how, pause)
            return
        log.error(
            "%s keeps dying: %d exits in a row, each within %g s of its start (this one %s); "
            "restarting it in %g s; its own lines above say why",
            self.name,
            self.exits_in_a_row,
            STEADY_AFTER,
            how,
            pause,
        )


class EmbeddedRedisChild(Child):
    """The embedded redis-server of `reactor run`, watched and started again like the processes, on
    the same port and data directory (its AOF holds what was acknowledged). It is not among the
    children `stop_all` stops: its owner stops it last, once nothing uses it."""

    def __init__(self, server: EmbeddedRedis):
        self.server = server
        super().__init__("redis-server", (), {})

    def __post_init__(self) -> None:  # already started by its owner
        assert self.server.process is not None
        self.process = self.server.process
        self.started = time.monotonic()

    def start(self) -> None:
        try:
            self.server.start()  # returns once it answers (it may have an AOF to load)
        except RedisServerError as exc:
            pause = RESTART_BACKOFF.compute(self.exits_in_a_row)
            self.exits_in_a_row += 1
            self.restart_at = time.monotonic() + pause
            log.error("embedded redis-server did not start again (%s); trying again in %g s", exc, pause)
            return
        assert self.server.process is not None
        self.process = self.server.process
        self.started = time.monotonic()
        self.restart_at = None
        log.warning("embedded redis-server started again at %s (data in %s)", self.server.url, self.server.data_dir)


def signal_name(number: int) -> str:
    """SIGKILL for 9; `signal 40` for a number the signal module has no name for."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def start_children(
    commands: Mapping[str, Sequence[str]], env: Mapping[str, str], into: dict[str, Child] | None = None
) -> dict[str, Child]:
    """Start each command; each is in `into` as soon as it runs (so that a stop requested halfway
    through stops those already started)."""
    children = {} if into is None else into
    for name, command in commands.items():
        children[name] = Child(name, command, env)
    return children


def supervise(
    children: Mapping[str, Child], redis: EmbeddedRedisChild | None = None, ready: Callable[[], bool] | None = None
) -> int:
    """Restart the children that die until SIGINT or SIGTERM arrives, then return 0; or return
    EX_CONFIG at once when one refused to start on a bad configuration (it exited EX_CONFIG, its
    own line says why), which starting it again would not mend. The caller stops them: `stop_all`.
    The stop request is looked at right before each restart, so none is started after it. `redis`,
    the embedded redis-server, is watched first, and started again as they are. `ready` is asked
    once a round until it answers True (`reactor run` says "Ready." then: the web accepts
    connections), so that a web that dies before it listens is restarted meanwhile."""
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    watched = [redis, *children.values()] if redis is not None else list(children.values())
    while not stopping:
        for child in watched:
            if stopping:
                break
            if child.restart_at is not None:
                if time.monotonic() >= child.restart_at:
                    child.start()
                continue
            code = child.process.poll()
            if code == EX_CONFIG:
                log.error(
                    "%s refused to start on a bad configuration (its line above says why); stopping everything",
                    child.name,
                )
                return EX_CONFIG
            if code is not None:
                child.exited(code)
        if ready is not None and not stopping and ready():
            ready = None
        time.sleep(0.3)
    log.info("stopping ...")
    return 0


def stop_all(children: Mapping[str, Child]) -> None:
    """SIGTERM to each running child once, then wait; SIGKILL to one still running after STOP_TIMEOUT."""
    running = [child.process for child in children.values() if child.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in running:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
