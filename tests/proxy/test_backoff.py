"""The mirror targets' reconnect backoff: the package's one backoff, with the proxy's figures.

The mechanism itself is tested in tests/test_backoff.py.
"""

from __future__ import annotations

from traffic_duplicator.backoff import Backoff
from traffic_duplicator.proxy.health import RECONNECT_BACKOFF


def test_default_cap_lets_mirroring_resume_within_two_seconds() -> None:
    # The worst wait after a target comes back is one capped delay plus a connect.
    assert RECONNECT_BACKOFF.cap <= 1.0
    assert RECONNECT_BACKOFF.base > 0
    backoff = Backoff(RECONNECT_BACKOFF)
    assert max(backoff.failure(now=0.0) for _ in range(50)) == RECONNECT_BACKOFF.cap


def test_delays_double_from_fifty_milliseconds() -> None:
    backoff = Backoff(RECONNECT_BACKOFF)
    assert [backoff.failure(now=0.0) for _ in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]
