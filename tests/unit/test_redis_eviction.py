"""A Redis that may evict keys is refused (reactor/redis_wait.py's `eviction_refusal`): every
`maxmemory-policy` but `noeviction`, read from `INFO memory`. Pure: a stand-in connection; real
processes against a real redis-server are in tests/integration/test_redis_eviction.py."""

from __future__ import annotations

import logging

import pytest
import redis

from reactor import redis_wait
from reactor.redis_wait import eviction_refusal

EVICTING = [
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]


class Memory:
    """A connection whose `INFO memory` answers `fields`, or raises `error`."""

    def __init__(self, fields: dict[str, object] | None = None, error: Exception | None = None):
        self.fields, self.error = fields or {}, error
        self.connection_pool = redis.ConnectionPool(host="10.0.0.5", port=6380, db=2, password="hunter2")

    def info(self, section: str) -> dict[str, object]:
        assert section == "memory"
        if self.error:
            raise self.error
        return self.fields


@pytest.fixture(autouse=True)
def not_warned_yet(monkeypatch):
    monkeypatch.setattr(redis_wait, "_policy_warned", False)


def test_noeviction_is_not_refused(caplog):
    with caplog.at_level(logging.INFO):
        assert eviction_refusal(Memory({"maxmemory_policy": "noeviction"})) is None  # type: ignore[arg-type]
    assert caplog.text == ""


@pytest.mark.parametrize("policy", EVICTING)
def test_every_policy_that_may_evict_is_refused_in_one_line_that_names_it_and_the_fix(policy):
    line = eviction_refusal(Memory({"maxmemory_policy": policy}))  # type: ignore[arg-type]
    assert line is not None and "\n" not in line
    assert line.startswith(f"Redis at 10.0.0.5:6380/2 has maxmemory-policy {policy}, which may evict keys")
    assert "the marks, the stored events, RQ's jobs, the audit" in line
    assert "redis-cli CONFIG SET maxmemory-policy noeviction" in line and "hunter2" not in line


def test_a_policy_read_as_bytes_is_refused_too():
    line = eviction_refusal(Memory({"maxmemory_policy": b"volatile-lru"}))  # type: ignore[arg-type]
    assert line is not None and "maxmemory-policy volatile-lru," in line


@pytest.mark.parametrize(
    "connection",
    [
        Memory({"used_memory": 1024}),  # a proxy's INFO without the field
        Memory(error=redis.ResponseError("unknown command 'INFO'")),  # renamed or disabled
        Memory(error=redis.exceptions.NoPermissionError("this user has no permissions to run the 'info' command")),
    ],
    ids=["no-field", "info-disabled", "info-not-allowed"],
)
def test_a_policy_that_cannot_be_read_is_not_refused_but_said_once(connection, caplog):
    with caplog.at_level(logging.WARNING):
        assert eviction_refusal(connection) is None
        assert eviction_refusal(connection) is None
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage().startswith("cannot read the maxmemory-policy of Redis at 10.0.0.5:6380/2 (")
    assert "make sure it is noeviction" in warning.getMessage() and "hunter2" not in caplog.text
