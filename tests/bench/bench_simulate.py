"""Simulation throughput and memory: events/s of ``simulate()`` and peak RSS as shoppers grow.

Figures (written to ``<out_dir>/simulate.json``):

- ``events_per_s`` / ``shoppers_per_s``: ``simulate()`` over 100k shoppers of
  ``scenarios/d2c_cart_recovery.yaml`` in this process, one core, nothing encoded (the NDJSON
  side of the issue's ratio is WIRE's ``bench_generate``). ``cpu_s`` is process CPU time, the
  figure least disturbed by other work on a shared machine; ``wall_s`` is elapsed time.
- ``orjson_events_per_s``: the same events as plain dicts through ``orjson.dumps`` alone, for
  scale (the ceiling the issue compares generation against).
- ``peak_rss_mb``: peak resident set size of a fresh interpreter that imports shopsim and
  streams 10k and 1M shoppers through ``simulate()`` (peak RSS from ``/proc/self/status`` VmHWM), plus the
  same interpreter's RSS after imports, so "flat" is visible as the difference.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "d2c_cart_recovery.yaml"
THROUGHPUT_SHOPPERS = 100_000
RSS_SHOPPERS = (10_000, 1_000_000)

# Peak RSS is read from VmHWM (kB), which belongs to the process's own address space. ru_maxrss
# would not do: Linux carries the pre-exec high-water mark across execve, so a child spawned by a
# large parent (``make bench`` runs every benchmark in one interpreter) reports the parent's size.
_RSS_PROBE = """
import sys
from generator.scenario import load_scenario
from generator.simulate import simulate

def hwm_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

scenario = load_scenario(sys.argv[1])
base = hwm_kb()
n = 0
for _ in simulate(scenario, seed=1, shoppers=int(sys.argv[2])):
    n += 1
peak = hwm_kb()
print(base, peak, n)
"""


def _throughput() -> dict[str, Any]:
    from generator.scenario import load_scenario
    from generator.simulate import simulate

    scenario = load_scenario(SCENARIO)
    wall = time.perf_counter()
    cpu = time.process_time()
    events = 0
    sample = []
    for event in simulate(scenario, seed=1, shoppers=THROUGHPUT_SHOPPERS):
        events += 1
        if len(sample) < 50_000:
            sample.append(event)
    cpu_s = time.process_time() - cpu
    wall_s = time.perf_counter() - wall
    dicts = [
        {
            "type": e.type.value,
            "event": e.name,
            "userId": e.user_id,
            "anonymousId": e.anonymous_id,
            "messageId": e.id,
            "timestamp": e.timestamp_ms,
            "properties": e.properties,
            "context": e.context,
        }
        for e in sample
    ]
    started = time.process_time()
    size = sum(len(orjson.dumps(d)) for d in dicts)
    orjson_s = time.process_time() - started
    return {
        "shoppers": THROUGHPUT_SHOPPERS,
        "events": events,
        "events_per_shopper": round(events / THROUGHPUT_SHOPPERS, 2),
        "cpu_s": round(cpu_s, 2),
        "wall_s": round(wall_s, 2),
        "events_per_s": round(events / cpu_s),
        "shoppers_per_s": round(THROUGHPUT_SHOPPERS / cpu_s),
        "orjson_events_per_s": round(len(dicts) / orjson_s) if orjson_s > 0 else None,
        "mean_event_bytes": round(size / len(dicts)) if dicts else 0,
    }


def _rss(shoppers: int) -> dict[str, Any]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(SCENARIO), str(shoppers)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    base_kb, peak_kb, events = (int(x) for x in out)
    return {
        "shoppers": shoppers,
        "events": events,
        "rss_after_import_mb": round(base_kb / 1024, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def run(out_dir: Path) -> dict[str, Any]:
    """Measure, write ``out_dir/simulate.json`` and return the figures."""
    result: dict[str, Any] = {"scenario": str(SCENARIO.relative_to(ROOT)), "throughput": _throughput()}
    result["rss"] = [_rss(n) for n in RSS_SHOPPERS]
    peaks = [r["peak_rss_mb"] for r in result["rss"]]
    result["rss_growth_mb"] = round(peaks[-1] - peaks[0], 1)
    result["rss_flat_under_200mb"] = max(peaks) <= 200
    (out_dir / "simulate.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return result
