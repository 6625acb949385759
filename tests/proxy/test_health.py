"""A mirror target's health machine, driven with plain numbers for times."""

from __future__ import annotations

from typing import cast

from traffic_duplicator.proxy.connection import MirrorConnection
from traffic_duplicator.proxy.health import (
    REOPEN_AFTER_RESET,
    Event,
    TargetHealth,
    TargetState,
    transition,
)

UP, BACKING_OFF, PROBING, RESETTING = TargetState


def conn() -> MirrorConnection:
    """The machine only compares connections by identity."""
    return cast(MirrorConnection, object())


def test_the_table_answers_every_state_and_event() -> None:
    table = {state: [transition(state, event).name for event in Event] for state in TargetState}
    # Events in the order FAILED, PROBE, PROBE_LOST, CONNECTED, RESET, REOPEN.
    assert table == {
        UP: ["BACKING_OFF", "UP", "UP", "UP", "RESETTING", "UP"],
        BACKING_OFF: ["BACKING_OFF", "PROBING", "BACKING_OFF", "UP", "BACKING_OFF", "BACKING_OFF"],
        PROBING: ["PROBING", "PROBING", "BACKING_OFF", "UP", "PROBING", "PROBING"],
        RESETTING: ["BACKING_OFF", "RESETTING", "RESETTING", "RESETTING", "RESETTING", "UP"],
    }


def test_failures_back_off_then_one_probe_brings_the_target_up() -> None:
    health = TargetHealth()
    assert health.failed(now=10.0) == 0.05
    assert (health.state, health.down) == (BACKING_OFF, True)
    assert not health.may_probe(now=10.04)
    assert health.may_probe(now=10.05)
    probe = conn()
    health.probing(probe)
    assert (health.state, health.probe) == (PROBING, probe)
    assert not health.may_probe(now=20.0)  # one attempt at a time
    assert health.failed(now=10.06) == 0.1  # another connection failed: the probe stands
    assert (health.state, health.probe) == (PROBING, probe)
    health.forget(probe)  # the probe failed too
    assert (health.state, health.probe) == (BACKING_OFF, None)
    assert health.failed(now=10.07) == 0.2
    assert not health.may_probe(now=10.2)
    assert health.may_probe(now=10.27)
    assert health.connected() == 4  # attempts it took, for the mirror_up line
    assert (health.state, health.down) == (UP, False)
    assert health.failed(now=11.0) == 0.05  # a new run starts from the base


def test_a_connection_while_up_is_not_a_recovery() -> None:
    health = TargetHealth()
    assert health.connected() is None
    forgotten = conn()
    health.forget(forgotten)
    assert health.state is UP


def test_a_reset_pauses_new_connections_then_the_target_is_up() -> None:
    health = TargetHealth()
    health.reset(now=5.0)
    assert health.state is RESETTING
    assert health.paused(now=5.1)
    health.reset(now=5.1)  # another one: the pause starts again
    assert health.paused(now=5.0 + REOPEN_AFTER_RESET)
    assert not health.paused(now=5.1 + REOPEN_AFTER_RESET)
    assert health.state is UP
    assert not health.paused(now=5.2 + REOPEN_AFTER_RESET)


def test_a_reset_while_down_changes_nothing_and_a_failure_ends_a_pause() -> None:
    health = TargetHealth()
    health.failed(now=1.0)
    health.reset(now=1.0)
    assert health.state is BACKING_OFF
    assert not health.paused(now=1.0)
    health = TargetHealth()
    health.reset(now=1.0)
    health.failed(now=1.1)
    assert health.state is BACKING_OFF
