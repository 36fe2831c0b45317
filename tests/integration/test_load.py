"""``shopsim load`` end to end: Locust in subprocesses against loopback targets only.

Every run is bounded (a few dozen shoppers, ``--duration`` caps, huge ``--speed``) and every
assertion is about files and accounting, never about timing. Locust never runs inside the
pytest process: it is started by ``shopsim load`` (itself a subprocess here), so its gevent
patching cannot leak into other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.support.faulty_server import FaultyServer, Respond

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "d2c_cart_recovery.yaml"
LEDGER_STATES = ("acknowledged", "rejected", "dropped_by_fault", "given_up")


def shopsim_load(
    tmp_path: Path, *args: str, timeout: float = 180
) -> tuple[subprocess.CompletedProcess[str], Path]:
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "generator", "load", str(SCENARIO), "--results", str(results), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    runs = sorted(results.glob("load-*"))
    assert runs, f"no run directory\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc, runs[-1]


def ledger_rows(run_dir: Path) -> list[dict]:
    return [orjson.loads(line) for line in (run_dir / "ledger.ndjson").read_bytes().splitlines() if line]


def assert_reconciles(run_dir: Path) -> dict:
    lag = orjson.loads((run_dir / "arrival_lag.json").read_bytes())
    ledger = lag["ledger"]
    rows = ledger_rows(run_dir)
    assert ledger["planned"] == len(rows) > 0
    assert sum(ledger[s] for s in LEDGER_STATES) == ledger["planned"]
    assert {r["state"] for r in rows} <= set(LEDGER_STATES)
    assert lag["reconciled"] is True
    return lag


def test_headless_run_against_the_embedded_emulator_writes_stats_ledger_and_check(tmp_path):
    proc, run_dir = shopsim_load(
        tmp_path,
        *("--shoppers", "25", "--speed", "3000", "--users", "30", "--seed", "11"),
        *("--duration", "8s", "--grace", "1s", "--no-default-thresholds", "--expect", "error_rate < 0.5"),
    )
    assert proc.returncode in (0, 1), proc.stderr
    locust = run_dir / "locust"
    for name in (
        "stats_stats.csv",
        "stats_stats_history.csv",
        "stats_failures.csv",
        "report.html",
        "stats.json",
    ):
        assert (locust / name).is_file(), name
    assert_reconciles(run_dir)
    record = orjson.loads((run_dir / "load.json").read_bytes())
    assert record["locust"]["requests"] > 0
    # the same observe → check as `shopsim run` ran and measured campaign metrics
    assert "trigger_recall" in record["check"]["metrics"]
    assert "suppression_violations" in record["check"]["metrics"]
    # everything acknowledged is at the target, and nothing the check found is unexplained
    assert record["check"]["metrics"]["ingestion_loss"] == 0
    assert record["check"]["metrics"]["unexplained"] == 0
    assert any(t["threshold"].startswith("error_rate") for t in record["thresholds"])
    assert "verdict:" in proc.stdout
    run = orjson.loads((run_dir / "run.json").read_bytes())
    assert run["seed"] == 11 and run["clock"] == "virtual"
    # request names bounded by call type and event name
    names = {
        line.split(",")[1].strip('"') for line in (locust / "stats_stats.csv").read_text().splitlines()[1:]
    }
    assert names and all(n in ("Aggregated", "page", "identify", "batch") or ": " in n for n in names), names


def test_a_small_pool_is_reported_as_late_starts(tmp_path):
    # One user against a target that takes 50 ms per request, 30 shoppers due within ~0.1 s:
    # the user cannot keep up, so shoppers must start late (or never), and the report says so.
    def slow(_incoming):
        return Respond(delay=0.05)

    with FaultyServer(slow) as server:
        proc, run_dir = shopsim_load(
            tmp_path,
            *("--shoppers", "30", "--speed", "5000", "--users", "1", "--seed", "3", "--late-ms", "20"),
            *("--duration", "4s", "--grace", "0.5s", "--target", server.url),
            *("--no-default-thresholds", "--expect", "late_start_share <= 0.01"),
        )
    assert proc.returncode == 1, proc.stderr
    lag = assert_reconciles(run_dir)
    assert lag["start_lag"]["late"] > 0 and lag["start_lag"]["late_share"] > 0.01
    assert "pool too small" in lag["verdict"] and "raise --users" in proc.stdout
    assert "FAIL  late_start_share <= 0.01" in proc.stdout


def delivered_ids(server: FaultyServer) -> list[str]:
    ids = []
    for received in server.received:
        body = orjson.loads(received.body)
        items = body.get("batch", [body])
        ids.extend(item["messageId"] for item in items)
    return ids


def test_two_workers_deliver_exactly_the_single_process_events_with_no_overlap(tmp_path):
    common = (
        "--shoppers",
        "24",
        "--speed",
        "100000",
        "--users",
        "8",
        "--seed",
        "21",
        "--tail",
        "none",  # every shopper to its last event, whatever the backlog
        "--no-default-thresholds",
    )
    with FaultyServer() as single:
        proc, single_dir = shopsim_load(tmp_path / "one", "--target", single.url, *common)
        assert proc.returncode == 0, proc.stderr + proc.stdout
    with FaultyServer() as double:
        proc, double_dir = shopsim_load(tmp_path / "two", "--target", double.url, "--workers", "2", *common)
        assert proc.returncode == 0, proc.stderr + proc.stdout
    one, two = delivered_ids(single), delivered_ids(double)
    # the same multiset: nothing lost, nothing sent by both workers
    assert one and sorted(one) == sorted(two), (len(one), len(two), proc.stdout)
    lag = assert_reconciles(double_dir)
    shards = lag["per_shard"]
    assert [s["shard"] for s in shards] == [0, 1] and all(s["shoppers_started"] == 12 for s in shards)
    rows_by_worker = {s["shard"]: s["ledger"]["acknowledged"] for s in shards}
    assert sum(rows_by_worker.values()) == len(two)
    # each shopper's events came from exactly one worker: shopper k belongs to shard k % 2
    shoppers = {r["shopper"] for r in ledger_rows(double_dir)}
    assert shoppers == {r["shopper"] for r in ledger_rows(single_dir)}


def test_the_locustfile_imports_locust_first_and_patches_cleanly():
    code = (
        "import sys, warnings, runpy\n"
        "warnings.simplefilter('error')\n"
        "runpy.run_path('locustfiles/shoppers.py')\n"
        "from gevent import monkey\n"
        "mods = list(sys.modules)\n"
        "assert monkey.is_module_patched('socket') and monkey.is_module_patched('ssl')\n"
        "assert mods.index('locust') < mods.index('generator.load.users'), 'locust was not imported first'\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "MonkeyPatchWarning" not in proc.stderr and proc.stdout.strip() == "ok"


def test_the_shopsim_cli_never_imports_locust_itself():
    code = (
        "import sys\n"
        "from generator.cli import build_parser\n"
        "build_parser().parse_args(['load', 'x.yaml'])\n"
        "import generator.load.runner, generator.load.check, generator.load.stats\n"
        "assert 'locust' not in sys.modules, 'the CLI process imported locust'\n"
        "from gevent import monkey\n"
        "assert not monkey.is_module_patched('socket')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("keep_cookies", [False, True])
def test_users_send_cookies_back_only_with_keep_cookies(tmp_path, keep_cookies):
    # The target sets a cookie on every answer (as a cookie-sticky load balancer would): by
    # default the users keep no jar and never send it back; with --keep-cookies they do.
    def sticky(_incoming):
        return Respond(headers={"Set-Cookie": "lb=node-2; Path=/"})

    with FaultyServer(sticky) as server:
        proc, run_dir = shopsim_load(
            tmp_path,
            *("--shoppers", "6", "--speed", "100000", "--users", "2", "--seed", "5", "--tail", "none"),
            *("--target", server.url, "--no-default-thresholds"),
            *(("--keep-cookies",) if keep_cookies else ()),
        )
        received = list(server.received)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert_reconciles(run_dir)
    assert len(received) > 2
    cookies = [r.headers.get("cookie") for r in received]
    if keep_cookies:
        assert cookies.count("lb=node-2") >= len(received) - 2  # all but each user's first request
    else:
        assert cookies == [None] * len(received)
