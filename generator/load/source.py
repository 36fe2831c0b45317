"""Shopper jobs for one shard: simulate → fault plan → timed sends (no Locust, no I/O).

Each load process simulates only shoppers ``k ≡ i (mod n)`` and plans their deliveries with
the scenario's faults. Faults are deterministic per ``(seed, shopper)``, so planning one
shopper at a time gives exactly the deliveries the global plan holds for that shopper, and
the shards' union is the single-process run.

The schedule origin is the simulated start of shopper 0 (:func:`schedule_origin`), the same
for every shard, so all workers replay one timeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from generator.faults import plan_deliveries
from generator.load.schedule import ShopperJob, build_job
from generator.scenario.model import Scenario
from generator.simulate import arrival_times, simulate_shoppers

__all__ = ["JobSpec", "schedule_origin", "shopper_jobs"]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """What to simulate and how to time it."""

    seed: int
    shoppers: int | None = None
    speed: float = 1.0
    batch_size: int = 1
    batch_window_ms: int = 1000
    shard: tuple[int, int] = (0, 1)


def schedule_origin(scenario: Scenario, *, seed: int, shoppers: int | None) -> int:
    """The simulated start of shopper 0 (epoch ms), or the scenario start if there is none."""
    for start_ms in arrival_times(scenario, seed=seed, shoppers=shoppers):
        return start_ms
    return scenario.start_ms


def shopper_jobs(scenario: Scenario, spec: JobSpec, *, origin_ms: int) -> Iterator[ShopperJob]:
    """The shard's shoppers as replayable jobs, in due order (lazily: memory stays flat)."""
    for life in simulate_shoppers(scenario, seed=spec.seed, shoppers=spec.shoppers, shard=spec.shard):
        deliveries = list(plan_deliveries(scenario, [life], seed=spec.seed))
        yield build_job(
            life.person.shopper,
            life.start_ms,
            deliveries,
            origin_ms=origin_ms,
            speed=spec.speed,
            batch_size=spec.batch_size,
            batch_window_ms=spec.batch_window_ms,
        )
