"""Shopper arrival times: a non-homogeneous Poisson process, sampled by thinning.

The rate at time t is ``rate_per_hour × hourly[hour(t)] × (weekend_factor on Sat/Sun)``, all
in UTC (the diurnal factors are normalised to mean 1 by the model, so ``rate_per_hour`` stays
the daily mean on weekdays). Thinning (Lewis & Shedler): draw candidates from a homogeneous
process at the peak rate and keep each with probability rate(t) / peak.

Determinism: the whole sequence is drawn from one scenario-wide stream
(``seeding.Global.ARRIVALS``) in fixed-size numpy blocks, so arrival k depends only on
``(seed, scenario)``, never on how many shoppers are asked for or on the shard. Shards recompute
the (cheap: ~1 s per million arrivals) sequence and keep their own k's.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from generator.scenario.model import Scenario
from generator.simulate.seeding import Global, global_rng

_BLOCK = 4096
"""Candidates drawn per numpy call. Part of the determinism contract: changing it changes
every arrival time for every seed, so treat it like a stream number."""

_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000


def shopper_limit(scenario: Scenario, shoppers: int | None) -> tuple[int | None, int | None]:
    """The (count, end_ms) bounds of a run.

    An explicit ``shoppers`` (the CLI's ``--shoppers``) wins: exactly that many shoppers arrive,
    the process continuing past the scenario's ``duration`` at the same rates if it must.
    Otherwise the scenario's ``shoppers`` and ``duration`` both bound the run, whichever ends it first.
    """
    if shoppers is not None:
        return shoppers, None
    end = None if scenario.duration is None else scenario.start_ms + scenario.duration
    return scenario.shoppers, end


def arrival_times(scenario: Scenario, *, seed: int, shoppers: int | None = None) -> Iterator[int]:
    """Arrival (start) times in epoch ms of shoppers 0, 1, 2, ... in ascending order."""
    count, end_ms = shopper_limit(scenario, shoppers)
    if count is not None and count <= 0:
        return
    arrivals = scenario.population.arrivals
    hourly = np.asarray(arrivals.hourly, dtype=np.float64)
    weekend = float(arrivals.weekend_factor)
    # Relative intensity per (weekday, hour): index = weekday * 24 + hour, Monday = 0.
    day_factor = np.array([1.0] * 5 + [weekend] * 2)
    intensity = (day_factor[:, None] * hourly[None, :]).ravel()
    peak = float(intensity.max())
    accept = intensity / peak
    mean_gap_ms = _HOUR_MS / (arrivals.rate_per_hour * peak)

    rng = global_rng(seed, Global.ARRIVALS)
    start_ms = scenario.start_ms
    elapsed = 0.0  # ms since start, float so the gaps do not round away
    emitted = 0
    while True:
        gaps = rng.standard_exponential(_BLOCK) * mean_gap_ms
        coins = rng.random(_BLOCK)
        times = elapsed + np.cumsum(gaps)
        elapsed = float(times[-1])
        absolute = start_ms + times.astype(np.int64)
        # 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
        slot = ((absolute // _DAY_MS + 3) % 7) * 24 + (absolute // _HOUR_MS) % 24
        kept = absolute[coins < accept[slot]].tolist()
        for t in kept:
            if end_ms is not None and t >= end_ms:
                return
            yield t
            emitted += 1
            if count is not None and emitted >= count:
                return
