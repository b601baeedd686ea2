"""Whether an accepted webhook must be on a replica before it is answered 200 (REACTOR_REPLICA_ACK).

Redis replicates asynchronously: a primary that dies right after answering can take writes its
replicas never received, and Sentinel then promotes a replica without them. A webhook answered 200
but lost that way is gone for good (Chargebee does not redeliver it). So the accept is followed, on
the same connection, by `WAIT 1 <timeout>`: Redis answers once a replica confirms every write of
that connection so far, or when the timeout passes. No confirmation means 503 and Chargebee's
retry; the event stays marked seen on the primary, and the retry, a duplicate then, waits again
(its own write comes after the first one's, so a confirmation covers both) before its 200.

- `on`: always wait; with no replica every webhook gets 503 (Chargebee keeps retrying).
- `off`: never wait (one Redis without replicas, or a deployer who accepts the risk).
- `auto` (the default): wait when the primary has replicas connected (`INFO replication`, asked
  again every REFRESH seconds). A primary without replicas cannot fail over to anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

MODES = ("auto", "on", "off")
REFRESH = 10.0
"""Seconds between two looks at how many replicas the primary has (mode auto)."""


class NotReplicated(Exception):
    """No replica confirmed the accept within the timeout: answer 503, Chargebee retries."""


class ReplicaAck:
    """The policy of one web process: when to WAIT, and for how long."""

    def __init__(
        self,
        mode: str = "auto",
        timeout: float = 1.0,
        refresh: float = REFRESH,
        clock: Callable[[], float] = time.monotonic,
    ):
        if mode not in MODES:
            raise ValueError(f"replica ack mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.timeout_ms = max(int(timeout * 1000), 1)
        self.refresh = refresh
        self._clock = clock
        self._replicas: int | None = None
        self._looked_at = 0.0

    def wanted(self, connection: redis.Redis) -> bool:
        """Whether the next accept must WAIT for a replica."""
        if self.mode != "auto":
            return self.mode == "on"
        now = self._clock()
        if self._replicas is None or now - self._looked_at >= self.refresh:
            self._replicas = int(connection.info("replication").get("connected_slaves", 0))
            self._looked_at = now
        return self._replicas > 0

    def check(self, confirmed: int) -> None:
        """Raise NotReplicated unless a replica confirmed."""
        if confirmed < 1:
            raise NotReplicated(f"no replica confirmed the write within {self.timeout_ms} ms")
