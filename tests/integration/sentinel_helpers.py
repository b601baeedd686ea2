"""Real replication for the tests: a primary and its replica, and a Sentinel set (a primary, a
replica and three sentinels, `redis-server --sentinel`), each a process of ours on a free port with
its data under a tmp dir."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import redis

from reactor.local.redis_server import EmbeddedRedis, find_redis_server, free_port
from tests.helpers import wait_for

SERVICE = "mymaster"


def replicate(primary: EmbeddedRedis, replica: EmbeddedRedis) -> None:
    """Make the started `replica` a replica of `primary`, and wait until it has synced."""
    primary.client().config_set("repl-diskless-sync-delay", 0)  # not 5 s for more replicas to join
    replica.client().replicaof("127.0.0.1", primary.port)
    wait_for(lambda: replica.client().info("replication")["master_link_status"] == "up", what="replication")


class SentinelProcess:
    """One `redis-server <conf> --sentinel`; the sentinel rewrites its own config file."""

    def __init__(self, data_dir: Path, primary_port: int, binary: str | None):
        self.data_dir = data_dir
        self.port = free_port()
        self.binary = binary
        self.primary_port = primary_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndaemonize no\ndir {self.data_dir}\n"
            f"logfile {self.data_dir / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
        )
        self.process = subprocess.Popen(
            [find_redis_server(self.binary), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        probe = self.client()
        wait_for(lambda: _answers(probe), timeout=10, what=f"sentinel on port {self.port}")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=1, decode_responses=True)

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class SentinelSet:
    """A primary, one replica of it and three sentinels watching them, started and stopped together."""

    def __init__(self, data_dir: Path):
        binary = os.environ.get("REACTOR_REDIS_SERVER") or None
        self.primary = EmbeddedRedis(data_dir / "primary", binary=binary)
        self.replica = EmbeddedRedis(data_dir / "replica", binary=binary)
        self.sentinels = [SentinelProcess(data_dir / f"sentinel{i}", self.primary.port, binary) for i in range(3)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> SentinelSet:
        self.primary.start()
        replicate(self.primary, self.replica.start())
        for sentinel in self.sentinels:
            sentinel.start()
        wait_for(self.ready, timeout=30, what="the sentinels to know each other and the replica")
        return self

    def ready(self) -> bool:
        """Each sentinel knows the two others and the replica (so a failover can be agreed on)."""
        for sentinel in self.sentinels:
            client = sentinel.client()
            if len(client.sentinel_sentinels(SERVICE)) < 2 or not client.sentinel_slaves(SERVICE):
                return False
        return True

    def primary_port(self) -> int:
        """The primary's port as the sentinels name it now."""
        return int(self.sentinels[0].client().sentinel_get_master_addr_by_name(SERVICE)[1])

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.stop()
        self.primary.stop()

    def __enter__(self) -> SentinelSet:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
