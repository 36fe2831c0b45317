"""``shopsim load``: a Locust load test with open-model shopper arrivals, then the end-to-end check.

Examples::

    # 20 users, shoppers arriving 60x faster than the scenario's rate, against the embedded emulator
    shopsim load scenarios/d2c_cart_recovery.yaml --users 20 --speed 60 --duration 2m

    # a master and 2 local worker processes (one per core)
    shopsim load scenarios/d2c_cart_recovery.yaml --workers 2 --users 40 --speed 60 --duration 5m

    # across machines: the master here (waits for 4 worker processes in all) ...
    shopsim load scenarios/x.yaml --master --workers 4 --bind 0.0.0.0 --master-port 5557 \\
        --target https://collector.staging.example.com --users 200 --duration 10m
    # ... and on each worker machine (same scenario path; 2 processes each)
    shopsim load scenarios/x.yaml --worker --master-host 10.0.0.5 --master-port 5557 --workers 2

Results in ``results/<run-id>/``: ``run.json``, ``locust/`` (Locust's ``stats_*.csv``,
``report.html``, ``stats.json``, logs), ``ledger.ndjson`` (every planned delivery, merged
from all workers), ``arrival_lag.json`` (intended vs actual shopper starts), ``load.json``
(metrics, thresholds, verdict) and, when the check ran, the same ``summary.json`` /
``report.html`` / ``junit.xml`` as ``shopsim run``.

Thresholds: the scenario's ``expect:`` plus ``--expect`` flags plus, unless
``--no-default-thresholds``, ``p95_ms < 300``, ``error_rate < 0.001`` and
``late_start_share <= 0.01``. Exit 0 when all hold, 1 when one fails, 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from generator.commands._args import (
    bounded_int,
    duration_s,
    duration_text,
    non_negative_int,
    port,
    positive_duration_s,
    positive_float,
    positive_int,
    shopper_count,
)
from generator.errors import ShopsimError

HELP = "Load-test an ingestion endpoint with Locust (open-model shopper arrivals), then check end to end."

DEFAULT_THRESHOLDS = ("p95_ms < 300", "error_rate < 0.001", "late_start_share <= 0.01")
MAX_WORKERS = 64
"""Local worker processes: each is a full Python process; beyond the cores they only compete."""
MAX_USERS = 1_000_000
"""Locust users (greenlets) in one test; more is a typo, not a load test."""


def _tail(text: str) -> str:
    """``--tail``: ``auto``, ``none`` or a duration, checked here (Locust would only fail later)."""
    if text.strip().lower() in ("auto", "none"):
        return text
    return duration_text(text)


class LoadArgumentError(ShopsimError):
    """A ``shopsim load`` flag is invalid."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``shopsim load`` flags."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("Examples::", 1)[1].split("Results in", 1)[0] if __doc__ else None
    parser.add_argument("scenario", type=Path, help="scenario YAML file")
    parser.add_argument("--target", help="ingestion base URL (default: the embedded emulator on loopback)")
    parser.add_argument(
        "--api",
        choices=("track-v1", "track-v2", "pipelines", "browser"),
        default="pipelines",
        help="wire API",
    )
    parser.add_argument(
        "--users", type=bounded_int(1, MAX_USERS), default=10, help="size of the user pool (default 10)"
    )
    parser.add_argument("--spawn-rate", type=positive_float, help="users started per second (default: all)")
    parser.add_argument(
        "--duration", type=positive_duration_s, help="stop after this wall time (e.g. 90s, 5m)"
    )
    parser.add_argument(
        "--speed", type=positive_float, default=60.0, help="compress arrivals and think times (default 60)"
    )
    parser.add_argument("--seed", type=int, help="root seed (default: the scenario's, else fresh)")
    parser.add_argument("--shoppers", type=shopper_count, help="number of shoppers (default: the scenario's)")
    parser.add_argument(
        "--workers",
        type=bounded_int(0, MAX_WORKERS),
        default=0,
        help=f"local Locust worker processes (0 = one process; at most {MAX_WORKERS})",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=1, help="events per request (batching APIs)"
    )
    parser.add_argument(
        "--batch-window", type=duration_text, default="1s", help="arrival window of one batch (default 1s)"
    )
    parser.add_argument(
        "--late-ms", type=positive_float, default=100.0, help="a start later than this is late"
    )
    parser.add_argument("--retries", type=non_negative_int, default=2, help="retries after 429/5xx/no answer")
    parser.add_argument("--grace", type=duration_s, default=10.0, help="wind-down time after --duration")
    parser.add_argument(
        "--tail",
        type=_tail,
        default="auto",
        help="simulated time to run on after the last shopper arrived "
        "(default auto: longest campaign delay + 1m; 'none': until every shopper's last event)",
    )
    parser.add_argument("--presimulate", action="store_true", help="simulate shoppers before the test starts")
    parser.add_argument(
        "--request-log", action="store_true", help="one NDJSON row per request in locust/requests.ndjson*"
    )
    parser.add_argument("--send-oversize", action="store_true", help="send requests above documented limits")
    parser.add_argument(
        "--keep-cookies",
        action="store_true",
        help="keep a cookie jar per user (only for a cookie-sticky load balancer: the APIs set no cookies)",
    )
    parser.add_argument("--credentials-file", type=Path, metavar="FILE", help="KEY=VALUE credentials file")
    parser.add_argument("--allow-production", action="store_true", help="allow Customer.io production hosts")
    parser.add_argument(
        "--expect", action="append", default=[], metavar="THRESHOLD", help="e.g. 'p95_ms < 300' (repeatable)"
    )
    parser.add_argument(
        "--no-default-thresholds", action="store_true", help="only scenario/--expect thresholds"
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    role = parser.add_mutually_exclusive_group()
    role.add_argument(
        "--master", action="store_true", help="run only the master; --workers remote workers join"
    )
    role.add_argument(
        "--worker", action="store_true", help="run --workers worker processes joining --master-host"
    )
    parser.add_argument("--master-host", default="127.0.0.1", help="master address for --worker")
    parser.add_argument(
        "--master-port",
        type=port,
        default=0,
        help="master port (5557 with --master/--worker, else free)",
    )
    parser.add_argument(
        "--bind", default="127.0.0.1", help="interface the --master listens on (0.0.0.0: all)"
    )


@contextmanager
def embedded_emulator(scenario: Path, log: Path, *, timeout_s: float = 60.0) -> Iterator[str]:
    """Run ``shopsim serve --clock virtual`` in a subprocess; yield its URL; stop it afterwards."""
    import select
    import subprocess

    argv = [sys.executable, "-m", "generator", "serve", "--port", "0", "--clock", "virtual"]
    argv += ["--scenario", str(scenario)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err)
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
            line = proc.stdout.readline().decode().strip() if ready else ""
            if not line.startswith("http"):
                raise ShopsimError(f"the embedded emulator did not start; see {log}")
            yield line
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def advance_clock(url: str, now_ms: int) -> None:
    """``POST /_shopsim/clock`` so a virtual-clock emulator decides every pending message."""
    request = urllib.request.Request(
        f"{url}/_shopsim/clock",
        data=orjson.dumps({"now_ms": int(now_ms)}),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def run(args: argparse.Namespace) -> int:
    """Run the load test; exit 0 if every threshold holds, else 1."""
    from generator.load.runner import LoadOptions, run_locust
    from generator.runs import new_run_dir, write_run_json
    from generator.scenario.load import load_scenario
    from generator.simulate import resolve_seed
    from generator.targets import check_target

    if args.worker and args.workers < 1:
        args.workers = 1
    if args.master and args.workers < 1:
        raise LoadArgumentError("--master needs --workers N: how many worker processes will join")
    if (args.worker or args.master) and args.master_port == 0:
        args.master_port = 5557  # Locust's default: remote workers must know it
    scenario = load_scenario(args.scenario)
    seed = resolve_seed(args.seed, scenario)
    embedded = args.target is None
    if embedded and args.master and args.bind not in ("127.0.0.1", "localhost"):
        raise LoadArgumentError(
            "remote workers cannot reach the embedded emulator (it listens on loopback): give --target"
        )
    target = None if embedded else check_target(args.target, allow_production=args.allow_production)
    if args.credentials_file is not None:
        # Read now: inside Locust a bad file only shows up in a worker's log, after the start-up.
        from generator.credentials import load_credentials

        load_credentials(file=args.credentials_file)
    from generator.check import parse_thresholds

    thresholds = list(scenario.expect) + parse_thresholds(args.expect, campaigns=scenario.campaigns)
    if not args.no_default_thresholds:
        given = {t.metric for t in thresholds}
        thresholds += [t for t in parse_thresholds(DEFAULT_THRESHOLDS) if t.metric not in given]

    run_dir = new_run_dir(
        args.results, scenario.name, seed, kind="load" if not args.worker else "load-worker"
    )
    clock = "scaled" if embedded else "wall"
    write_run_json(
        run_dir,
        scenario_path=args.scenario,
        seed=seed,
        clock="virtual" if embedded else "wall",
        target=target or "embedded emulator",
        extra={"load": {"users": args.users, "speed": args.speed, "workers": args.workers, "api": args.api}},
    )
    print(f"shopsim load: results in {run_dir}", file=sys.stderr, flush=True)

    def options(url: str) -> LoadOptions:
        return LoadOptions(
            scenario=args.scenario.resolve(),
            target=url,
            run_dir=run_dir.resolve(),
            seed=seed,
            api=args.api,
            users=args.users,
            spawn_rate=args.spawn_rate,
            duration_s=args.duration,
            speed=args.speed,
            shoppers=args.shoppers,
            clock=clock,
            batch_size=args.batch_size,
            batch_window=args.batch_window,
            late_ms=args.late_ms,
            retries=args.retries,
            grace_s=args.grace,
            tail=args.tail,
            send_oversize=args.send_oversize,
            keep_cookies=args.keep_cookies,
            presimulate=args.presimulate,
            request_log=args.request_log,
            credentials_file=args.credentials_file.resolve() if args.credentials_file else None,
            workers=args.workers,
            master_host=args.master_host,
            master_port=args.master_port,
            master_bind_host=args.bind,
        )

    role = "worker" if args.worker else ("master" if args.master else "auto")
    timeout = None if args.duration is None else args.duration + args.grace + 120.0

    if args.worker:
        outcome = run_locust(options(target or ""), role="worker")
        return 0 if all(code in (0, 1) for code in outcome.exit_codes) else 2

    started = time.monotonic()
    run_meta: dict[str, Any] = {
        "run_id": run_dir.name,
        "kind": "load",
        "scenario": {"name": scenario.name, "path": str(args.scenario)},
        "seed": seed,
        "shoppers": args.shoppers if args.shoppers is not None else scenario.shoppers,
        "clock": "virtual" if embedded else "wall",
        "target": target or "embedded emulator",
        "api": args.api,
        "observer": "export" if embedded else "none",
    }
    if embedded:
        with embedded_emulator(args.scenario, run_dir / "emulator.log") as url:
            outcome = run_locust(options(url), role=role, timeout_s=timeout)
            metrics, lag = _load_results(run_dir, outcome)
            load = _load_record(args, metrics, lag)
            longest = max((c.delay for c in scenario.campaigns.values()), default=0)
            # Past the longest campaign delay plus a minute, so every pending message is decided.
            advance_clock(url, int(lag.get("clock_ms", 0)) + longest + 60_000)
            from generator.load.check import check_load

            check = check_load(
                scenario=scenario,
                scenario_path=args.scenario,
                seed=seed,
                shoppers=args.shoppers,
                run_dir=run_dir,
                target=url,
                run_meta={**run_meta, "load": load},
                thresholds=thresholds,
                extra_metrics=_load_metrics(metrics, lag),
                ledger_counts=lag.get("ledger", {}),
            )
        results, skipped = check["thresholds"], list[Any]()
        passed = bool(check["passed"])
    else:
        assert target is not None
        outcome = run_locust(options(target), role=role, timeout_s=timeout)
        metrics, lag = _load_results(run_dir, outcome)
        load = _load_record(args, metrics, lag)
        check = {"metrics": {}, "skipped": f"no complete observer for {target}: ingestion thresholds only"}
        results, skipped = _evaluate_ingestion(thresholds, list(scenario.expect), _load_metrics(metrics, lag))
        passed = all(r.passed for r in results)

    record = {
        "verdict": "pass" if passed else "fail",
        "wall_s": round(time.monotonic() - started, 3),
        **load,
        "check": {k: v for k, v in check.items() if k != "thresholds"},
        "thresholds": [
            {"threshold": r.threshold, "actual": r.actual, "passed": r.passed, "note": r.note}
            for r in results
        ],
        "skipped_thresholds": [str(t) for t in skipped],
    }
    (run_dir / "load.json").write_bytes(
        orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    )
    _print(load, results if not embedded else [], skipped, passed, run_dir, check)
    return 0 if passed else 1


def _load_results(run_dir: Path, outcome: Any) -> tuple[Any, dict[str, Any]]:
    """Locust's metrics and the collector's arrival report; a crashed Locust is an error."""
    from generator.load.stats import read_locust_results

    if any(code not in (0, 1) for code in outcome.exit_codes):
        raise ShopsimError(
            f"Locust failed (exit codes {list(outcome.exit_codes)}); see {run_dir / 'locust'}/*.log"
        )
    if not outcome.lag:
        raise ShopsimError(f"the load test produced no arrival report; see {run_dir / 'locust'}/*.log")
    return read_locust_results(run_dir / "locust"), dict(outcome.lag)


def _load_metrics(metrics: Any, lag: dict[str, Any]) -> dict[str, float | None]:
    """The load metrics thresholds can name (``p95_ms``, ``error_rate``, arrival lag, ...)."""
    start_lag = lag.get("start_lag", {})
    return {
        "p95_ms": metrics.p95_ms,
        "p99_ms": metrics.p99_ms,
        "error_rate": metrics.error_rate,
        "arrival_lag_p95_ms": float(start_lag.get("p95_ms", 0.0)),
        "late_start_share": float(start_lag.get("late_share", 0.0)),
    }


def _load_record(args: argparse.Namespace, metrics: Any, lag: dict[str, Any]) -> dict[str, Any]:
    """The load figures (also carried into summary.json under ``"load"``)."""
    from generator.load.messages import pool_verdict

    start_lag = lag.get("start_lag", {})
    return {
        "locust": metrics.as_dict(),
        "arrival_lag": start_lag,
        "send_lag": lag.get("send_lag", {}),
        "pool": pool_verdict(
            float(start_lag.get("late_share", 0.0)),
            users=args.users,
            late_share_max=float(lag.get("late_share_max", 0.01)),
            max_busy=lag.get("max_in_flight"),
        ),
        "users": args.users,
        "speed": args.speed,
        "workers": args.workers,
        "shoppers_started": lag.get("shoppers_started", 0),
        "shoppers_unstarted": lag.get("shoppers_unstarted", 0),
        "shoppers_not_due": lag.get("shoppers_not_due", 0),
        "deliveries_cut_by_end": lag.get("deliveries_cut_by_end", 0),
        "ledger": lag.get("ledger", {}),
        "reconciled": lag.get("reconciled", False),
        "per_shard": lag.get("per_shard", []),
    }


def _evaluate_ingestion(
    thresholds: list[Any], scenario_thresholds: list[Any], values: dict[str, float | None]
) -> tuple[list[Any], list[Any]]:
    """Thresholds against a target without an observer.

    The scenario's campaign thresholds are meant for a target whose outcomes can be observed
    (the embedded emulator); here they are reported as skipped rather than failed. Thresholds
    given with ``--expect`` always count (unmeasurable ones fail).
    """
    from generator.check import evaluate

    skipped = [t for t in thresholds if t in scenario_thresholds and t.metric not in values]
    return evaluate([t for t in thresholds if t not in skipped], values), skipped


def _print(
    load: dict[str, Any],
    results: list[Any],
    skipped: list[Any],
    passed: bool,
    run_dir: Path,
    check: dict[str, Any],
) -> None:
    out = sys.stdout
    m, lag, ledger = load["locust"], load["arrival_lag"], load["ledger"]
    print(
        f"load: requests {m['requests']}  failures {m['failures']} ({m['error_rate']:.3%})  "
        f"p50 {m['p50_ms']:.0f} ms  p95 {m['p95_ms']:.0f} ms  p99 {m['p99_ms']:.0f} ms  {m['rps']:.1f} req/s",
        file=out,
    )
    print(
        f"shoppers started {load['shoppers_started']} (due but unstarted {load['shoppers_unstarted']})  "
        f"arrival lag p50 {lag.get('p50_ms', 0):.0f} ms  p95 {lag.get('p95_ms', 0):.0f} ms  "
        f"max {lag.get('max_ms', 0):.0f} ms  late {lag.get('late_share', 0):.1%}",
        file=out,
    )
    print(load["pool"], file=out)
    states = ("planned", "acknowledged", "rejected", "dropped_by_fault", "given_up")
    not_due = load.get("deliveries_cut_by_end", 0)
    tail = f"  ({not_due} of them unsent only because the test ended)" if not_due else ""
    print("ledger: " + "  ".join(f"{k} {ledger.get(k, 0)}" for k in states) + tail, file=out)
    if "shoppers_checked" in check:
        print(
            f"campaign check: {check['shoppers_checked']} shoppers replayed to the end "
            f"({check['shoppers_left_out']} cut short by the end of the test left out)",
            file=out,
        )
    for r in results:
        actual = "n/a" if r.actual is None else f"{r.actual:g}"
        note = f"  ({r.note})" if r.note else ""
        print(f"{'PASS' if r.passed else 'FAIL'}  {r.threshold}  (actual {actual}){note}", file=out)
    for t in skipped:
        print(f"SKIP  {t}  (campaign outcomes are not observable at this target)", file=out)
    print(f"verdict: {'pass' if passed else 'fail'}  ({run_dir})", file=out)
