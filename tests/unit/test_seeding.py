"""Counter-based per-shopper streams: shopper k's draws depend only on (seed, stream, k)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.simulate.journey import _BEHAVIOUR_U, _BEHAVIOUR_W, ShopperStreams, _Draws
from generator.simulate.seeding import (
    ShopperBlocks,
    Stream,
    philox4x32,
    shopper_rng,
    shopper_uniforms,
    shopper_words,
)

# Random123's kat_vectors for philox4x32-10: counter (4 words), key (2 words) -> output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("ctr", "key", "out"), KAT)
def test_philox_matches_the_random123_known_answers(ctr, key, out):
    assert philox4x32(*ctr, key[0] | (key[1] << 32)) == out


def test_batched_blocks_equal_the_scalar_cipher():
    seed, k = 2**63 - 5, 2**33 + 7  # both halves of seed and shopper index in play
    (row,) = shopper_words(seed, Stream.IDENTITY, [k, k + 1, k + 2], 0, 6)[:1]
    expected = []
    for m in range(3):
        o0, o1, o2, o3 = philox4x32(m, k & 0xFFFFFFFF, k >> 32, (int(Stream.IDENTITY) << 8) | 1, seed)
        expected += [(o0 << 32) | o1, (o2 << 32) | o3]
    assert row == expected


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**64 - 1),
    k=st.integers(min_value=0, max_value=10**9),
    start=st.integers(min_value=0, max_value=40),
    count=st.integers(min_value=1, max_value=20),
    others=st.lists(st.integers(min_value=0, max_value=10**9), max_size=4),
)
def test_a_shoppers_draws_do_not_depend_on_the_batch(seed, k, start, count, others):
    alone_u = shopper_uniforms(seed, Stream.BEHAVIOUR, [k], 0, start + count)[0]
    alone_w = shopper_words(seed, Stream.BEHAVIOUR, [k], 0, start + count)[0]
    batch = [*others, k]
    assert shopper_uniforms(seed, Stream.BEHAVIOUR, batch, start, count)[-1] == alone_u[start:]
    assert shopper_words(seed, Stream.BEHAVIOUR, batch, start, count)[-1] == alone_w[start:]
    assert all(0.0 <= x < 1.0 for x in alone_u)
    assert all(0 <= x < 2**64 for x in alone_w)


def test_streams_shoppers_and_seeds_are_distinct():
    a = shopper_uniforms(7, Stream.BEHAVIOUR, [3, 4], 0, 8)
    assert a[0] != a[1]
    assert a[0] != shopper_uniforms(7, Stream.IDENTITY, [3], 0, 8)[0]
    assert a[0] != shopper_uniforms(8, Stream.BEHAVIOUR, [3], 0, 8)[0]
    assert shopper_uniforms(7, Stream.BEHAVIOUR, [3], 0, 8)[0] == a[0]


def test_uniforms_look_uniform():
    u = np.array(shopper_uniforms(11, Stream.BEHAVIOUR, range(2000), 0, 50)).ravel()
    counts = np.histogram(u, bins=20, range=(0.0, 1.0))[0]
    expected = len(u) / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 50  # 19 degrees of freedom: p < 1e-4 by chance
    assert abs(float(np.corrcoef(u[:-1], u[1:])[0, 1])) < 0.02


@pytest.mark.parametrize("step", [1, 3])
def test_shopper_blocks_give_each_shopper_its_own_stream(step):
    blocks = ShopperBlocks(5, Stream.BEHAVIOUR, uniforms=6, words=4, step=step, batch=4)
    ks = [1 + step * i for i in range(20)] + [0, 2, 500]  # the iterator's order, then strays
    for k in ks:
        u, w = blocks.take(k)
        assert u == shopper_uniforms(5, Stream.BEHAVIOUR, [k], 0, 6)[0]
        assert w == shopper_words(5, Stream.BEHAVIOUR, [k], 0, 4)[0]


def test_two_live_draws_of_one_shopper_do_not_disturb_each_other():
    streams = ShopperStreams(5)
    a = _Draws(5, 8, *streams.behaviour.take(8))
    b = _Draws(5, 8, *streams.behaviour.take(8))
    first = [a.u() for _ in range(_BEHAVIOUR_U + 5)] + [a.bits() for _ in range(_BEHAVIOUR_W)]
    assert [b.u() for _ in range(_BEHAVIOUR_U + 5)] + [b.bits() for _ in range(_BEHAVIOUR_W)] == first


def test_draws_continue_the_stream_past_the_block():
    streams = ShopperStreams(3)
    d = _Draws(3, 42, *streams.behaviour.take(42))
    us = [d.u() for _ in range(_BEHAVIOUR_U + 40)]
    bits = [d.bits() for _ in range(_BEHAVIOUR_W)]  # two words each: past the block
    assert us == shopper_uniforms(3, Stream.BEHAVIOUR, [42], 0, _BEHAVIOUR_U + 40)[0]
    words = shopper_words(3, Stream.BEHAVIOUR, [42], 0, 2 * _BEHAVIOUR_W)[0]
    assert bits == [(words[i] << 16) | (words[i + 1] & 0xFFFF) for i in range(0, 2 * _BEHAVIOUR_W, 2)]


def test_normals_are_standard():
    d = _Draws(9, 1, [], [])
    z = np.array([d.z() for _ in range(20_000)])
    assert abs(z.mean()) < 0.05
    assert abs(z.std() - 1.0) < 0.05


def test_bad_seeds_are_rejected():
    with pytest.raises(ValueError):
        ShopperBlocks(-1, Stream.BEHAVIOUR, uniforms=2, words=2)
    with pytest.raises(ValueError):
        shopper_uniforms(2**64, Stream.BEHAVIOUR, [0], 0, 1)


def test_shopper_rng_is_fresh_deterministic_and_independent():
    a, b = shopper_rng(7, 3, Stream.FAULTS), shopper_rng(7, 3, Stream.FAULTS)
    assert a is not b
    first = a.random(4)
    assert (first == b.random(4)).all()  # drawing from a did not move b
    assert not (first == shopper_rng(7, 4, Stream.FAULTS).random(4)).all()
    assert not (first == shopper_rng(7, 3, Stream.LOAD).random(4)).all()
    assert 0 <= int(shopper_rng(7, 3, Stream.FAULTS).integers(0, 10)) < 10
