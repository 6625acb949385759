"""Diffy's noise rule and the latency rule.

Diffy's documentation gives no numeric examples; these are worked from its code
(twitter/diffy analysis/JoinedDifferences.scala) with its default thresholds
(DiffyServiceModule: threshold.relative 20, threshold.absolute 0.03, both in percent).
"""

from __future__ import annotations

import pytest

from traffic_duplicator.compare.noise import (
    Latency,
    Rate,
    Thresholds,
    exceeds_noise,
    slower_than_noise,
)

TOTAL = 10_000


@pytest.mark.parametrize(
    ("raw", "noise", "flagged", "why"),
    [
        # Worked example 1: 30 raw vs 0 noise differences out of 10,000 requests:
        # relative |30-0|/(30+0) = 100 % > 20 %, absolute 30/10,000 = 0.3 % > 0.03 %.
        (30, 0, True, "a real regression"),
        # 2: 12 vs 10: relative 2/22 = 9.1 % <= 20 %: noise.
        (12, 10, False, "relative difference too small"),
        # 3: 3 vs 0 out of 10,000: relative 100 %, absolute 0.03 % is not > 0.03 %.
        (3, 0, False, "absolute difference at the threshold"),
        # 4: 4 vs 0: absolute 0.04 % > 0.03 %.
        (4, 0, True, "just over the absolute threshold"),
        # 5: 10 vs 12: the candidate differs less than the baseline: never flagged.
        (10, 12, False, "R < N"),
        # 6: 500 vs 300: relative 200/800 = 25 % > 20 %, absolute 2 % > 0.03 %.
        (500, 300, True, "noisy field with a real regression on top"),
        # 7: 500 vs 350: relative 150/850 = 17.6 %: within the noise.
        (500, 350, False, "noisy field, shift within the noise"),
        # 8: no differences at all.
        (0, 0, False, "identical"),
    ],
)
def test_diffy_rule_worked_examples(raw, noise, flagged, why):
    assert exceeds_noise(Rate(raw, TOTAL), Rate(noise, TOTAL)) is flagged, why


def test_without_a_baseline_every_difference_is_flagged():
    assert exceeds_noise(Rate(1, 1_000_000), None)
    assert not exceeds_noise(Rate(0, 10), None)


def test_rates_make_unequal_totals_comparable():
    # Candidate 10 of 1,000 (1 %), baseline 10 of 10,000 (0.1 %): a tenfold rate.
    assert exceeds_noise(Rate(10, 1_000), Rate(10, 10_000))
    # Equal rates with different totals are noise.
    assert not exceeds_noise(Rate(10, 1_000), Rate(100, 10_000))


def test_a_baseline_that_saw_nothing_measures_no_noise():
    assert exceeds_noise(Rate(5, 100), Rate(0, 0))


def test_thresholds_can_be_tuned():
    loose = Thresholds(relative=0.5, absolute=0.0)
    assert not exceeds_noise(Rate(500, TOTAL), Rate(300, TOTAL), loose)


def test_a_candidate_50ms_slower_than_a_baseline_in_a_slower_environment_is_flagged():
    baseline = Latency(production=0.020, shadow=0.030, samples=100)  # environment: +10 ms
    candidate = Latency(production=0.020, shadow=0.080, samples=100)  # +60 ms
    assert slower_than_noise(candidate, baseline)


def test_an_environment_that_is_slower_everywhere_cancels_out():
    baseline = Latency(production=0.020, shadow=0.045, samples=100)
    candidate = Latency(production=0.021, shadow=0.047, samples=100)
    assert not slower_than_noise(candidate, baseline)


def test_latency_is_never_flagged_without_a_baseline_or_with_too_few_samples():
    candidate = Latency(production=0.020, shadow=0.500, samples=100)
    assert not slower_than_noise(candidate, None)
    assert not slower_than_noise(candidate, Latency(0.020, 0.020, samples=2))
