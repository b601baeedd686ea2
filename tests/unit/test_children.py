"""`supervise` starts no child again once Ctrl-C or SIGTERM has arrived, even in the middle of a
pass over the children, and returns EX_CONFIG at once when one refused its configuration."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from reactor.config import EX_CONFIG
from reactor.local.children import supervise


@dataclass
class FakeProcess:
    code: int | None = None
    on_poll: object = None

    def poll(self) -> int | None:
        if callable(self.on_poll):
            self.on_poll()
        return self.code


@dataclass
class FakeChild:
    name: str
    process: FakeProcess = field(default_factory=FakeProcess)
    restart_at: float | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.starts += 1
        self.restart_at = None

    def exited(self, code: int) -> None:
        self.exits.append(code)
        self.restart_at = time.monotonic()


@pytest.fixture(autouse=True)
def signal_handlers() -> Iterator[None]:
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def test_no_restart_after_a_stop_signal_in_the_same_pass():
    stops_now = FakeChild("web", FakeProcess(on_poll=lambda: os.kill(os.getpid(), signal.SIGTERM)))
    due = FakeChild("worker", restart_at=time.monotonic() - 1)
    assert supervise({"web": stops_now, "worker": due}) == 0
    assert due.starts == 0


def test_a_child_that_refused_its_configuration_stops_supervise_without_a_restart():
    refused = FakeChild("worker", FakeProcess(code=EX_CONFIG))
    assert supervise({"worker": refused}) == EX_CONFIG
    assert refused.exits == [] and refused.starts == 0
