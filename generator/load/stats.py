"""Read Locust's result files into shopsim's load metrics (no Locust import).

Inputs (written by Locust into ``results/<run-id>/locust/``):

- ``stats.json`` (``--json-file``): one object per request name with ``num_requests``,
  ``num_failures``, ``response_times`` (bucketed ms → count), ``start_time`` and
  ``last_request_timestamp`` (epoch s). Percentiles are computed from the merged buckets, so
  they carry Locust's ~2-significant-digit resolution.
- ``stats_stats_history.csv`` (``--csv``): one row per second for the ``Aggregated`` entry:
  ``Timestamp`` (epoch s), ``User Count``, ``Requests/s``, ``Failures/s``, percentiles (ms).

Output: :class:`LoadMetrics` — ``requests``, ``failures``, ``error_rate`` (failures/requests),
``p50_ms``/``p95_ms``/``p99_ms``/``max_ms`` (ms), ``rps`` (requests/s over the test),
``by_name`` (per request name: requests, failures, p95_ms) and ``timeline`` (per second:
``t`` s since the first row, users, rps, fps, p95_ms).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = ["LoadMetrics", "percentile", "read_locust_results"]


def percentile(buckets: Mapping[int, int], q: float) -> float:
    """The value at quantile ``q`` of a bucket → count histogram (0 when empty)."""
    total = sum(buckets.values())
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for key in sorted(buckets):
        seen += buckets[key]
        if seen >= rank:
            return float(key)
    return float(max(buckets))


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadMetrics:
    """Latency, errors and throughput of one load test."""

    requests: int = 0
    failures: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    rps: float = 0.0
    duration_s: float = 0.0
    by_name: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    timeline: tuple[Mapping[str, float], ...] = ()

    @property
    def error_rate(self) -> float:
        """Failed requests / requests (0 when nothing was sent)."""
        return self.failures / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for summary.json."""
        return {
            "requests": self.requests,
            "failures": self.failures,
            "error_rate": self.error_rate,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "rps": round(self.rps, 2),
            "duration_s": round(self.duration_s, 3),
            "by_name": {k: dict(v) for k, v in self.by_name.items()},
            "timeline": [dict(row) for row in self.timeline],
        }


def _merge(entries: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for entry in entries:
        for key, count in dict(entry.get("response_times") or {}).items():
            k = round(float(key))
            merged[k] = merged.get(k, 0) + int(count)
    return merged


def _num(row: Mapping[str, str | None], key: str) -> float:
    try:
        return float(row.get(key) or 0)
    except ValueError:  # "N/A" before the first request
        return 0.0


def _timeline(path: Path) -> tuple[dict[str, float], ...]:
    if not path.is_file():
        return ()
    rows: list[dict[str, float]] = []
    first: float | None = None
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("Name") != "Aggregated":
                continue
            try:
                t = float(row["Timestamp"])
            except (KeyError, ValueError):
                continue
            first = t if first is None else first
            rows.append(
                {
                    "t": t - first,
                    "users": _num(row, "User Count"),
                    "rps": _num(row, "Requests/s"),
                    "fps": _num(row, "Failures/s"),
                    "p95_ms": _num(row, "95%"),
                }
            )
    return tuple(rows)


def read_locust_results(locust_dir: Path) -> LoadMetrics:
    """Metrics from ``stats.json`` and ``stats_stats_history.csv`` in ``locust_dir``."""
    json_path = locust_dir / "stats.json"
    entries: list[Mapping[str, Any]] = []
    if json_path.is_file():
        data = orjson.loads(json_path.read_bytes())
        if isinstance(data, list):
            entries = [e for e in data if isinstance(e, Mapping)]
    merged = _merge(entries)
    requests = sum(int(e.get("num_requests", 0)) for e in entries)
    failures = sum(int(e.get("num_failures", 0)) for e in entries)
    starts = [float(e["start_time"]) for e in entries if e.get("start_time")]
    ends = [float(e["last_request_timestamp"]) for e in entries if e.get("last_request_timestamp")]
    duration = max(ends) - min(starts) if starts and ends else 0.0
    by_name = {
        f"{e.get('method', '')} {e.get('name', '')}".strip(): {
            "requests": int(e.get("num_requests", 0)),
            "failures": int(e.get("num_failures", 0)),
            "p95_ms": percentile(_merge([e]), 0.95),
        }
        for e in entries
    }
    return LoadMetrics(
        requests=requests,
        failures=failures,
        p50_ms=percentile(merged, 0.50),
        p95_ms=percentile(merged, 0.95),
        p99_ms=percentile(merged, 0.99),
        max_ms=max((float(e.get("max_response_time") or 0) for e in entries), default=0.0),
        rps=requests / duration if duration > 0 else 0.0,
        duration_s=duration,
        by_name=by_name,
        timeline=_timeline(locust_dir / "stats_stats_history.csv"),
    )
