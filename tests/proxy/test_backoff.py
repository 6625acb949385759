"""Reconnect backoff: doubles while attempts fail, capped, reset by a success."""

from __future__ import annotations

from traffic_duplicator.proxy.backoff import INITIAL_DELAY, MAX_DELAY, Backoff


def test_delays_double_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.1, cap=0.5)
    assert [backoff.failure() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert backoff.failures == 5


def test_success_starts_over() -> None:
    backoff = Backoff(initial=0.1, cap=1.0)
    backoff.failure()
    backoff.failure()
    backoff.success()
    assert backoff.failures == 0
    assert backoff.failure() == 0.1


def test_default_cap_lets_mirroring_resume_within_two_seconds() -> None:
    # The worst wait after a target comes back is one capped delay plus a connect.
    assert MAX_DELAY <= 1.0
    assert INITIAL_DELAY > 0
    backoff = Backoff()
    assert max(backoff.failure() for _ in range(50)) == MAX_DELAY
