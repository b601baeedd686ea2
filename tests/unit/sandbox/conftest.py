"""Fixtures the sandbox's own tests share."""

from __future__ import annotations

import pytest

from reactor.sandbox import SandboxServer


@pytest.fixture
def sb(sandbox: SandboxServer) -> SandboxServer:
    """The sandbox over real HTTP: the session's server (tests/conftest.py), its state reset before and after."""
    return sandbox
