"""HTTP sender throughput vs a bare geventhttpclient POST loop (issue 3).

A trivial sink (``tests/support/faulty_server.py`` in a subprocess, answering ``200 {}``, pinned
to CPU 0) receives; this process (pinned to CPU 1 when there are two) sends. All figures come
from one run, so their ratios are comparable on a noisy shared machine:

- ``bare_rps``: requests/s of a plain loop ``HTTPClient.request("POST", path, body)`` over one
  keep-alive connection, with the per-call bodies of the same events (pre-encoded: the loop
  does nothing but HTTP);
- ``batched_events_per_s``: events/s through ``send_plan`` with ``batch_size=100`` (Pipelines
  ``/v1/batch``, wall clock, timestamps shifted to now, ledger written to disk);
- ``per_call_rps``: requests/s through ``send_plan`` with ``batch_size=1`` (``/v1/track`` and
  friends, one event per request, encoding and ledger included), at ``concurrency=1`` (the
  same single connection as the bare loop) and at the default ``concurrency=10``;
- ratios ``batched_vs_bare`` (target ≥ 20) and ``per_call_vs_bare`` (target ≥ 0.8, at
  concurrency 1).

The plan is built once (simulate → faults on ``scenarios/clean_baseline.yaml``) and kept in
memory, so generation cost is not part of any figure. Writes ``results/bench/send.json``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "clean_baseline.yaml"
BARE_REQUESTS = 3_000
PER_CALL_EVENTS = 3_000
BATCHED_EVENTS = 60_000
REPEATS = 3  # best of N for each figure (noise on a shared machine only ever slows a run down)


def _pin(cpu: int) -> None:
    try:
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def _start_sink(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "sink.port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.faulty_server", "--port-file", str(port_file)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: _pin(0),
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the benchmark sink did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}"


def _plan(count: int) -> list[Any]:
    """At least ``count`` sendable deliveries from the clean baseline (repeated if needed)."""
    from generator.faults import plan_deliveries
    from generator.scenario.load import load_scenario
    from generator.simulate import simulate_shoppers

    scenario = load_scenario(SCENARIO)
    out: list[Any] = []
    shoppers = 2_000
    while len(out) < count:
        lives = simulate_shoppers(scenario, seed=11, shoppers=shoppers)
        out = [d for d in plan_deliveries(scenario, lives, seed=11) if not d.dropped and not d.oversize]
        shoppers *= 2
    return out[:count]


def _bare_rps(url: str, requests: list[tuple[str, bytes]], headers: dict[str, str]) -> float:
    from geventhttpclient import HTTPClient

    client = HTTPClient.from_url(url + "/", concurrency=1)
    try:
        for path, body in requests[:200]:  # warm-up: connect, fill caches
            client.request("POST", path, body=body, headers=headers).read()
        started = time.perf_counter()
        for path, body in requests:
            resp = client.request("POST", path, body=body, headers=headers)
            resp.read()
            if resp.status_code != 200:
                raise RuntimeError(f"sink answered {resp.status_code}")
        return len(requests) / (time.perf_counter() - started)
    finally:
        client.close()


def _sender(url: str, plan: list[Any], tmp: Path, *, batch_size: int, concurrency: int) -> tuple[float, int]:
    """(seconds, requests) for one send_plan run; raises unless everything was acknowledged."""
    from generator.credentials import LOCAL_DEFAULTS
    from generator.deliver.http import send_plan
    from generator.deliver.ledger import Ledger
    from generator.wire import encoder_for

    ledger_path = tmp / f"ledger-{batch_size}-{concurrency}.ndjson"
    ledger_path.unlink(missing_ok=True)
    with Ledger(ledger_path) as ledger:
        started = time.perf_counter()
        counts = send_plan(
            plan,
            target=url,
            encoder=encoder_for("pipelines"),
            creds=LOCAL_DEFAULTS,
            clock="wall",
            batch_size=batch_size,
            concurrency=concurrency,
            ledger=ledger,
        )
        elapsed = time.perf_counter() - started
    if counts.acknowledged != len(plan):
        raise RuntimeError(f"sender lost events: {counts}")
    return elapsed, counts.requests


def run(out_dir: Path) -> dict[str, Any]:
    """Measure and write ``out_dir/send.json``."""
    from generator.credentials import LOCAL_DEFAULTS
    from generator.wire import encoder_for

    encoder = encoder_for("pipelines")
    plan = _plan(BATCHED_EVENTS)
    per_call_plan = plan[:PER_CALL_EVENTS]
    bodies = [encoder.encode(d.event) for d in plan[:BARE_REQUESTS]]
    requests = [(w.path, w.body) for w in bodies]
    headers = {"Content-Type": "application/json", **encoder.auth_headers(LOCAL_DEFAULTS)}

    old_affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        sink, url = _start_sink(tmp)
        _pin(1)
        try:
            bare, batched, per_call_1, per_call_10 = [], [], [], []
            batch_requests = 0
            for _ in range(REPEATS):
                bare.append(_bare_rps(url, requests, headers))
                seconds, batch_requests = _sender(url, plan, tmp, batch_size=100, concurrency=10)
                batched.append(len(plan) / seconds)
                seconds, _ = _sender(url, per_call_plan, tmp, batch_size=1, concurrency=1)
                per_call_1.append(len(per_call_plan) / seconds)
                seconds, _ = _sender(url, per_call_plan, tmp, batch_size=1, concurrency=10)
                per_call_10.append(len(per_call_plan) / seconds)
        finally:
            sink.kill()
            sink.wait()
            if old_affinity is not None:
                os.sched_setaffinity(0, old_affinity)

    bare_rps = max(bare)
    result: dict[str, Any] = {
        "bare_rps": round(bare_rps, 1),
        "batched_events_per_s": round(max(batched), 1),
        "batched_events_per_request": round(len(plan) / batch_requests, 1),
        "per_call_rps": round(max(per_call_1), 1),
        "per_call_rps_concurrency_10": round(max(per_call_10), 1),
        "batched_vs_bare": round(max(batched) / bare_rps, 2),
        "per_call_vs_bare": round(max(per_call_1) / bare_rps, 3),
        "per_call_concurrency_10_vs_bare": round(max(per_call_10) / bare_rps, 3),
        "targets": {"batched_vs_bare": 20, "per_call_vs_bare": 0.8},
        "runs": {
            "bare_rps": [round(x, 1) for x in bare],
            "batched_events_per_s": [round(x, 1) for x in batched],
            "per_call_rps": [round(x, 1) for x in per_call_1],
            "per_call_rps_concurrency_10": [round(x, 1) for x in per_call_10],
        },
        "events": {"bare": len(requests), "batched": len(plan), "per_call": len(per_call_plan)},
        "cpus": os.cpu_count(),
    }
    (out_dir / "send.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return result


if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()
    out = ROOT / "results" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    print(orjson.dumps(run(out), option=orjson.OPT_INDENT_2).decode())
