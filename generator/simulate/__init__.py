"""Simulation: a scenario and a seed → shopper lives → the truth stream of events.

Public API (docs/interfaces: "simulate")::

    simulate_shoppers(scenario, *, seed, shoppers=None, shard=(0, 1)) -> Iterator[ShopperLife]
    simulate(scenario, *, seed, shoppers=None, shard=(0, 1)) -> Iterator[Event]
    arrival_times(scenario, *, seed, shoppers=None) -> Iterator[int]
    resolve_seed(cli_seed, scenario) -> int

Shopper k's life depends only on ``(seed, k)`` and the scenario: the same for any shopper
count and any shard. Everything streams: one shopper is held in memory at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from generator.errors import ShopsimError
from generator.events import Event, ShopperLife
from generator.scenario.model import Scenario
from generator.simulate.arrivals import arrival_times
from generator.simulate.journey import Compiled, ShopperStreams, walk
from generator.simulate.seeding import fresh_seed

log = logging.getLogger("shopsim")


def _check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ShopsimError(f"--shard {index}/{count}: need 0 <= i < n, e.g. --shard 0/4 ... --shard 3/4")
    return index, count


def simulate_shoppers(
    scenario: Scenario, *, seed: int, shoppers: int | None = None, shard: tuple[int, int] = (0, 1)
) -> Iterator[ShopperLife]:
    """Shopper lives in arrival (= index) order; shard ``(i, n)`` yields only shoppers with k % n == i.

    ``shoppers`` overrides ``scenario.shoppers`` (and then ignores ``duration``: exactly that
    many shoppers arrive).
    """
    index, count = _check_shard(shard)
    compiled = Compiled(scenario, seed=seed)
    streams = ShopperStreams(seed, step=count)  # this iterator's own: never shared
    for k, start_ms in enumerate(arrival_times(scenario, seed=seed, shoppers=shoppers)):
        if k % count == index:
            yield walk(compiled, k, start_ms, streams)


def simulate(
    scenario: Scenario, *, seed: int, shoppers: int | None = None, shard: tuple[int, int] = (0, 1)
) -> Iterator[Event]:
    """The truth stream: shopper 0's events in time order, then shopper 1's, ..."""
    for life in simulate_shoppers(scenario, seed=seed, shoppers=shoppers, shard=shard):
        yield from life.events


def simulate_one(scenario: Scenario, *, seed: int, shopper: int, shoppers: int | None = None) -> ShopperLife:
    """Shopper ``shopper``'s life alone (for ``shopsim replay`` and "reproduce with" lines);
    ``shoppers`` overrides the scenario's count as in :func:`simulate_shoppers`.

    Raises :class:`ShopsimError` when the shopper count or duration ends the run before shopper
    ``shopper`` arrives.
    """
    if shopper < 0:
        raise ShopsimError(f"--shopper must be 0 or more, got {shopper}")
    for k, start_ms in enumerate(arrival_times(scenario, seed=seed, shoppers=shoppers)):
        if k == shopper:
            return walk(Compiled(scenario, seed=seed), k, start_ms)
    if shoppers is not None:
        raise ShopsimError(
            f"--shopper {shopper}: a run of --shoppers {shoppers} has shoppers 0 to {shoppers - 1}"
        )
    raise ShopsimError(
        f"--shopper {shopper}: scenario {scenario.name!r} with seed {seed} has no such shopper "
        "(its 'shoppers'/'duration' end the run before that shopper arrives; "
        "a run with --shoppers N needs the same --shoppers N here)"
    )


def resolve_seed(cli_seed: int | None, scenario: Scenario) -> int:
    """The run's root seed: ``--seed``, then the scenario's ``seed:``, then a fresh one (logged)."""
    if cli_seed is not None:
        if not 0 <= cli_seed < 2**63:
            raise ShopsimError(f"--seed must be between 0 and 2**63 - 1, got {cli_seed}")
        return cli_seed
    if scenario.seed is not None:
        return scenario.seed
    seed = fresh_seed()
    log.warning("no seed given; using seed %d (rerun with --seed %d to reproduce)", seed, seed)
    return seed


__all__ = ["arrival_times", "resolve_seed", "simulate", "simulate_one", "simulate_shoppers"]
