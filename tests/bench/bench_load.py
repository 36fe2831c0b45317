"""Load benchmark (issue 6): shopsim's Locust users against a bare FastHttpUser, batching, workers.

All runs hit the same trivial loopback sink (``python -m tests.support.faulty_server``: answers
``200 {}``, records nothing) in its own process, one after the other in this run, so the
figures are ratios measured on the same machine at the same time (the VM has 2 shared cores:
absolute numbers are noisy, ratios less so).

Runs are interleaved for ``ROUNDS`` rounds and the median ratio is reported, because the
machine is shared; the sink is pinned to core 0 and single-process clients to core 1.

Because wall-clock throughput on a shared VM swings by 2x between runs, the harness is also
measured by *CPU per request*: the marginal CPU time of the Locust process between a small and
a large run of the same client (start-up and import costs cancel out), with the shopper
simulation's own CPU reported apart (SIM's cost, paid up front by ``--presimulate``).

1. **Harness overhead.** ``shopsim load`` (one Locust process, ``--presimulate`` so the shopper
   simulation is done before the clock starts, ``--speed`` huge so every shopper is due at once)
   vs a bare ``FastHttpUser`` posting the *same* Pipelines bodies, same users, same duration:
   requests/s ratio (target >= 0.9).
2. **Batching.** Events/s with Pipelines ``/v1/batch`` (``--batch-size 50``, window 1 day so a
   shopper's session goes out in one request) vs one call per event.
4. **Orchestration** (why ``shopsim load`` runs Locust as a subprocess): the same workload
   against the embedded emulator with Locust and the emulator in *one* process (programmatic
   ``Environment``) vs in separate processes (what ``shopsim load`` does).
3. **Workers.** ``--workers 2`` vs one process, requests/s (target >= 1.7x on 2 cores; on this
   VM the sink and the Locust master share the same two cores, see the note in the output).

Writes ``results/bench/load.json``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "d2c_cart_recovery.yaml"
USERS = 10
DURATION_S = 8
SHOPPERS = 1500
SEED = 7
ROUNDS = 2

BARE_LOCUSTFILE = """
import itertools, os
import locust
from locust import FastHttpUser, constant, task

_LINES = open(os.environ["BENCH_BODIES"], "rb").read().splitlines()
_REQUESTS = [(line.split(b"\\t", 1)[0].decode(), line.split(b"\\t", 1)[1]) for line in _LINES]
_HEADERS = {"Authorization": os.environ["BENCH_AUTH"], "Content-Type": "application/json"}
_NEXT = itertools.cycle(_REQUESTS)


class Bare(FastHttpUser):
    wait_time = constant(0)
    max_retries = 0

    @task
    def post(self):
        path, body = next(_NEXT)
        self.client.post(path, data=body, headers=_HEADERS, name="bare")
"""


def _sink(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "sink.port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.faulty_server", "--port-file", str(port_file)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("benchmark sink did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}"


def _bodies(path: Path) -> tuple[int, str]:
    """The Pipelines requests shopsim would send for the benchmark's shoppers, one per line."""
    from generator.credentials import LOCAL_DEFAULTS
    from generator.faults import plan_deliveries
    from generator.scenario.load import load_scenario
    from generator.simulate import simulate_shoppers
    from generator.wire import encoder_for

    scenario = load_scenario(SCENARIO)
    encoder = encoder_for("pipelines")
    count = 0
    with path.open("wb") as out:
        lives = simulate_shoppers(scenario, seed=SEED, shoppers=400)
        for delivery in plan_deliveries(scenario, lives, seed=SEED):
            if delivery.dropped:
                continue
            request = encoder.encode(delivery.event)
            out.write(request.path.encode() + b"\t" + request.body + b"\n")
            count += 1
    return count, encoder.auth_headers(LOCAL_DEFAULTS)["Authorization"]


def _locust_rps(locust_dir: Path) -> dict[str, float]:
    from generator.load.stats import read_locust_results

    metrics = read_locust_results(locust_dir)
    return {
        "requests": metrics.requests,
        "failures": metrics.failures,
        "rps": metrics.rps,
        "s": metrics.duration_s,
    }


def _children_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process's waited-for children."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _shopsim(tmp: Path, name: str, url: str, **overrides: Any) -> dict[str, float]:
    from generator.load.runner import LoadOptions, run_locust

    cpu_before = _children_cpu_s()
    run_dir = tmp / name
    opts = LoadOptions(
        scenario=SCENARIO,
        target=url,
        run_dir=run_dir,
        seed=SEED,
        api="pipelines",
        users=overrides.pop("users", USERS),
        # No -t: the timer would also count the presimulation; the run ends when the shoppers do.
        duration_s=None,
        speed=1e9,
        shoppers=overrides.pop("shoppers", SHOPPERS),
        clock="wall",
        presimulate=True,
        grace_s=1.0,
        tail="none",  # measure draining the whole backlog, not a schedule cut short
        loglevel="WARNING",
        **overrides,
    )
    outcome = run_locust(opts, timeout_s=DURATION_S + 180)
    figures = _locust_rps(opts.locust_dir)
    acknowledged = outcome.lag.get("ledger", {}).get("acknowledged", 0)
    figures["events"] = acknowledged
    figures["events_per_s"] = acknowledged / figures["s"] if figures["s"] else 0.0
    figures["exit_codes"] = list(outcome.exit_codes)  # type: ignore[assignment]
    figures["cpu_s"] = _children_cpu_s() - cpu_before
    return figures


def _bare(tmp: Path, url: str, bodies: Path, auth: str, duration_s: int = DURATION_S) -> dict[str, float]:
    cpu_before = _children_cpu_s()
    tmp.mkdir(parents=True, exist_ok=True)
    locustfile = tmp / "bare_locustfile.py"
    locustfile.write_text(BARE_LOCUSTFILE)
    out = tmp / "bare"
    out.mkdir()
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(USERS),
        "-r",
        str(USERS),
        "-t",
        f"{duration_s}s",
        "--host",
        url,
        "--json-file",
        str(out / "stats"),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_AUTH": auth}
    subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=duration_s + 120, check=False)
    figures = _locust_rps(out)
    figures["cpu_s"] = _children_cpu_s() - cpu_before
    return figures


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def _simulation_us_per_delivery() -> float:
    """CPU µs to simulate and fault-plan one delivery (what --presimulate spends per request)."""
    from generator.load.source import JobSpec, schedule_origin, shopper_jobs
    from generator.scenario.load import load_scenario

    scenario = load_scenario(SCENARIO)
    count = SHOPPERS - SHOPPERS // 5
    origin = schedule_origin(scenario, seed=SEED, shoppers=count)
    started = time.process_time()
    jobs = list(shopper_jobs(scenario, JobSpec(seed=SEED + 1, shoppers=count, speed=1e9), origin_ms=origin))
    spent = time.process_time() - started
    deliveries = sum(job.planned for job in jobs)
    return round(spent / deliveries * 1e6, 1) if deliveries else 0.0


def _cpu_per_request(small: dict[str, float], large: dict[str, float]) -> float:
    """Marginal CPU µs per request between two runs of one client (start-up costs cancel out)."""
    requests = large["requests"] - small["requests"]
    return round((large["cpu_s"] - small["cpu_s"]) / requests * 1e6, 1) if requests > 0 else 0.0


@contextmanager
def _pinned(cores: set[int] | None) -> Iterator[None]:
    """Children spawned inside inherit this CPU affinity (Linux); no-op elsewhere or for None."""
    if cores is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cores & before or before)
        yield
    finally:
        os.sched_setaffinity(0, before)


IN_PROCESS = """
import locust  # first: gevent patching
import sys, time, gevent, orjson
from locust.argument_parser import get_parser
from locust.env import Environment
from generator.load.plugin import install, collector_of
from generator.load.users import ShopperUser
from generator.emulator import start_emulator
from generator.scenario.load import load_scenario

scenario_path, results, users, shoppers = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
install(locust.events)
emulator = start_emulator(scenario=load_scenario(scenario_path), clock="virtual")
opts = get_parser().parse_args([
    "--headless", "-u", str(users), "--host", emulator.url, "--scenario", scenario_path, "--seed", "7",
    "--shoppers", shoppers, "--speed", "1e9", "--clock", "scaled", "--presimulate", "--tail", "none",
    "--results-dir", results,
])
env = Environment(user_classes=[ShopperUser], events=locust.events, host=emulator.url, parsed_options=opts)
runner = env.create_local_runner()
env.events.init.fire(environment=env, runner=runner, web_ui=None)
runner.start(users, spawn_rate=users)
runner.greenlet.join()
total = env.stats.total
span = (total.last_request_timestamp or 0) - (total.start_time or 0)
print(orjson.dumps({"requests": total.num_requests, "failures": total.num_failures,
                    "rps": total.num_requests / span if span else 0.0,
                    "p95_ms": total.get_response_time_percentile(0.95), "s": span}).decode())
emulator.stop()
"""


def _orchestration(tmp: Path) -> dict[str, Any]:
    """Same workload against the embedded emulator: all in one process vs emulator and Locust apart."""
    import orjson as _orjson

    from generator.commands.load import embedded_emulator
    from generator.load.runner import LoadOptions, run_locust
    from generator.load.stats import read_locust_results

    shoppers = SHOPPERS // 3
    proc = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(SCENARIO), str(tmp / "inproc"), str(USERS), str(shoppers)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    in_process = _orjson.loads(lines[-1]) if lines else {"error": proc.stderr[-500:]}
    run_dir = tmp / "apart"
    with embedded_emulator(SCENARIO, run_dir / "emulator.log") as url:
        opts = LoadOptions(
            scenario=SCENARIO,
            target=url,
            run_dir=run_dir,
            seed=SEED,
            users=USERS,
            speed=1e9,
            shoppers=shoppers,
            clock="scaled",
            presimulate=True,
            grace_s=1.0,
            tail="none",
            loglevel="WARNING",
        )
        run_locust(opts, timeout_s=600)
    metrics = read_locust_results(opts.locust_dir)
    apart = {
        "requests": metrics.requests,
        "rps": metrics.rps,
        "p95_ms": metrics.p95_ms,
        "s": metrics.duration_s,
    }
    return {
        "in_process": in_process,
        "subprocesses": apart,
        "rps_ratio_subprocess_vs_in_process": round(apart["rps"] / in_process["rps"], 3)
        if in_process.get("rps")
        else None,
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def run(out_dir: Path) -> dict[str, Any]:
    """Run the three comparisons (interleaved, ROUNDS times); write ``out_dir/load.json``."""
    multi = (os.cpu_count() or 1) >= 2
    client_core = {1} if multi else None
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as name:
        tmp = Path(name)
        # The sink gets core 0, the single-process clients core 1 (as in anchors.md §g);
        # the 2-worker comparison runs unpinned against the same sink.
        with _pinned({0} if multi else None):
            sink, url = _sink(tmp)
        try:
            bodies = tmp / "bodies.tsv"
            body_count, auth = _bodies(bodies)
            for i in range(ROUNDS):
                with _pinned(client_core):
                    bare = _bare(tmp / f"r{i}", url, bodies, auth)
                    one = _shopsim(tmp / f"r{i}", "shopsim", url)
                    batched = _shopsim(tmp / f"r{i}", "batched", url, batch_size=50, batch_window="1d")
                single = _shopsim(tmp / f"r{i}", "single", url, users=2 * USERS)
                two = _shopsim(tmp / f"r{i}", "workers2", url, workers=2, users=2 * USERS)
                rounds.append(
                    {"bare": bare, "shopsim": one, "batched": batched, "single": single, "workers2": two}
                )
            with _pinned(client_core):
                # CPU per request (marginal, robust to other load on the machine): two sizes each.
                bare_small = _bare(tmp / "cpu-small", url, bodies, auth, duration_s=2)
                bare_large = _bare(tmp / "cpu-large", url, bodies, auth, duration_s=DURATION_S)
                shop_small = _shopsim(tmp / "cpu", "small", url, shoppers=SHOPPERS // 5)
                shop_large = _shopsim(tmp / "cpu", "large", url)
            cpu = {
                "bare_us_per_request": _cpu_per_request(bare_small, bare_large),
                "shopsim_us_per_request": _cpu_per_request(shop_small, shop_large),
                "simulation_us_per_request": _simulation_us_per_delivery(),
            }
            cpu["shopsim_without_simulation_us"] = round(
                cpu["shopsim_us_per_request"] - cpu["simulation_us_per_request"], 1
            )
            cpu["harness_ratio_by_cpu"] = _ratio(cpu["bare_us_per_request"], cpu["shopsim_us_per_request"])
            cpu["harness_ratio_by_cpu_without_simulation"] = _ratio(
                cpu["bare_us_per_request"], cpu["shopsim_without_simulation_us"]
            )
            orchestration = _orchestration(tmp)
        finally:
            sink.terminate()
            sink.wait(timeout=10)

    def ratio(a: str, b: str, key: str = "rps") -> list[float]:
        return [round(r[a][key] / r[b][key], 3) if r[b][key] else 0.0 for r in rounds]

    harness, batching, workers = (
        ratio("shopsim", "bare"),
        ratio("batched", "shopsim", "events_per_s"),
        ratio("workers2", "single"),
    )
    result = {
        "cpu_count": os.cpu_count(),
        "users": USERS,
        "shoppers": SHOPPERS,
        "rounds": rounds,
        "bare_bodies": body_count,
        "harness_ratio": _median(harness),
        "harness_ratios": harness,
        "harness_target": 0.9,
        "cpu": cpu,
        "batching_events_ratio": _median(batching),
        "batching_events_ratios": batching,
        "workers_ratio": _median(workers),
        "workers_ratios": workers,
        "workers_target": 1.7,
        "orchestration": orchestration,
        "note": (
            "median of interleaved rounds; sink pinned to core 0 and single-process clients to core 1; "
            "the 2-worker run shares both cores with the sink and the master"
        ),
    }
    (out_dir / "load.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return {k: v for k, v in result.items() if k != "rounds"}
