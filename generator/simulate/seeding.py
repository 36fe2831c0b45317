"""The only place shopsim creates random number generators.

Every random draw in simulation flows from one root seed through ``numpy.random.SeedSequence``
keyed by purpose and shopper index, so shopper k's life depends only on ``(seed, k)``: the same
for any shopper count and any ``--shard i/n`` (STYLE.md rule 2). Streams are separated by a
purpose tag so adding draws to one stage never shifts another stage's numbers.
"""

from __future__ import annotations

import secrets
from enum import IntEnum

import numpy as np


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


def fresh_seed() -> int:
    """A new root seed for runs that were given none; callers must record and print it."""
    return secrets.randbits(63)


def shopper_rng(seed: int, shopper: int, stream: Stream) -> np.random.Generator:
    """The generator for one purpose of one shopper."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(int(stream), shopper))))


def global_rng(seed: int, stream: Global) -> np.random.Generator:
    """The generator for a scenario-wide purpose (arrival process, catalog, identity pools)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(int(stream),))))


def faker_seed(seed: int, shopper: int) -> int:
    """An integer seed for ``Faker.seed_instance`` derived from (seed, shopper)."""
    return int(np.random.SeedSequence(seed, spawn_key=(int(Stream.IDENTITY), shopper, 1)).generate_state(1, np.uint64)[0])
