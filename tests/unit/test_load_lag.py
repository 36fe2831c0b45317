"""Arrival-lag histograms: percentiles, late share, merging across workers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generator.load.lag import LagHistogram, bucket_ms
from generator.load.messages import pool_verdict

lags = st.lists(st.floats(min_value=0, max_value=600_000, allow_nan=False), max_size=200)


def test_percentiles_late_share_and_exact_max():
    hist = LagHistogram(late_ms=100)
    for value in [0, 1, 2, 3, 4, 5, 6, 7, 150, 2_345]:
        hist.record(value)
    summary = hist.summary()
    assert summary.n == 10
    assert summary.late == 2
    assert summary.late_share == 0.2
    assert summary.max_ms == 2_345
    assert summary.p50_ms == 4
    assert summary.p95_ms == 2_300  # bucketed to two significant digits, never above the max


def test_negative_lags_count_as_on_time():
    hist = LagHistogram()
    hist.record(-5)
    assert hist.summary().p50_ms == 0 and hist.late == 0


@given(lags, lags)
def test_merging_two_workers_equals_recording_everything_in_one(a, b):
    one, two, both = LagHistogram(), LagHistogram(), LagHistogram()
    for v in a:
        one.record(v)
        both.record(v)
    for v in b:
        two.record(v)
        both.record(v)
    merged = LagHistogram.merged(
        [LagHistogram.from_dict(one.as_dict()), LagHistogram.from_dict(two.as_dict())]
    )
    assert merged.summary().as_dict() == both.summary().as_dict() | {
        "mean_ms": merged.summary().as_dict()["mean_ms"]
    }
    assert merged.buckets == both.buckets


@given(st.floats(min_value=0, max_value=10**7, allow_nan=False))
def test_buckets_keep_two_significant_digits(value):
    bucket = bucket_ms(value)
    assert abs(bucket - value) <= max(0.5, 0.05 * value) + 0.5


def test_pool_verdict_names_the_fix():
    assert "raise --users" in pool_verdict(0.2, users=3, max_busy=3)
    assert "add --workers" in pool_verdict(0.2, users=3, max_busy=1)
    assert pool_verdict(0.0, users=3).startswith("pool kept up")


@given(st.floats(min_value=-1_000, max_value=10**6, allow_nan=False), st.sampled_from([0.0, 0.3, 100.0]))
def test_a_recorded_lag_lands_in_its_bucket_and_counts_late_exactly(value, late_ms):
    # record() skips the rounding call below 99.5 ms: same bucket, same late count.
    hist = LagHistogram(late_ms=late_ms)
    hist.record(value)
    assert hist.buckets == {bucket_ms(max(0.0, value)): 1}
    assert hist.late == (max(0.0, value) > late_ms)


EDGES = [0.49, 0.5, 0.51, 1.5, 2.5, 50.5, 98.5, 99.49, 99.5, 99.51, 100.49, 104.9, 105.0]


@pytest.mark.parametrize("value", EDGES)
def test_the_inline_rounding_matches_bucket_ms_at_its_edges(value):
    hist = LagHistogram()
    hist.record(value)
    assert hist.buckets == {bucket_ms(value): 1}
