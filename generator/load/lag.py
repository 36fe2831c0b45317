"""Arrival lag: how late shoppers (and their requests) started compared with the schedule.

A shopper is *late* when it started more than ``late_ms`` after it was due: every user of the
pool was busy, so it waited in the queue. wrk2 and k6 report the same thing (time from the
intended start, ``dropped_iterations``); Locust alone does not (anchors.md §e).

Lags are kept in a mergeable histogram, not a list, so a worker's memory stays flat and the
master merges workers by adding counts. Buckets follow Locust's ``bucket_response_time``
idea: lags are rounded to about two significant digits (``147 ms → 150 ms``), so percentiles
are exact to ~5% and the maximum is tracked exactly.

Wire/JSON form of :class:`LagHistogram` (``as_dict``)::

    {"n": int, "late": int, "late_ms": float, "max_ms": float, "sum_ms": float,
     "buckets": {"<bucket ms>": count, ...}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LagHistogram", "LagSummary", "bucket_ms"]


def bucket_ms(value_ms: float) -> int:
    """Round a non-negative lag to about two significant digits (integer milliseconds)."""
    ms = max(0, round(value_ms))
    if ms < 100:
        return ms
    if ms < 1000:
        return round(ms, -1)
    if ms < 10_000:
        return round(ms, -2)
    return round(ms, -3)


@dataclass(frozen=True, slots=True, kw_only=True)
class LagSummary:
    """Percentiles of one lag histogram, in milliseconds, and the share of late starts."""

    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    late: int
    late_share: float
    late_ms: float

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON reports."""
        return {
            "n": self.n,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "mean_ms": round(self.mean_ms, 3),
            "late": self.late,
            "late_share": self.late_share,
            "late_ms": self.late_ms,
        }


class LagHistogram:
    """Counts of lags by bucket; ``late`` counts lags above ``late_ms`` (exactly, before bucketing)."""

    __slots__ = ("buckets", "late", "late_ms", "max_ms", "n", "sum_ms")

    def __init__(self, *, late_ms: float = 100.0) -> None:
        self.late_ms = late_ms
        self.n = 0
        self.late = 0
        self.max_ms = 0.0
        self.sum_ms = 0.0
        self.buckets: dict[int, int] = {}

    def record(self, lag_ms: float) -> None:
        """Add one lag (negative lags, i.e. early starts, count as 0)."""
        lag = lag_ms if lag_ms > 0.0 else 0.0
        self.n += 1
        self.sum_ms += lag
        if lag > self.max_ms:
            self.max_ms = lag
        if lag > self.late_ms:
            self.late += 1
        # Lags under 99.5 ms (nearly every send at a high --speed) are their own bucket,
        # rounded here rather than in a call: bucket_ms gives the same below 100 (property-tested).
        key = 0 if lag < 0.5 else (round(lag) if lag < 99.5 else bucket_ms(lag))
        self.buckets[key] = self.buckets.get(key, 0) + 1

    def merge(self, other: LagHistogram) -> None:
        """Add another histogram's counts into this one (workers → master)."""
        self.n += other.n
        self.late += other.late
        self.sum_ms += other.sum_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        for key, count in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + count

    def percentile(self, q: float) -> float:
        """The lag at quantile ``q`` (0..1), bucket resolution, never above the exact maximum."""
        if self.n == 0:
            return 0.0
        rank = q * self.n
        seen = 0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen >= rank:
                return float(min(key, self.max_ms))
        return float(self.max_ms)

    def summary(self) -> LagSummary:
        """Percentiles, maximum and late share."""
        return LagSummary(
            n=self.n,
            p50_ms=self.percentile(0.50),
            p95_ms=self.percentile(0.95),
            p99_ms=self.percentile(0.99),
            max_ms=round(self.max_ms, 3),
            mean_ms=self.sum_ms / self.n if self.n else 0.0,
            late=self.late,
            late_share=self.late / self.n if self.n else 0.0,
            late_ms=self.late_ms,
        )

    def as_dict(self) -> dict[str, Any]:
        """The wire form (msgpack/JSON friendly: string bucket keys)."""
        return {
            "n": self.n,
            "late": self.late,
            "late_ms": self.late_ms,
            "max_ms": self.max_ms,
            "sum_ms": self.sum_ms,
            "buckets": {str(k): v for k, v in self.buckets.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LagHistogram:
        """Rebuild a histogram from :meth:`as_dict` output."""
        hist = cls(late_ms=float(data.get("late_ms", 100.0)))
        hist.n = int(data["n"])
        hist.late = int(data["late"])
        hist.max_ms = float(data["max_ms"])
        hist.sum_ms = float(data["sum_ms"])
        hist.buckets = {int(k): int(v) for k, v in dict(data["buckets"]).items()}
        return hist

    @classmethod
    def merged(cls, parts: Iterable[LagHistogram], *, late_ms: float = 100.0) -> LagHistogram:
        """A new histogram holding the sum of ``parts``."""
        total = cls(late_ms=late_ms)
        for part in parts:
            total.merge(part)
        return total
