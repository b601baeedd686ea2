"""The embedded redis-server started on a port that another Redis took in the meantime (the port
was free when chosen; `reactor run` starts its Redis again on the same port): the start fails and
says why, rather than handing the reactor the other Redis, with someone else's data in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reactor.local.redis_server import EmbeddedRedis, RedisServerError

pytestmark = pytest.mark.integration


def test_a_port_another_redis_answers_on_is_refused_not_used(redis_server: EmbeddedRedis, tmp_path: Path):
    other = redis_server.client()
    other.set("someone-elses-key", "theirs")
    ours = EmbeddedRedis(tmp_path / "ours", port=redis_server.port, binary=os.environ.get("REACTOR_REDIS_SERVER"))
    try:
        with pytest.raises(RedisServerError, match=f"exited at start on port {redis_server.port}") as refused:
            ours.start()
        assert "Address already in use" in str(refused.value)
    finally:
        ours.stop()
    assert other.get("someone-elses-key") == b"theirs"  # untouched, and still serving
