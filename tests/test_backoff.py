"""The package's one backoff: doubles while attempts fail, capped, reset by a success."""

from __future__ import annotations

import math

from traffic_duplicator.backoff import Backoff, BackoffPolicy


def test_delays_double_up_to_the_cap() -> None:
    backoff = Backoff(BackoffPolicy(base=0.1, cap=0.5))
    assert [backoff.failure(now=0.0) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert backoff.failures == 5


def test_success_starts_over() -> None:
    backoff = Backoff(BackoffPolicy(base=0.1, cap=1.0))
    backoff.failure(now=0.0)
    backoff.failure(now=0.0)
    backoff.success()
    assert backoff.failures == 0
    assert backoff.failure(now=0.0) == 0.1


def test_the_next_try_is_due_one_delay_after_the_failure() -> None:
    backoff = Backoff(BackoffPolicy(base=0.25, cap=1.0))
    assert backoff.ready(now=0.0)  # nothing failed yet
    backoff.failure(now=10.0)
    assert backoff.retry_at == 10.25
    assert not backoff.ready(now=10.2)
    assert backoff.ready(now=10.25)
    backoff.failure(now=11.0)
    assert backoff.retry_at == 11.5
    backoff.success()
    assert backoff.ready(now=0.0)


def test_a_zero_base_retries_at_once_forever() -> None:
    backoff = Backoff(BackoffPolicy(base=0.0, cap=0.0))
    assert {backoff.failure(now=float(i)) for i in range(100)} == {0.0}


def test_a_long_run_of_failures_stays_at_the_cap() -> None:
    policy = BackoffPolicy(base=0.05, cap=1.0)
    assert policy.delay(10_000) == 1.0
    assert math.isfinite(BackoffPolicy(base=1.0, cap=math.inf).delay(10_000))
