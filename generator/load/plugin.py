"""Locust wiring: command-line options, per-process sessions, master/worker messages.

:func:`install` registers everything on ``locust.events``; ``locustfiles/shoppers.py`` calls it.
Works with the plain ``locust`` CLI and web UI as well as under ``shopsim load``.

Options (Locust's own parser; each also reads a ``LOCUST_*`` environment variable; on a
distributed run the master's values are forwarded to the workers with the spawn message):

===========================  ===========================  ===============================================
option                       environment                  meaning
===========================  ===========================  ===============================================
``--scenario PATH``          ``LOCUST_SCENARIO``          scenario YAML (required; same path on workers)
``--api NAME``               ``LOCUST_API``               track-v1 | track-v2 | pipelines | browser
``--speed X``                ``LOCUST_SPEED``             compress arrivals and think times X times
``--clock wall|scaled``      ``LOCUST_CLOCK``             re-stamp timestamps (wall) or send X-Shopsim-Clock
``--seed N``                 ``LOCUST_SEED``              root seed (default: the scenario's, else fresh)
``--shoppers N``             ``LOCUST_SHOPPERS``          number of shoppers (default: the scenario's)
``--batch-size N``           ``LOCUST_BATCH_SIZE``        events per request for batching APIs (1 = per call)
``--batch-window D``         ``LOCUST_BATCH_WINDOW``      arrival window of one batch (e.g. 1s)
``--late-ms MS``             ``LOCUST_LATE_MS``           a shopper starting later than this is late
``--late-share-max F``       ``LOCUST_LATE_SHARE_MAX``    above this share of late starts: "pool too small"
``--retries N``              ``LOCUST_RETRIES``           retries after 429/5xx/no answer
``--tail D|auto|none``       ``LOCUST_TAIL``              simulated run-on after the last arrival
``--grace S``                ``LOCUST_GRACE``             seconds in-flight shoppers get after a stop
``--keep-timestamps``        ``LOCUST_KEEP_TIMESTAMPS``   send simulated timestamps unchanged
``--send-oversize``          ``LOCUST_SEND_OVERSIZE``     send requests above the documented size limits
``--presimulate``            ``LOCUST_PRESIMULATE``       simulate the shard before the test starts
``--results-dir DIR``        ``LOCUST_RESULTS_DIR``       where the master writes ledger and lag stats
``--request-log PATH``       ``LOCUST_REQUEST_LOG``       one NDJSON row per request (see RequestLog)
``--shard I/N``              ``LOCUST_SHARD``             force this worker's shard (default: assigned)
``--credentials-file PATH``  ``LOCUST_CREDENTIALS_FILE``  KEY=VALUE credentials (else CIO_* env vars)
===========================  ===========================  ===============================================

Roles. A process that runs users (worker or stand-alone) owns a
:class:`~generator.load.session.LoadSession` for its shard. A process that collects (master or
stand-alone) owns a :class:`~generator.load.messages.Collector`. When every shard reported
``done`` the collector quits a headless run (stops a web UI run). Whatever else stops the test
(``-t``, Ctrl-C, the web UI's stop button), the master first asks the workers to wind down and
waits for their last ledger lines before Locust stops the users, so nothing is lost.
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import orjson
from locust.env import Environment
from locust.event import Events
from locust.runners import LocalRunner, MasterRunner, Runner, WorkerRunner

from generator.credentials import LOCAL_DEFAULTS, load_credentials
from generator.durations import parse_duration
from generator.errors import ShopsimError
from generator.load.messages import DONE, LEDGER, STOP, Collector
from generator.load.prepared import compact_jobs, prepared_jobs
from generator.load.schedule import ShopperJob
from generator.load.session import LoadSession, SessionConfig
from generator.load.shard import assign_shards, shard_for
from generator.load.source import JobSpec, schedule_origin, shopper_jobs
from generator.scenario.load import load_scenario
from generator.simulate import resolve_seed
from generator.targets import is_loopback
from generator.wire import encoder_for

# The imports above are heavy (numpy, Faker, pydantic models: seconds on a busy machine). They
# happen when the locustfile is imported, before a worker connects: done inside test_start
# they would block the worker's heartbeat long enough for the master to declare it missing.

__all__ = ["install", "session_of"]

log = logging.getLogger("shopsim.load")

_SESSIONS: weakref.WeakKeyDictionary[Environment, LoadSession] = weakref.WeakKeyDictionary()
_COLLECTORS: weakref.WeakKeyDictionary[Environment, Collector] = weakref.WeakKeyDictionary()

# How long the master waits, beyond the grace period, for workers' final reports.
_REPORT_SLACK_S = 30.0


def session_of(environment: Environment) -> LoadSession | None:
    """The running session of this process (None before the test starts)."""
    return _SESSIONS.get(environment)


def collector_of(environment: Environment) -> Collector | None:
    """The collector of this process (master or stand-alone; None elsewhere)."""
    return _COLLECTORS.get(environment)


class RequestLog:
    """One NDJSON row per request, written by each process that runs users (opt-in).

    Row fields: ``t`` (epoch s, request start), ``name`` (the bounded request name), ``ms``
    (response time, ms), ``status`` (HTTP status, 0 = no answer), ``ok`` (bool), ``error``
    (failure text or ""), and from the request context ``event_id`` (first id carried),
    ``shopper`` (k) and ``events`` (ids carried). The ledger says what happened to each event;
    this file says what happened to each request.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._out = path.open("ab")
        self._pending = 0

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        response: Any = None,
        context: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        **_kw: Any,
    ) -> None:
        ctx = context or {}
        row = {
            "t": start_time,
            "name": name,
            "ms": round(float(response_time or 0), 3),
            "status": int(getattr(response, "status_code", 0) or 0),
            "ok": exception is None,
            "error": "" if exception is None else str(exception)[:200],
            "event_id": ctx.get("event_id", ""),
            "shopper": ctx.get("shopper"),
            "events": ctx.get("events", 0),
        }
        self._out.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        self._pending += 1
        if self._pending >= 200:
            self._out.flush()
            self._pending = 0

    def close(self, **_kw: Any) -> None:
        if not self._out.closed:
            self._out.close()


def add_arguments(parser: Any) -> None:
    """Register shopsim's options on Locust's argument parser."""
    group = parser  # Locust's own parser: include_in_web_ui works only there, not on groups
    group.add_argument("--scenario", env_var="LOCUST_SCENARIO", default="", help="scenario YAML file")
    group.add_argument(
        "--api",
        env_var="LOCUST_API",
        default="pipelines",
        choices=["track-v1", "track-v2", "pipelines", "browser"],
        help="wire format / ingestion API",
    )
    group.add_argument(
        "--clock",
        env_var="LOCUST_CLOCK",
        default="wall",
        choices=["wall", "scaled"],
        help="wall: re-stamp timestamps; scaled: X-Shopsim-Clock for a virtual-clock emulator",
    )
    group.add_argument("--speed", env_var="LOCUST_SPEED", type=float, default=1.0, help="time compression")
    group.add_argument("--seed", env_var="LOCUST_SEED", default="", help="root seed")
    group.add_argument("--shoppers", env_var="LOCUST_SHOPPERS", default="", help="number of shoppers")
    group.add_argument(
        "--batch-size", env_var="LOCUST_BATCH_SIZE", type=int, default=1, help="events/request"
    )
    group.add_argument("--batch-window", env_var="LOCUST_BATCH_WINDOW", default="1s", help="batch window")
    group.add_argument(
        "--late-ms", env_var="LOCUST_LATE_MS", type=float, default=100.0, help="late start (ms)"
    )
    group.add_argument(
        "--late-share-max", env_var="LOCUST_LATE_SHARE_MAX", type=float, default=0.01, help="late share limit"
    )
    group.add_argument("--retries", env_var="LOCUST_RETRIES", type=int, default=2, help="retries on 429/5xx")
    group.add_argument(
        "--tail",
        env_var="LOCUST_TAIL",
        default="auto",
        help="simulated time to keep going after the last arrival (auto: longest campaign delay + 1m; none)",
    )
    group.add_argument("--grace", env_var="LOCUST_GRACE", type=float, default=10.0, help="wind-down seconds")
    group.add_argument(
        "--keep-timestamps", env_var="LOCUST_KEEP_TIMESTAMPS", action="store_true", default=False
    )
    group.add_argument("--send-oversize", env_var="LOCUST_SEND_OVERSIZE", action="store_true", default=False)
    group.add_argument(
        "--keep-cookies",
        env_var="LOCUST_KEEP_COOKIES",
        action="store_true",
        default=False,
        help="keep a cookie jar per user (for a cookie-sticky load balancer in front of the target)",
    )
    group.add_argument(
        "--presimulate",
        env_var="LOCUST_PRESIMULATE",
        action="store_true",
        default=False,
        help="simulate the whole shard before the test starts (generation never competes with sending)",
    )
    group.add_argument("--results-dir", env_var="LOCUST_RESULTS_DIR", default="", help="run directory")
    group.add_argument(
        "--request-log",
        env_var="LOCUST_REQUEST_LOG",
        default="",
        help="write one NDJSON row per request to this path (+ '.<worker id>' on workers)",
    )
    group.add_argument("--shard", env_var="LOCUST_SHARD", default="", help="force shard i/n")
    group.add_argument(
        "--credentials-file", env_var="LOCUST_CREDENTIALS_FILE", default="", include_in_web_ui=False
    )


def _optional_int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return int(value)


def _collects(runner: Runner) -> bool:
    return isinstance(runner, MasterRunner | LocalRunner)


def _runs_users(runner: Runner) -> bool:
    return isinstance(runner, WorkerRunner | LocalRunner)


def _resolve(environment: Environment) -> tuple[Any, int]:
    """Load the scenario and fix the seed (the master's choice travels to the workers)."""
    opts = environment.parsed_options
    if not opts or not opts.scenario:
        raise ShopsimError("--scenario is required (or set LOCUST_SCENARIO)")
    scenario = load_scenario(opts.scenario)
    seed = resolve_seed(_optional_int(opts.seed), scenario)
    opts.seed = str(seed)
    return scenario, seed


def _start_collector(environment: Environment, runner: Runner) -> None:
    opts = environment.parsed_options
    assert opts is not None
    scenario, seed = _resolve(environment)
    if isinstance(runner, MasterRunner):
        clients = [c.id for c in runner.clients.all if c.state != "missing"]
        shard_map = assign_shards(clients)
        opts.shopsim_shard_map = shard_map
        expected = len(shard_map)
    else:
        expected = 1
    old = _COLLECTORS.pop(environment, None)
    if old is not None:
        old.close()
    if opts.results_dir and not getattr(opts, "shopsim_auto_results", False) and old is None:
        run_dir = Path(opts.results_dir)
    else:
        # No --results-dir, or a second test in the same web UI session: a fresh run directory,
        # so one ledger never mixes two tests.
        from generator.runs import DEFAULT_RESULTS, new_run_dir, write_run_json

        base = Path(opts.results_dir).parent if opts.results_dir else DEFAULT_RESULTS
        run_dir = new_run_dir(base, scenario.name, seed, kind="load")
        opts.results_dir = str(run_dir)
        opts.shopsim_auto_results = True
        clock = str(getattr(opts, "clock", "wall"))
        write_run_json(run_dir, scenario_path=opts.scenario, seed=seed, clock=clock, target=environment.host)

    def all_done() -> None:
        if opts.headless:
            gevent.spawn(runner.quit)
        else:
            gevent.spawn(runner.stop)

    collector = Collector(
        run_dir,
        expected=expected,
        late_ms=opts.late_ms,
        late_share_max=opts.late_share_max,
        on_all_done=all_done,
    )
    collector.users = int(opts.num_users or 0)
    _COLLECTORS[environment] = collector
    log.info("shopsim: %d shard(s), seed %d, results in %s", expected, seed, run_dir)


def _start_session(environment: Environment, runner: Runner) -> None:
    opts = environment.parsed_options
    assert opts is not None
    scenario, seed = _resolve(environment)
    client_id = getattr(runner, "client_id", "local")
    shard = shard_for(client_id, getattr(opts, "shopsim_shard_map", None), opts.shard or None)
    shoppers = _optional_int(opts.shoppers)
    spec = JobSpec(
        seed=seed,
        shoppers=shoppers,
        speed=float(opts.speed),
        batch_size=int(opts.batch_size),
        batch_window_ms=parse_duration(opts.batch_window),
        shard=shard,
    )
    host = environment.host or ""
    defaults = LOCAL_DEFAULTS if _loopback(host) else None
    creds = load_credentials(
        file=Path(opts.credentials_file) if opts.credentials_file else None, defaults=defaults
    )
    origin = schedule_origin(scenario, seed=seed, shoppers=shoppers)
    config = SessionConfig(
        tail_s=_tail_s(scenario, str(opts.tail), spec.speed),
        grace_s=float(opts.grace),
        speed=spec.speed,
        clock=str(opts.clock),
        late_ms=float(opts.late_ms),
        retries=int(opts.retries),
        keep_timestamps=bool(opts.keep_timestamps),
        send_oversize=bool(opts.send_oversize),
    )

    def emit(msg_type: str, data: dict[str, Any]) -> None:
        runner.send_message(msg_type, data)

    encoder = encoder_for(opts.api, creds=creds)
    # Requests are encoded as shoppers are simulated (before the test with --presimulate, else
    # ahead of their due time), so a send only re-stamps its body: see generator/load/prepared.py.
    jobs: Iterator[ShopperJob] = prepared_jobs(
        shopper_jobs(scenario, spec, origin_ms=origin), encoder, stamps=config.restamps
    )
    if opts.presimulate:
        jobs = iter(_cooperatively(jobs))
    session = LoadSession(
        jobs,
        encoder=encoder,
        creds=creds,
        config=config,
        emit=emit,
        shard=shard,
        origin_ms=origin,
    )
    old = _SESSIONS.pop(environment, None)
    if old is not None:
        old.stop(0)
    _SESSIONS[environment] = session
    session.start()
    log.info(
        "shopsim: shard %d/%d, seed %d, api %s, speed %g", shard[0], shard[1], seed, opts.api, spec.speed
    )


def _tail_s(scenario: Any, tail: str, speed: float) -> float | None:
    """Wall seconds to keep going after the last arrival (``--tail``), or None for "until done".

    ``auto``: the longest campaign delay plus a minute, simulated, so every cart that can still
    be converted or exited before its message is decided gets the chance; later returning
    sessions are cut (their sends are given up as "test ended").
    """
    text = tail.strip().lower()
    if text in ("none", ""):
        return None
    if text == "auto":
        longest = max((c.delay for c in scenario.campaigns.values()), default=0)
        return (longest + 60_000) / speed / 1000.0
    return parse_duration(text) / speed / 1000.0


def _cooperatively(jobs: Iterator[ShopperJob]) -> list[ShopperJob]:
    """Simulate every job now, yielding to gevent between shoppers.

    Simulation is CPU-bound; without the yields a worker's heartbeat greenlet would starve and
    the master would declare the worker missing after a few seconds.
    """
    out: list[ShopperJob] = []
    for job in jobs:
        out.append(job)
        gevent.sleep(0)
    # Simulation left the jobs scattered among freed temporaries: lay them out again, job by
    # job in replay order, so the sends walk compact memory (see compact_jobs).
    compact_jobs(out, pause=lambda: gevent.sleep(0))
    # The jobs live until the test ends: move them out of the cyclic GC's sight, or every full
    # collection during the test would walk the whole presimulated schedule again.
    gc.collect()
    gc.freeze()
    return out


def _loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    return is_loopback(urlsplit(url).hostname or "")


def _fail(environment: Environment, runner: Runner, exc: BaseException) -> None:
    """A setup error (bad scenario, bad credentials): one readable line, exit 2, end the test."""
    message = str(exc) if isinstance(exc, ShopsimError) else f"{type(exc).__name__}: {exc}"
    log.error("shopsim: %s", message)
    environment.process_exit_code = 2
    gevent.spawn(runner.quit)


def install(events: Events) -> None:
    """Register shopsim's options and listeners on Locust's ``events``."""

    def on_parser(parser: Any, **_kw: Any) -> None:
        add_arguments(parser)

    def on_init(environment: Environment, runner: Runner | None = None, **_kw: Any) -> None:
        runner = runner or environment.runner
        if runner is None:
            return
        if _collects(runner):

            def on_ledger(environment: Environment, msg: Any, **_kw: Any) -> None:
                collector = collector_of(environment)
                if collector is not None:
                    collector.on_ledger(msg.data)

            def on_done(environment: Environment, msg: Any, **_kw: Any) -> None:
                collector = collector_of(environment)
                if collector is not None:
                    collector.on_done(msg.data)

            runner.register_message(LEDGER, on_ledger)
            runner.register_message(DONE, on_done)
        if _runs_users(runner) and environment.parsed_options and environment.parsed_options.request_log:
            path = Path(environment.parsed_options.request_log)
            if isinstance(runner, WorkerRunner):
                path = path.with_name(f"{path.name}.{runner.client_id}")
            request_log = RequestLog(path)
            hooks_: Any = environment.events
            hooks_.request.add_listener(request_log.on_request)
            hooks_.quitting.add_listener(request_log.close)
        if _runs_users(runner):

            def on_stop(environment: Environment, msg: Any, **_kw: Any) -> None:
                session = session_of(environment)
                if session is not None:
                    session.stop(float((msg.data or {}).get("grace_s", 10.0)))

            runner.register_message(STOP, on_stop)

    def on_test_start(environment: Environment, **_kw: Any) -> None:
        runner = environment.runner
        if runner is None:
            return
        try:
            if _collects(runner):
                _start_collector(environment, runner)
            if _runs_users(runner):
                _start_session(environment, runner)
        except Exception as exc:  # reported as one line; the run ends with exit 2
            _fail(environment, runner, exc)

    def on_test_stopping(environment: Environment, **_kw: Any) -> None:
        runner = environment.runner
        opts = environment.parsed_options
        grace = float(opts.grace) if opts is not None else 10.0
        if runner is None:
            return
        collector = collector_of(environment)
        if _collects(runner) and collector is not None and not collector.all_done:
            # Wind the shards down before Locust kills the users, and wait for their last lines.
            runner.send_message(STOP, {"grace_s": grace})
            with gevent.Timeout(grace + _REPORT_SLACK_S, False):
                while not collector.all_done:
                    gevent.sleep(0.05)
            if not collector.all_done:
                log.error(
                    "shopsim: %d of %d shard(s) never reported; the ledger is incomplete",
                    collector.expected - len(collector.reports),
                    collector.expected,
                )
        session = session_of(environment)
        if isinstance(runner, WorkerRunner) and session is not None:
            session.stop(grace)
            session.wait(grace + 5.0)

    def on_quitting(environment: Environment, **_kw: Any) -> None:
        collector = collector_of(environment)
        if collector is not None:
            collector.write_summary()
            collector.close()

    hooks: Any = events  # Locust's EventHook.add_listener is untyped
    hooks.init_command_line_parser.add_listener(on_parser)
    hooks.init.add_listener(on_init)
    hooks.test_start.add_listener(on_test_start)
    hooks.test_stopping.add_listener(on_test_stopping)
    hooks.quitting.add_listener(on_quitting)
