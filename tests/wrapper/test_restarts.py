"""Restart backoff and the crash limit, driven by explicit times."""

from __future__ import annotations

from traffic_duplicator.wrapper.restarts import RestartTracker, proxy_policy, replayer_policy


def crash_delays(tracker: RestartTracker, uptimes: list[float]) -> list[float]:
    now = 0.0
    delays = []
    for uptime in uptimes:
        started = now
        now += uptime
        decision = tracker.record_crash(started, now)
        assert not decision.give_up
        delays.append(decision.delay)
        now += decision.delay
    return delays


def test_replayer_backoff_doubles_from_one_second_to_a_thirty_second_cap() -> None:
    tracker = RestartTracker(replayer_policy(1.0))
    assert crash_delays(tracker, [0.1] * 8) == [1, 2, 4, 8, 16, 30, 30, 30]


def test_replayer_backoff_resets_after_sixty_seconds_up() -> None:
    tracker = RestartTracker(replayer_policy(1.0))
    assert crash_delays(tracker, [0.1, 0.1, 0.1, 60.0, 0.1]) == [1, 2, 4, 1, 2]


def test_replayer_is_never_given_up_on() -> None:
    tracker = RestartTracker(replayer_policy(0.01))
    for i in range(100):
        assert not tracker.record_crash(i * 0.02, i * 0.02 + 0.01).give_up


def test_a_shorter_base_shrinks_every_delay() -> None:
    tracker = RestartTracker(replayer_policy(0.25))
    assert crash_delays(tracker, [0.1] * 4) == [0.25, 0.5, 1.0, 2.0]


def test_proxy_restarts_at_once_until_five_crashes_in_sixty_seconds() -> None:
    tracker = RestartTracker(proxy_policy())
    decisions = [tracker.record_crash(t, t + 1.0) for t in (0.0, 10.0, 20.0, 30.0)]
    assert [d.delay for d in decisions] == [0, 0, 0, 0]
    assert not any(d.give_up for d in decisions)
    fifth = tracker.record_crash(40.0, 41.0)
    assert fifth.give_up
    assert fifth.crashes_in_window == 5


def test_proxy_crashes_spread_over_more_than_a_minute_are_forgiven() -> None:
    tracker = RestartTracker(proxy_policy())
    for t in range(0, 300, 15):
        decision = tracker.record_crash(float(t), t + 1.0)
        assert not decision.give_up
        assert decision.crashes_in_window <= 4
