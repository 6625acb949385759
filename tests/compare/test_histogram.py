"""The latency histogram: buckets, percentile error bound, merging, and its encoding."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from traffic_duplicator.compare.histogram import (
    MAX_MICROS,
    RELATIVE_ERROR,
    Histogram,
    bucket_bounds,
    bucket_index,
)


def test_buckets_are_contiguous_and_each_value_falls_in_its_own_bounds():
    previous_high = -1
    for index in range(bucket_index(MAX_MICROS) + 1):
        low, high = bucket_bounds(index)
        assert low == previous_high + 1
        assert bucket_index(low) == index == bucket_index(high)
        previous_high = high


def test_small_latencies_are_exact():
    histogram = Histogram()
    for micros in (0, 1, 17, 31):
        histogram.record(micros / 1e6)
    assert histogram.quantile(1.0) == pytest.approx(31e-6)
    assert histogram.quantile(0.25) == 0.0


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@given(st.lists(st.floats(min_value=0.0001, max_value=60.0), min_size=1, max_size=300))
def test_percentiles_are_within_the_stated_relative_error(values):
    histogram = Histogram()
    for value in values:
        histogram.record(value)
    for q in (0.5, 0.95, 0.99):
        true = round(exact_quantile(values, q) * 1e6) / 1e6  # recorded in whole µs
        estimate = histogram.quantile(q)
        assert estimate is not None
        assert abs(estimate - true) <= true * RELATIVE_ERROR + 1e-6


@given(
    st.lists(st.floats(min_value=0.0, max_value=100.0), max_size=100),
    st.lists(st.floats(min_value=0.0, max_value=100.0), max_size=100),
)
def test_merging_equals_recording_everything_in_one(first, second):
    a, b, both = Histogram(), Histogram(), Histogram()
    for value in first:
        a.record(value)
        both.record(value)
    for value in second:
        b.record(value)
        both.record(value)
    a.merge(b)
    assert a.counts == both.counts and a.total == both.total
    for q in (0.5, 0.95, 0.99):
        assert a.quantile(q) == both.quantile(q)


def test_merging_two_dynos_moves_the_percentiles_as_expected():
    fast, slow = Histogram(), Histogram()
    for _ in range(90):
        fast.record(0.010)
    for _ in range(10):
        slow.record(0.500)
    fast.merge(slow)
    assert fast.quantile(0.5) == pytest.approx(0.010, rel=RELATIVE_ERROR)
    assert fast.quantile(0.95) == pytest.approx(0.500, rel=RELATIVE_ERROR)


def test_encoding_round_trips_and_is_one_logfmt_word():
    histogram = Histogram()
    for value in (0.001, 0.001, 0.0012, 0.25, 3.0):
        histogram.record(value)
    text = histogram.encode()
    assert text.startswith("h1;") and " " not in text and "=" not in text and '"' not in text
    decoded = Histogram.decode(text)
    assert decoded.counts == histogram.counts and decoded.total == 5


def test_the_documented_example_decodes():
    histogram = Histogram.decode("h1;40*3,2,1*12")
    assert histogram.counts == {40: 3, 42: 1, 43: 12}


def test_an_empty_histogram_encodes_and_has_no_percentiles():
    assert Histogram().encode() == "h1;"
    assert Histogram.decode("h1;").quantile(0.5) is None


@pytest.mark.parametrize("text", ["", "x1;3", "h1;a", "h1;3*", "h1;3*x", "h1;99999"])
def test_garbage_is_refused(text):
    with pytest.raises(ValueError):
        Histogram.decode(text)


def test_latencies_beyond_the_range_are_clamped_not_lost():
    histogram = Histogram()
    histogram.record(10**9)
    histogram.record(-1.0)
    assert histogram.total == 2
    assert bucket_index(MAX_MICROS + 5) == bucket_index(MAX_MICROS)
