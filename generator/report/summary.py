"""``summary.json``: every metric, threshold and verdict of a run, plus what the HTML report draws.

Fields (times are epoch ms UTC, durations ms unless the name says ``_s``)::

    run_id, scenario {name, path, sha256}, seed, shoppers, clock, target, api, observer
    verdict            "pass" | "fail"
    thresholds         [{threshold, metric, actual, passed, note}]
    metrics            {name or name[campaign]: number | null (not measurable here)}
    checks             [{name, failures, seconds, error}]
    failures_by_check  {check: occurrences}
    causes             {check: {cause_kind: occurrences}}
    failures           the worst failures (≤ 200), each {check, severity, title, message, cause,
                       cause_kind, campaign, person, shopper, event_id, count, reproduce}
    campaigns          {campaign: {truth_send, truth_suppressed, truth_unaddressable, delivered_send,
                                   entered, sent, exited, ok, violation, duplicate, false}}
    funnel             [[stage, shoppers], ...]
    counts             truth/plan/delivery counts; ledger {planned, acknowledged, rejected, ...}
    faults             {fault kind: deliveries tagged}
    series             {start_ms, hour_ms, truth: [events per hour], arrivals: [deliveries per hour]}
    histograms         {latency_ms | send_time_error_ms: {labels: [...], counts: [...]}}
    violations         tracking-plan violations, Segment Protocols' shape (≤ 100 rows)
    timings_s          {stage: seconds}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from generator.check.evidence import HOUR_MS, Evidence
from generator.check.model import CheckResult

MAX_FAILURES = 200
FUNNEL = ("shoppers", "Product Viewed", "Added to Cart", "Checkout Started", "Order Completed", "identified")

LATENCY_EDGES: tuple[tuple[str, int], ...] = (
    ("<1s", 1_000), ("<5s", 5_000), ("<30s", 30_000), ("<1m", 60_000), ("<5m", 300_000),
    ("<15m", 900_000), ("<1h", 3_600_000), ("<6h", 21_600_000), ("<24h", 86_400_000), ("<72h", 259_200_000),
)  # fmt: skip
ERROR_EDGES: tuple[tuple[str, int], ...] = (
    ("<-1h", -3_600_000), ("<-10m", -600_000), ("<-1m", -60_000), ("<-1s", -1_000), ("±1s", 1_001),
    ("<1m", 60_000), ("<10m", 600_000), ("<1h", 3_600_000), ("<6h", 21_600_000),
)  # fmt: skip


def histogram(values: Sequence[int], edges: Sequence[tuple[str, int]], overflow: str) -> dict[str, list[Any]]:
    """Counts of ``values`` below each edge (first match), the rest in ``overflow``."""
    import numpy as np

    bounds = np.asarray([edge for _, edge in edges], dtype=np.int64)
    # "<edge" bins: the first edge the value is below; past the last edge → overflow
    bins = np.searchsorted(bounds, np.asarray(values, dtype=np.int64), side="right")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    return {"labels": [label for label, _ in edges] + [overflow], "counts": counts.tolist()}


def build_summary(
    *,
    run: Mapping[str, Any],
    result: CheckResult,
    evidence: Evidence,
    ledger: Mapping[str, int] | None = None,
    timings: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Assemble the summary dict (JSON-ready) from a run's parts."""
    funnel = [[stage, int(evidence.funnel.get(stage, 0))] for stage in FUNNEL]
    start_hour = (evidence.first_ms // HOUR_MS) if evidence.truth_hourly else 0
    last_hour = max([*evidence.truth_hourly, *evidence.arrival_hourly, start_hour])
    hours = range(start_hour, last_hour + 1)
    errors = result.details.get("send_time_error_ms", [])
    return {
        **dict(run),
        "verdict": result.verdict,
        "thresholds": [t.to_json() for t in result.thresholds],
        "metrics": dict(sorted(result.metrics.items())),
        "checks": [
            {"name": c.name, "failures": c.failures, "seconds": round(c.seconds, 4), "error": c.error}
            for c in result.checks
        ],
        "failures_by_check": result.failure_counts,
        "causes": result.causes,
        "failures": [f.to_json() for f in result.failures[:MAX_FAILURES]],
        "campaigns": result.details.get("campaigns", {}),
        "funnel": funnel,
        "counts": {**evidence.counts, "ledger": dict(ledger or {})},
        "faults": dict(sorted(evidence.fault_counts.items())),
        "series": {
            "start_ms": start_hour * HOUR_MS,
            "hour_ms": HOUR_MS,
            "truth": [evidence.truth_hourly.get(h, 0) for h in hours],
            "arrivals": [evidence.arrival_hourly.get(h, 0) for h in hours],
        },
        "histograms": {
            "latency_ms": histogram(evidence.latency_ms, LATENCY_EDGES, "≥72h"),
            "send_time_error_ms": histogram(errors, ERROR_EDGES, "≥6h"),
        },
        "violations": result.details.get("violations", [])[:100],
        "merge": result.details.get("merge", {}),
        "timings_s": {k: round(v, 3) for k, v in (timings or {}).items()},
    }


def write_summary(run_dir: Path, summary: Mapping[str, Any]) -> Path:
    """Write ``summary.json`` (indented, sorted keys at the top level only as given)."""
    path = run_dir / "summary.json"
    path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path


def read_summary(run_dir: Path) -> dict[str, Any]:
    """Read a run's ``summary.json`` back (for ``shopsim report``)."""
    data = orjson.loads((run_dir / "summary.json").read_bytes())
    if not isinstance(data, dict):
        raise ValueError(f"{run_dir / 'summary.json'} is not a JSON object")
    return data
