"""Server-side faults for exercising senders: latency, 5xx errors and rate limiting.

- ``--latency DIST``: each ingestion request waits a duration drawn from a scenario-style
  distribution (``50ms``, ``"{lognormal: {median: 20ms, p99: 400ms}}"``) before it is processed.
- ``--error-rate P``: that share of ingestion requests is answered ``500`` or ``503`` (alternating)
  without processing anything.
- ``--rate-limit RPS``: a token bucket (burst = one second) answers ``429`` with ``Retry-After``.

Draws come from a counter-based generator (splitmix64 of the request number and a seed), so
the emulator uses no global RNG and a run is repeatable for the same request order.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from statistics import NormalDist

import yaml
from pydantic import ValidationError

from generator.scenario.model import Distribution

_MASK = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def parse_latency(text: str) -> Distribution:
    """A latency distribution from a flag value (a duration or a YAML mapping); ValueError if invalid."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not YAML"  # the parser's reason, not its dump
        raise ValueError(f"cannot read latency {text!r}: {problem}") from None
    try:
        return Distribution.model_validate(value)
    except ValidationError as exc:
        detail = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        raise ValueError(
            f"latency {text!r} is not a distribution ({detail}); write e.g. 50ms or "
            "'{lognormal: {median: 20ms, p99: 400ms}}'"
        ) from None


@dataclass(slots=True)
class Verdict:
    """What the fault layer decided for one request: delay first, then maybe answer early."""

    delay_s: float = 0.0
    status: int | None = None
    retry_after_s: int = 0


class ServerFaults:
    """Decides per ingestion request whether to delay, fail or throttle it."""

    def __init__(
        self,
        *,
        latency: Distribution | None = None,
        error_rate: float = 0.0,
        rate_limit: float | None = None,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error rate must be within [0, 1], got {error_rate}")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError(f"rate limit must be positive, got {rate_limit}")
        self.latency = latency
        self.error_rate = error_rate
        self.rate_limit = rate_limit
        self._seed = seed & _MASK
        self._n = 0
        self._errors = 0
        self._tokens = rate_limit or 0.0
        self._refilled = time.monotonic()
        self.throttled = 0
        self.failed = 0

    @property
    def active(self) -> bool:
        return self.latency is not None or self.error_rate > 0 or self.rate_limit is not None

    def _uniform(self, stream: int) -> float:
        self._n += 1
        bits = _splitmix64(self._seed ^ _splitmix64((self._n << 2) | stream))
        return ((bits >> 11) + 0.5) / float(1 << 53)

    def decide(self) -> Verdict:
        """The verdict for the next ingestion request."""
        verdict = Verdict()
        if self.rate_limit is not None:
            now = time.monotonic()
            self._tokens = min(self.rate_limit, self._tokens + (now - self._refilled) * self.rate_limit)
            self._refilled = now
            if self._tokens < 1.0:
                self.throttled += 1
                verdict.status = 429
                verdict.retry_after_s = max(1, math.ceil((1.0 - self._tokens) / self.rate_limit))
                return verdict
            self._tokens -= 1.0
        if self.latency is not None:
            verdict.delay_s = self._sample(self.latency) / 1000.0
        if self.error_rate > 0 and self._uniform(1) < self.error_rate:
            self._errors += 1
            self.failed += 1
            verdict.status = 500 if self._errors % 2 else 503
        return verdict

    def _sample(self, dist: Distribution) -> float:
        u = self._uniform(2)
        if dist.fixed is not None:
            return float(dist.fixed)
        if dist.exponential is not None:
            return -math.log(1.0 - u) * dist.exponential.mean
        if dist.uniform is not None:
            return dist.uniform.min + u * (dist.uniform.max - dist.uniform.min)
        assert dist.lognormal is not None
        z = NormalDist().inv_cdf(u)
        return float(dist.lognormal.median * math.exp(dist.lognormal.shape * z))
