"""Durations, ULIDs and seeding: the primitives every stage relies on."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generator.durations import format_duration, parse_duration
from generator.ids import ulid, ulid_time_ms
from generator.simulate.seeding import Stream, shopper_rng


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("90s", 90_000),
        ("1h30m", 5_400_000),
        ("2d", 172_800_000),
        ("1.5s", 1500),
        (30, 30_000),
    ],
)
def test_parse_duration(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("bad", ["", "ten", "5 parsecs", "-1s", -3, True, "1h-5m"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@given(st.integers(min_value=0, max_value=10**12))
def test_format_parse_roundtrip(ms):
    assert parse_duration(format_duration(ms)) == ms


@given(st.integers(min_value=0, max_value=2**48 - 1), st.integers(min_value=0, max_value=2**80 - 1))
def test_ulid_roundtrip_and_shape(ts, bits):
    value = ulid(ts, bits)
    assert len(value) == 26
    assert ulid_time_ms(value) == ts


def test_ulids_sort_by_time():
    assert ulid(1_000, 2**80 - 1) < ulid(1_001, 0)


def test_shopper_rng_depends_only_on_seed_and_shopper():
    a = shopper_rng(7, 3, Stream.BEHAVIOUR).random(4)
    b = shopper_rng(7, 3, Stream.BEHAVIOUR).random(4)
    c = shopper_rng(7, 4, Stream.BEHAVIOUR).random(4)
    d = shopper_rng(7, 3, Stream.IDENTITY).random(4)
    assert (a == b).all()
    assert not (a == c).all()
    assert not (a == d).all()
