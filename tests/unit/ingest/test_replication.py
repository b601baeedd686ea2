"""When the accept waits for a replica (reactor/ingest/replication.py) and how the setting is read.
The WAIT itself runs against real Redis in tests/integration/test_replica_ack.py."""

from __future__ import annotations

import pytest

from reactor.config import ConfigError, load_settings
from reactor.ingest.replication import NotReplicated, ReplicaAck


class Primary:
    """Answers INFO replication with a number of replicas that the test changes."""

    def __init__(self, replicas: int):
        self.replicas = replicas
        self.asked = 0

    def info(self, section: str) -> dict[str, int]:
        assert section == "replication"
        self.asked += 1
        return {"connected_slaves": self.replicas}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_and_off_do_not_ask_redis():
    primary = Primary(replicas=0)

    assert ReplicaAck("on").wanted(primary) is True
    assert ReplicaAck("off").wanted(primary) is False
    assert primary.asked == 0


def test_auto_waits_while_the_primary_has_replicas_and_looks_again_after_refresh():
    primary, clock = Primary(replicas=1), Clock()
    ack = ReplicaAck("auto", refresh=10, clock=clock)

    assert ack.wanted(primary) and ack.wanted(primary)
    assert primary.asked == 1
    primary.replicas = 0
    clock.now += 9.9
    assert ack.wanted(primary) is True  # not looked at again yet
    clock.now += 0.1
    assert ack.wanted(primary) is False
    assert primary.asked == 2


def test_no_confirmation_is_refused_and_one_is_enough():
    ack = ReplicaAck("on", timeout=0.25)

    assert ack.timeout_ms == 250
    ack.check(1)
    with pytest.raises(NotReplicated, match="within 250 ms"):
        ack.check(0)
    with pytest.raises(ValueError, match="auto, on, off"):
        ReplicaAck("always")


def test_settings_default_to_auto_with_a_one_second_wait():
    settings = load_settings({}, dotenv=False)

    assert (settings.replica_ack, settings.replica_ack_timeout) == ("auto", 1.0)
    changed = load_settings({"REACTOR_REPLICA_ACK": " ON ", "REACTOR_REPLICA_ACK_TIMEOUT": "0.3"}, dotenv=False)
    assert (changed.replica_ack, changed.replica_ack_timeout) == ("on", 0.3)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"REACTOR_REPLICA_ACK": "yes"}, "REACTOR_REPLICA_ACK must be auto, on or off, got 'yes'"),
        ({"REACTOR_REPLICA_ACK_TIMEOUT": "2"}, "from 0.001 to 1.5 seconds (0.5 s under the web's Redis socket"),
        ({"REACTOR_REPLICA_ACK_TIMEOUT": "1.9"}, "got 1.9"),  # Redis may end the WAIT 0.1 s late: too close
        ({"REACTOR_REPLICA_ACK_TIMEOUT": "0"}, "REACTOR_REPLICA_ACK_TIMEOUT must be positive"),
        ({"REACTOR_REPLICA_ACK_TIMEOUT": "soon"}, "must be a number of seconds"),
    ],
)
def test_bad_replica_ack_settings_are_refused(env, says):
    with pytest.raises(ConfigError) as raised:
        load_settings(env, dotenv=False)
    assert says in str(raised.value)
