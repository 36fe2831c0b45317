"""The only place shopsim creates random number generators.

Every random draw in simulation flows from one root seed, keyed by purpose and shopper index,
so shopper k's life depends only on ``(seed, k)``: the same for any shopper count and any
``--shard i/n`` (STYLE.md rule 2). Streams are separated by a purpose tag so adding draws to one
stage never shifts another stage's numbers.

Per-shopper streams are counter-based: draw ``j`` of shopper ``k``'s stream ``s`` is the
Philox4x32-10 block cipher (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11;
the generator behind cuRAND and JAX-style counter RNGs, BigCrush-clean) applied to the counter
``(j, k, s)`` under the key ``seed``. Being a pure function of ``(seed, s, k, j)``, it needs no
per-shopper generator object: :class:`ShopperBlocks` computes the first draws of hundreds of
shoppers in one vectorised numpy pass (building a numpy ``Generator`` per shopper cost ~25 µs,
more than simulating the shopper's events), and shopper k's numbers are the same whichever
batch, shard or count computed them. :func:`shopper_rng` still hands out a numpy ``Generator``
per shopper for stages that want its distributions (faults); it is seeded from the same keyed
function. Scenario-wide streams (:func:`global_rng`) are built once per run and keep using
``numpy.random.SeedSequence``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from enum import IntEnum
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.random.bit_generator import ISeedSequence


class Stream(IntEnum):
    """Independent random streams per shopper; values are part of the seed derivation: never renumber."""

    BEHAVIOUR = 1
    IDENTITY = 2
    FAULTS = 3
    LOAD = 4


class Global(IntEnum):
    """Scenario-wide streams (not per shopper)."""

    ARRIVALS = 101
    CATALOG = 102
    PEOPLE_POOL = 103
    DELIVERY = 104  # the HTTP sender's retry jitter (never changes output bytes)


class _Kind(IntEnum):
    """Sub-streams of one shopper stream (part of the counter: never renumber)."""

    UNIFORM = 0
    WORD = 1
    GENERATOR_SEED = 2


def fresh_seed() -> int:
    """A new root seed for runs that were given none; callers must record and print it."""
    return secrets.randbits(63)


# --------------------------------------------------------------------------- Philox4x32-10

_M32 = 0xFFFF_FFFF
_PHILOX_M0 = 0xD2511F53
_PHILOX_M1 = 0xCD9E8D57
_PHILOX_W0 = 0x9E3779B9  # golden ratio
_PHILOX_W1 = 0xBB67AE85  # sqrt(3) - 1
_ROUNDS = 10
_TO_UNIT = 1.0 / (1 << 53)


@lru_cache(maxsize=64)
def _key_schedule(seed: int) -> tuple[tuple[int, int], ...]:
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    k0, k1 = seed & _M32, seed >> 32
    return tuple(((k0 + r * _PHILOX_W0) & _M32, (k1 + r * _PHILOX_W1) & _M32) for r in range(_ROUNDS))


def philox4x32(c0: int, c1: int, c2: int, c3: int, seed: int) -> tuple[int, int, int, int]:
    """Philox4x32-10 of one counter ``(c0, c1, c2, c3)`` (32-bit words) under the 64-bit key ``seed``.

    The reference for :func:`_philox_arrays`; pinned to the Random123 known-answer vectors by a
    unit test.
    """
    for k0, k1 in _key_schedule(seed):
        p0 = c0 * _PHILOX_M0
        p1 = c2 * _PHILOX_M1
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & _M32, (p0 >> 32) ^ c3 ^ k1, p0 & _M32
    return c0, c1, c2, c3


_U32 = np.uint64(32)
_UM32 = np.uint64(_M32)
_UM0 = np.uint64(_PHILOX_M0)
_UM1 = np.uint64(_PHILOX_M1)


def _philox_arrays(c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, c3: np.ndarray, seed: int) -> None:
    """:func:`philox4x32` on equal-shape ``uint64`` arrays of 32-bit values, in place.

    The same integer operations as the scalar version, element by element, so a block
    computed in a batch equals the block computed alone.
    """
    p0 = np.empty_like(c0)
    p1 = np.empty_like(c0)
    for k0, k1 in _key_schedule(seed):
        np.multiply(c0, _UM0, out=p0)
        np.multiply(c2, _UM1, out=p1)
        np.right_shift(p1, _U32, out=c0)
        c0 ^= c1
        c0 ^= np.uint64(k0)
        np.bitwise_and(p1, _UM32, out=c1)
        np.right_shift(p0, _U32, out=c2)
        c2 ^= c3
        c2 ^= np.uint64(k1)
        np.bitwise_and(p0, _UM32, out=c3)


def _blocks(
    seed: int, stream: int, shoppers: Sequence[int], spans: Sequence[tuple[_Kind, int, int]]
) -> np.ndarray:
    """Random 64-bit words, one row per shopper: for each ``(kind, first, blocks)`` span, the
    words ``2·first .. 2·(first+blocks)-1`` of that sub-stream, spans side by side.

    Word ``2m`` and ``2m+1`` of shopper k's sub-stream are the two halves of the Philox block
    of counter ``(m, k_lo, k_hi, stream << 8 | kind)``.
    """
    if len(shoppers) == 1 and sum(n for _, _, n in spans) <= 16:
        # One shopper, few blocks (a numpy generator's seed, a refill): plain ints (~5 µs a
        # block) beat ~100 numpy calls on tiny arrays (~120 µs).
        k = shoppers[0]
        row: list[int] = []
        for kind, first, blocks in spans:
            for block in range(first, first + blocks):
                o0, o1, o2, o3 = philox4x32(block, k & _M32, k >> 32, (stream << 8) | kind, seed)
                row += ((o0 << 32) | o1, (o2 << 32) | o3)
        return np.array([row], dtype=np.uint64)
    index = np.asarray(shoppers, dtype=np.uint64)
    m = np.concatenate([np.arange(first, first + n, dtype=np.uint64) for _, first, n in spans])
    tag = np.concatenate([np.full(n, (stream << 8) | kind, dtype=np.uint64) for kind, _, n in spans])
    rows, cols = len(index), len(m)
    c0, c3 = np.tile(m, rows), np.tile(tag, rows)
    c1, c2 = np.repeat(index & _UM32, cols), np.repeat(index >> _U32, cols)
    _philox_arrays(c0, c1, c2, c3, seed)
    c0 <<= _U32
    c0 |= c1
    c2 <<= _U32
    c2 |= c3
    out = np.empty((rows, 2 * cols), dtype=np.uint64)
    out[:, 0::2] = c0.reshape(rows, cols)
    out[:, 1::2] = c2.reshape(rows, cols)
    return out


def _unit(words: np.ndarray) -> np.ndarray:
    """53-bit uniforms in [0, 1) from 64-bit words (exact: no rounding anywhere)."""
    return (words >> np.uint64(11)).astype(np.float64) * _TO_UNIT


def _span(kind: _Kind, start: int, count: int) -> tuple[tuple[_Kind, int, int], int]:
    first = start // 2
    return (kind, first, (start + count + 1) // 2 - first), start - 2 * first


def shopper_words(
    seed: int, stream: Stream, shoppers: Sequence[int], start: int, count: int
) -> list[list[int]]:
    """Random 64-bit integers ``start .. start+count-1`` of each shopper's ``stream`` (a list each)."""
    span, skip = _span(_Kind.WORD, start, count)
    rows: list[list[int]] = _blocks(seed, stream, shoppers, (span,))[:, skip : skip + count].tolist()
    return rows


def shopper_uniforms(
    seed: int, stream: Stream, shoppers: Sequence[int], start: int, count: int
) -> list[list[float]]:
    """Uniform floats in [0, 1) (53-bit) ``start .. start+count-1`` of each shopper's ``stream``."""
    span, skip = _span(_Kind.UNIFORM, start, count)
    rows: list[list[float]] = _unit(_blocks(seed, stream, shoppers, (span,))[:, skip : skip + count]).tolist()
    return rows


class ShopperBlocks:
    """The first draws of one stream for the shoppers an iterator will walk, many per numpy pass.

    ``take(k)`` returns shopper k's first ``uniforms`` uniforms and first ``words`` 64-bit words
    (both even) as fresh Python lists (the caller owns them; two shoppers' lists never alias),
    computed in batches of ``batch`` shoppers ``k, k + step, k + 2·step, ...`` (``step`` = the
    shard count, so a shard computes only its own shoppers). Draws past the block come from
    :func:`shopper_uniforms` / :func:`shopper_words` with ``start`` = the block size: the same
    numbers the block would have held had it been longer.
    """

    __slots__ = (
        "_base",
        "_batch",
        "_max_batch",
        "_rows",
        "_seed",
        "_spans",
        "_step",
        "_stream",
        "uniforms",
        "words",
    )

    def __init__(
        self, seed: int, stream: Stream, *, uniforms: int, words: int, step: int = 1, batch: int = 256
    ) -> None:
        if uniforms % 2 or words % 2:
            raise ValueError("block sizes must be even (two words per Philox block)")
        _key_schedule(seed)  # validate the seed now, not at the first shopper
        self._seed = seed
        self._stream = stream
        self.uniforms = uniforms
        self.words = words
        self._spans = ((_Kind.UNIFORM, 0, uniforms // 2), (_Kind.WORD, 0, words // 2))
        self._step = step
        self._batch = 8  # grows to ``batch``: short runs do not pay for shoppers they never walk
        self._max_batch = batch
        self._base = -1
        self._rows: tuple[list[list[float]], list[list[int]]] = ([], [])

    def take(self, k: int) -> tuple[list[float], list[int]]:
        """Shopper k's first draws (any k; ascending ``k`` in steps of ``step`` is the fast path)."""
        offset = k - self._base
        i, rem = divmod(offset, self._step)
        if self._base < 0 or offset < 0 or rem or i >= len(self._rows[0]):
            ks = range(k, k + self._batch * self._step, self._step)
            block = _blocks(self._seed, self._stream, ks, self._spans)
            n = self.uniforms
            self._rows = (_unit(block[:, :n]).tolist(), block[:, n:].tolist())
            self._base = k
            self._batch = min(2 * self._batch, self._max_batch)
            i = 0
        return self._rows[0][i], self._rows[1][i]


# --------------------------------------------------------------------------- numpy generators


class _Words(ISeedSequence):
    """A seed sequence that is just four precomputed words (skips ``SeedSequence`` hashing)."""

    __slots__ = ("_state",)

    def __init__(self, state: list[int]) -> None:
        self._state = state

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        if n_words != 4 or np.dtype(dtype) != np.uint64:
            raise ValueError("only PCG64 seeding (4 uint64 words) is supported")
        return np.array(self._state, dtype=np.uint64)


def shopper_rng(seed: int, shopper: int, stream: Stream) -> np.random.Generator:
    """A numpy generator for one purpose of one shopper (a fresh, independent object each call).

    PCG64 whose 128-bit state and increment are the shopper's Philox words for this stream:
    ~10× cheaper to build than a ``SeedSequence``-seeded one.
    """
    (state,) = _blocks(seed, stream, (shopper,), ((_Kind.GENERATOR_SEED, 0, 2),)).tolist()
    # numpy accepts any ISeedSequence here; its stubs only name SeedSequence.
    return np.random.Generator(np.random.PCG64(_Words(state)))  # type: ignore[arg-type]


def global_rng(seed: int, stream: Global) -> np.random.Generator:
    """The generator for a scenario-wide purpose (arrival process, catalog, identity pools)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(int(stream),))))


def faker_seed(seed: int, shopper: int) -> int:
    """An integer seed for ``Faker.seed_instance`` derived from (seed, shopper)."""
    return int(
        np.random.SeedSequence(seed, spawn_key=(int(Stream.IDENTITY), shopper, 1)).generate_state(
            1, np.uint64
        )[0]
    )
