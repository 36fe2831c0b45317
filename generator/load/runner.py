"""``shopsim load`` orchestration: Locust in subprocesses, the embedded emulator, the results.

Why subprocesses (measured, see the closing note of issue 6 and tests/bench/bench_load.py):

- **gevent patching must come first.** ``import locust`` monkey-patches the standard library;
  by the time ``shopsim load`` runs, the CLI has imported pydantic, yaml, numpy and the
  scenario model, so patching in-process would be late (the MonkeyPatchWarning/RecursionError
  anchors.md §e describes). A fresh ``python -m locust -f locustfiles/shoppers.py`` imports
  Locust before anything else, exactly like a user's own ``locust`` run.
- **CPU isolation.** A load generator and the system under test must not share one Python
  interpreter (one GIL, one gevent hub): the embedded emulator runs in its own process
  (``shopsim serve``), Locust in another, so each gets a core on a 2-core machine and the
  measured latency is the emulator's, not the generator's queueing.
- **Distribution comes for free.** ``--workers W`` is the same command line with ``--master``
  plus W ``--worker`` processes; across machines it is ``shopsim load --master`` here and
  ``shopsim load --worker --master-host H`` there.
- **The process boundary is the product boundary.** Everything the load run produces goes
  through files (Locust's CSV/HTML/JSON, ``ledger.ndjson``, ``arrival_lag.json``), so what the
  report shows is what a user can re-read.

Clock. Against the embedded emulator (the default target) the emulator runs with the
*virtual* clock and the Locust users run ``--clock scaled``: every request carries
``X-Shopsim-Clock`` = the simulated instant of its actual send (schedule origin + elapsed wall
time × ``--speed``). Campaign delays, exits and the 72 h rule therefore play out in simulated
time while the traffic is real and concurrent; a shopper that starts late (pool too small)
arrives late in simulated time too. After the load the emulator's clock is advanced past the
longest campaign delay (``POST /_shopsim/clock``) so pending messages are decided, then the
same observe → check → report as ``shopsim run`` runs. Against any other target the users
run ``--clock wall``: timestamps are re-stamped on the compressed wall timeline (like
``shopsim send --clock wall --speed``) and campaign outcomes are only as observable as the
target makes them; the ingestion thresholds (``p95_ms``, ``error_rate``, arrival lag) hold
everywhere.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from generator.errors import ShopsimError

__all__ = ["LoadOptions", "LoadRun", "locust_argv", "locustfile_path", "run_locust", "worker_argv"]

LOCUSTFILE = "shoppers.py"

# The thin locustfile written next to the results when the package is installed without the
# repository's locustfiles/ directory (e.g. from a wheel).
_LOCUSTFILE_TEXT = """import locust  # first: gevent monkey-patching before anything else

from generator.load.plugin import install
from generator.load.users import ShopperUser

install(locust.events)

__all__ = ["ShopperUser"]
"""


class LoadError(ShopsimError):
    """The load test could not be run as configured."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadOptions:
    """Everything a Locust run needs (the ``shopsim load`` flags, validated)."""

    scenario: Path
    target: str
    run_dir: Path
    seed: int
    api: str = "pipelines"
    users: int = 10
    spawn_rate: float | None = None
    duration_s: float | None = None
    speed: float = 1.0
    shoppers: int | None = None
    clock: str = "wall"
    batch_size: int = 1
    batch_window: str = "1s"
    late_ms: float = 100.0
    late_share_max: float = 0.01
    retries: int = 2
    grace_s: float = 10.0
    tail: str = "auto"
    keep_timestamps: bool = False
    send_oversize: bool = False
    keep_cookies: bool = False
    presimulate: bool = False
    request_log: bool = False
    credentials_file: Path | None = None
    workers: int = 0
    master_host: str = "127.0.0.1"
    master_port: int = 0
    master_bind_host: str = "127.0.0.1"
    loglevel: str = "INFO"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def locust_dir(self) -> Path:
        """Where Locust's own outputs go."""
        return self.run_dir / "locust"


@dataclass(frozen=True, slots=True)
class LoadRun:
    """What the Locust processes left behind."""

    exit_codes: tuple[int, ...]
    wall_s: float
    lag: dict[str, Any]


def locustfile_path(run_dir: Path) -> Path:
    """The repository's ``locustfiles/shoppers.py``, else the same thin file written into ``run_dir``."""
    repo = Path(__file__).resolve().parents[2] / "locustfiles" / LOCUSTFILE
    if repo.is_file():
        return repo
    path = run_dir / "locust" / LOCUSTFILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_LOCUSTFILE_TEXT, encoding="utf-8")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _shopsim_flags(opts: LoadOptions) -> list[str]:
    flags = [
        "--scenario",
        str(opts.scenario),
        "--api",
        opts.api,
        "--speed",
        repr(float(opts.speed)),
        "--seed",
        str(opts.seed),
        "--clock",
        opts.clock,
        "--batch-size",
        str(opts.batch_size),
        "--batch-window",
        opts.batch_window,
        "--late-ms",
        repr(float(opts.late_ms)),
        "--late-share-max",
        repr(float(opts.late_share_max)),
        "--retries",
        str(opts.retries),
        "--grace",
        repr(float(opts.grace_s)),
        "--tail",
        opts.tail,
        "--results-dir",
        str(opts.run_dir),
    ]
    if opts.shoppers is not None:
        flags += ["--shoppers", str(opts.shoppers)]
    if opts.keep_timestamps:
        flags.append("--keep-timestamps")
    if opts.send_oversize:
        flags.append("--send-oversize")
    if opts.keep_cookies:
        flags.append("--keep-cookies")
    if opts.presimulate:
        flags.append("--presimulate")
    if opts.request_log:
        flags += ["--request-log", str(opts.locust_dir / "requests.ndjson")]
    if opts.credentials_file is not None:
        flags += ["--credentials-file", str(opts.credentials_file)]
    return flags


def locust_argv(opts: LoadOptions, *, role: str = "local", master_port: int | None = None) -> list[str]:
    """The command line of the stand-alone (``local``) or ``master`` Locust process."""
    out = opts.locust_dir
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile_path(opts.run_dir)),
        "--headless",
        "--users",
        str(opts.users),
        "--spawn-rate",
        repr(float(opts.spawn_rate or opts.users)),
        "--host",
        opts.target,
        "--csv",
        str(out / "stats"),
        "--html",
        str(out / "report.html"),
        "--json-file",
        str(out / "stats"),
        "--logfile",
        str(out / f"{role}.log"),
        "--loglevel",
        opts.loglevel,
        "--only-summary",
        *_shopsim_flags(opts),
    ]
    if opts.duration_s is not None:
        argv += ["--run-time", f"{max(1, round(opts.duration_s))}s"]
    if role == "master":
        argv += [
            "--master",
            "--expect-workers",
            str(max(1, opts.workers)),
            "--master-bind-host",
            opts.master_bind_host,
            "--master-bind-port",
            str(master_port or opts.master_port),
        ]
    return argv


def worker_argv(opts: LoadOptions, *, index: int, master_port: int | None = None) -> list[str]:
    """The command line of one worker process (its shopsim options come from the master).

    ``--request-log`` is given here too: the worker opens its log at init, before the master's
    options arrive.
    """
    extra = ["--request-log", str(opts.locust_dir / "requests.ndjson")] if opts.request_log else []
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile_path(opts.run_dir)),
        "--worker",
        "--master-host",
        opts.master_host,
        "--master-port",
        str(master_port or opts.master_port),
        "--logfile",
        str(opts.locust_dir / f"worker-{index}.log"),
        "--loglevel",
        opts.loglevel,
        *extra,
    ]


def _env(opts: LoadOptions) -> dict[str, str]:
    env = dict(os.environ)
    env.update(opts.extra_env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(argv: Sequence[str], log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    handle = log.open("ab")
    proc = subprocess.Popen(list(argv), stdout=handle, stderr=subprocess.STDOUT, env=env)
    return proc, handle


def _stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_locust(opts: LoadOptions, *, role: str = "auto", timeout_s: float | None = None) -> LoadRun:
    """Run Locust headless as configured and wait for it.

    ``role``: ``auto`` (stand-alone, or master + ``workers`` local workers), ``master`` (a
    master that waits for ``workers`` remote workers) or ``worker`` (``max(1, workers)`` local
    worker processes joining ``master_host``). Returns the exit codes and the collector's
    ``arrival_lag.json`` (empty for ``worker``).
    """
    opts.locust_dir.mkdir(parents=True, exist_ok=True)
    env = _env(opts)
    procs: list[subprocess.Popen[bytes]] = []
    handles: list[IO[bytes]] = []
    started = time.monotonic()
    port = opts.master_port or (free_port(opts.master_bind_host) if role != "worker" else 5557)
    try:
        if role == "worker":
            for i in range(max(1, opts.workers)):
                proc, h = _spawn(
                    worker_argv(opts, index=i, master_port=port), opts.locust_dir / f"worker-{i}.out", env
                )
                procs.append(proc)
                handles.append(h)
        elif role == "master" or opts.workers >= 1:
            proc, h = _spawn(
                locust_argv(opts, role="master", master_port=port), opts.locust_dir / "master.out", env
            )
            procs.append(proc)
            handles.append(h)
            if role != "master":
                for i in range(opts.workers):
                    proc, h = _spawn(
                        worker_argv(opts, index=i, master_port=port), opts.locust_dir / f"worker-{i}.out", env
                    )
                    procs.append(proc)
                    handles.append(h)
        else:
            proc, h = _spawn(locust_argv(opts, role="local"), opts.locust_dir / "local.out", env)
            procs.append(proc)
            handles.append(h)
        lead = procs[0]
        try:
            lead.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop_all(procs)
            raise LoadError(
                f"Locust did not finish within {timeout_s:.0f}s; see {opts.locust_dir}/*.log"
            ) from None
        # Workers leave when the master quits them; give them a moment, then make sure.
        for proc in procs[1:]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    except KeyboardInterrupt:
        _stop_all(procs)
        raise
    finally:
        for h in handles:
            h.close()
    lag_path = opts.run_dir / "arrival_lag.json"
    lag = orjson.loads(lag_path.read_bytes()) if lag_path.is_file() and role != "worker" else {}
    return LoadRun(
        exit_codes=tuple(p.returncode for p in procs),
        wall_s=time.monotonic() - started,
        lag=lag,
    )
