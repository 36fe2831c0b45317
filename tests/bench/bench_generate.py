"""Generation throughput: ``shopsim generate`` (pipelines NDJSON) vs orjson alone, on one core.

Figures (written to ``<out_dir>/generate.json``; rates in events per second, RSS in MB):

- ``generate_events_per_s``: ``shopsim generate SCENARIO --shoppers N -o /dev/null`` run as a
  subprocess (one process, one core), timed by the command itself (imports excluded);
  simulation + encoding + writing.
- ``ceiling_events_per_s``: the same events' Pipelines messages, built first (untimed), then
  only ``orjson.dumps`` of each timed: what a generator that had nothing else to do could reach.
- ``ratio`` = generate / ceiling (target ≥ 0.35).
- ``simulate_events_per_s`` (simulation alone) and ``encode_events_per_s`` (message building +
  ``orjson`` per event, i.e. the wire encoder) attribute the gap; ``encoder_ratio`` = ceiling
  time / encoder time over the same events.
- ``peak_rss_mb``: peak RSS of the generate subprocess at N shoppers and at N/10 (flat = streaming).

The machine is shared: compare ratios measured in the same run, not absolute rates.
``SHOPSIM_BENCH_SHOPPERS`` overrides N (default 100000).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "d2c_cart_recovery.yaml"
SEED = 20261102
CHUNK = 2_000  # shoppers per untimed message-building chunk of the ceiling measurement


# The child reports its own peak RSS (VmHWM of its address space). The parent's
# RUSAGE_CHILDREN ru_maxrss would not do: it is the max over every child so far, and Linux
# carries a pre-exec high-water mark across execve, so a large parent inflates it.
_GENERATE_WITH_HWM = """
import sys
from generator.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(f"VmHWM {hwm}", file=sys.stderr)
raise SystemExit(code)
"""


def _generate_subprocess(shoppers: int) -> dict[str, float]:
    args = ["generate", str(SCENARIO), "--shoppers", str(shoppers), "--seed", str(SEED), "-o", os.devnull]
    proc = subprocess.run(
        [sys.executable, "-c", _GENERATE_WITH_HWM, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    hwm = re.search(r"VmHWM (\d+)", proc.stderr)
    if hwm is None:
        raise RuntimeError(f"no VmHWM from the generate child: {proc.stderr.strip()}")
    peak_kb = int(hwm.group(1))
    match = re.search(r"([\d,]+) shoppers, ([\d,]+) events in ([\d.]+) s", proc.stderr)
    if match is None:
        raise RuntimeError(f"unexpected generate summary: {proc.stderr.strip()}")
    events = int(match.group(2).replace(",", ""))
    seconds = float(match.group(3))
    return {"events": events, "seconds": seconds, "peak_rss_mb": peak_kb / 1024}


def run(out_dir: Path) -> dict[str, Any]:
    """Measure and write ``out_dir/generate.json``; returns the figures."""
    from generator.scenario.load import load_scenario
    from generator.simulate import simulate_shoppers
    from generator.wire.ndjson import line_renderer
    from generator.wire.pipelines import message

    shoppers = int(os.environ.get("SHOPSIM_BENCH_SHOPPERS", "100000"))
    small = _generate_subprocess(max(1, shoppers // 10))
    full = _generate_subprocess(shoppers)

    scenario = load_scenario(SCENARIO)
    render = line_renderer("pipelines")
    dumps = orjson.dumps
    events = 0
    sim_s = ceiling_s = encode_s = 0.0
    lives = simulate_shoppers(scenario, seed=SEED, shoppers=shoppers)
    while True:
        started = time.perf_counter()
        chunk = list(islice(lives, CHUNK))
        sim_s += time.perf_counter() - started
        if not chunk:
            break
        batch = [e for life in chunk for e in life.events]
        messages = [message(e) for e in batch]  # untimed: the ceiling serializes ready-made dicts
        started = time.perf_counter()
        for m in messages:
            dumps(m)
        ceiling_s += time.perf_counter() - started
        started = time.perf_counter()
        for e in batch:
            render(e)
        encode_s += time.perf_counter() - started
        events += len(batch)

    if events != full["events"]:
        raise RuntimeError(f"generate wrote {full['events']} events, the in-process run saw {events}")
    generate_rate = full["events"] / full["seconds"]
    ceiling_rate = events / ceiling_s
    result: dict[str, Any] = {
        "shoppers": shoppers,
        "events": events,
        "generate_events_per_s": round(generate_rate),
        "ceiling_events_per_s": round(ceiling_rate),
        "ratio": round(generate_rate / ceiling_rate, 3),
        "target_ratio": 0.35,
        "simulate_events_per_s": round(events / sim_s),
        "encode_events_per_s": round(events / encode_s),
        "encoder_ratio": round(ceiling_s / encode_s, 3),
        "generate_seconds": full["seconds"],
        "peak_rss_mb": {
            str(max(1, shoppers // 10)): round(small["peak_rss_mb"], 1),
            str(shoppers): round(full["peak_rss_mb"], 1),
        },
    }
    (out_dir / "generate.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return result
