"""``run``: scenario → deliveries → target → observations → checks → reports (DESIGN.md, "Data flow").

One streaming pass: :func:`~generator.simulate.simulate_shoppers` → (truth tap) →
:func:`~generator.faults.plan_deliveries` → (plan tap) → :func:`~generator.deliver.http.send_plan`.
The taps feed the :class:`~generator.check.EvidenceBuilder` (both expectation sets, indexes for
attribution) and the data files, so nothing holds the whole stream. Then the target is given
time (virtual clock: advanced past the longest campaign delay; wall clock: a countdown), its
observations are read, every check runs and the reports are written.

Used by ``shopsim run``, the pytest plugin (``shopsim_run``) and ``shopsim load`` (which delivers
through Locust and then calls :func:`evaluate`).
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import orjson
from rich.console import Console

from generator.check import (
    CheckContext,
    CheckResult,
    Evidence,
    EvidenceBuilder,
    Failure,
    Observed,
    parse_thresholds,
    run_checks,
)
from generator.check import evaluate as evaluate_thresholds
from generator.check.context import DEFAULT_CLOCK_TOLERANCE_MS
from generator.credentials import LOCAL_DEFAULTS, Credentials, load_credentials
from generator.errors import ScenarioError, TargetError
from generator.events import Observation
from generator.report import build_summary, print_summary, write_reports
from generator.report.data import (
    NdjsonWriter,
    delivery_record,
    event_record,
    tee_observations,
    write_expectations,
)
from generator.runs import DEFAULT_RESULTS, new_run_dir, redact_url, write_run_json
from generator.scenario.model import Scenario, Threshold

Clock = Literal["virtual", "wall"]
Observer = Literal["auto", "export", "app-api", "webhooks"]
T = TypeVar("T")
_P = ParamSpec("_P")
_R = TypeVar("_R")

GRACE_S = 60.0
"""Wall clock: extra wait after the longest campaign delay before observing."""

GC_THRESHOLD = (100_000, 50, 100)
"""Collector thresholds while a run streams: the checker keeps millions of small, acyclic records
alive, and CPython's default (700, 10, 10) re-scans them constantly — ~30% of checker time in
the benchmark. Raised, not disabled, so cyclic garbage from the network stack is still freed."""


def _gc_tuned(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator: run ``fn`` under :func:`tuned_gc`."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with tuned_gc():
            return fn(*args, **kwargs)

    return wrapper


_gc_depth = 0
_gc_retained = False


@contextmanager
def tuned_gc() -> Iterator[None]:
    """Run a block with :data:`GC_THRESHOLD`, restoring the previous thresholds after; the
    outermost block also gives back to the collector what :func:`retain` took out of it."""
    global _gc_depth, _gc_retained
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    _gc_depth += 1
    try:
        yield
    finally:
        _gc_depth -= 1
        gc.set_threshold(*previous)
        if _gc_depth == 0 and _gc_retained:
            _gc_retained = False
            gc.unfreeze()


def retain() -> None:
    """Declare everything alive now to live until the run ends (call it at a stage boundary,
    e.g. once the evidence or the observations are built): the collector stops scanning it.

    Without this, the first middle-generation collection after a million-event evidence is
    built scans all of it — 1.5–2.5 s of the checker at 1M events, for nothing, since the
    records are acyclic and alive. ``gc.freeze`` moves them out of the generations; garbage
    cycles caught in the move are freed when the outermost :func:`tuned_gc` block ends.
    """
    global _gc_retained
    if _gc_depth:
        _gc_retained = True
        gc.freeze()


@dataclass
class RunResult:
    """The outcome of one run: verdict, metrics (also as attributes) and attributed failures.

    ``result.suppression_violations`` reads the metric; ``result.trigger_recall("cart_recovery")``
    reads a per-campaign one (no argument: all campaigns). ``failures`` are sorted worst first.
    """

    run_dir: Path
    seed: int
    scenario: Scenario
    scenario_path: str
    check: CheckResult
    summary: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.check.passed

    @property
    def verdict(self) -> str:
        return self.check.verdict

    @property
    def exit_code(self) -> int:
        """0 when every threshold holds, 1 otherwise."""
        return 0 if self.passed else 1

    @property
    def metrics(self) -> dict[str, float | None]:
        return self.check.metrics

    @property
    def failures(self) -> list[Failure]:
        return self.check.failures

    def metric(self, name: str, campaign: str | None = None) -> float | None:
        """A metric by name, optionally scoped to a campaign; KeyError names the known ones."""
        key = f"{name}[{campaign}]" if campaign else name
        if key not in self.check.metrics:
            known = ", ".join(sorted(self.check.metrics))
            raise KeyError(f"no metric {key!r} in this run; known: {known}")
        return self.check.metrics[key]

    def trigger_recall(self, campaign: str | None = None) -> float | None:
        return self.metric("trigger_recall", campaign)

    def delivered_recall(self, campaign: str | None = None) -> float | None:
        return self.metric("delivered_recall", campaign)

    def failures_for(self, check: str) -> list[Failure]:
        return self.check.failures_for(check)

    def explain(self, *, limit: int = 5, check: str | None = None) -> str:
        """The worst failures (of one check, or all non-info) as text with reproduce lines."""
        chosen = [f for f in self.check.failures if (check is None or f.check == check) and f.severity > 0]
        lines = [f.render() for f in chosen[:limit]]
        more = len(chosen) - limit
        if more > 0:
            lines.append(f"... and {more} more (see {self.run_dir / 'report.html'})")
        failed = [t for t in self.check.thresholds if not t.passed]
        head = [
            f"threshold failed: {t.threshold} (actual {t.actual}{'; ' + t.note if t.note else ''})"
            for t in failed
        ]
        return "\n".join(head + lines)

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not attributes: metrics read like fields.
        metrics = self.__dict__.get("check")
        if metrics is not None and name in metrics.metrics:
            return metrics.metrics[name]
        raise AttributeError(f"RunResult has no attribute or metric {name!r}")


class _Timer:
    """Wall time spent producing items of wrapped iterators, per stage (inclusive of upstream)."""

    def __init__(self) -> None:
        self.inclusive: dict[str, float] = {}

    def wrap(self, name: str, items: Iterable[T]) -> Iterator[T]:
        iterator = iter(items)
        total = 0.0
        clock = time.perf_counter
        try:
            while True:
                started = clock()
                try:
                    item = next(iterator)
                except StopIteration:
                    total += clock() - started
                    return
                total += clock() - started
                yield item
        finally:
            self.inclusive[name] = self.inclusive.get(name, 0.0) + total


@_gc_tuned
def run(
    scenario: str | Path,
    *,
    seed: int | None = None,
    shoppers: int | None = None,
    target: str | None = None,
    api: str = "pipelines",
    results: Path | None = None,
    expect: Sequence[str] = (),
    clock: Clock | None = None,
    observe: Observer = "auto",
    app_api_url: str | None = None,
    listen: int | None = None,
    grace_s: float = GRACE_S,
    wait: bool = True,
    speed: float | None = None,
    allow_production: bool = False,
    credentials_file: Path | None = None,
    batch_size: int = 100,
    concurrency: int = 10,
    write_data: bool = True,
    quiet: bool = False,
    console: Console | None = None,
) -> RunResult:
    """Run ``scenario`` end to end and return the :class:`RunResult` (the reports are written too).

    Without ``target`` the embedded emulator is started on a free loopback port with the virtual
    clock; with one, the wall clock is the default and the run waits the longest campaign delay
    plus ``grace_s`` before observing via the emulator export (when the target is a shopsim
    emulator), the App API or reporting webhooks (``observe``/``listen``).
    """
    from generator.deliver.http import send_plan
    from generator.deliver.ledger import Ledger
    from generator.faults import plan_deliveries
    from generator.scenario.load import load_scenario
    from generator.simulate import resolve_seed, simulate_shoppers
    from generator.wire import encoder_for

    out = console or Console(quiet=quiet, highlight=False)
    scenario_path = str(scenario)
    model = load_scenario(scenario_path)
    if shoppers is not None and shoppers < 1:
        raise ScenarioError(f"--shoppers must be at least 1, got {shoppers}")
    thresholds = [*model.expect, *parse_thresholds(expect, campaigns=model.campaigns)]
    root_seed = resolve_seed(seed, model)
    embedded = target is None
    the_clock: Clock = clock or ("virtual" if embedded else "wall")
    if the_clock not in ("virtual", "wall"):
        raise ScenarioError(f"--clock must be 'virtual' or 'wall', got {the_clock!r}")
    if embedded and the_clock == "wall":
        raise ScenarioError("--clock wall needs --target (the embedded emulator runs on the virtual clock)")
    timings: dict[str, float] = {}
    started = time.perf_counter()

    emulator = None
    receiver = None
    try:
        if embedded:
            from generator.emulator import start_emulator

            emulator = start_emulator(scenario=model, clock="virtual")
            url = emulator.url
            creds = LOCAL_DEFAULTS
        else:
            from generator.targets import check_target, target_is_loopback

            url = check_target(target, allow_production=allow_production)
            defaults = LOCAL_DEFAULTS if target_is_loopback(url) else None
            creds = load_credentials(file=credentials_file, defaults=defaults)
        observer = _choose_observer(observe, url, embedded=embedded)
        run_dir = new_run_dir(results or DEFAULT_RESULTS, model.name, root_seed)
        run_meta: dict[str, Any] = {
            "run_id": run_dir.name,
            "scenario": {"name": model.name, "path": scenario_path},
            "seed": root_seed,
            "shoppers": shoppers if shoppers is not None else model.shoppers,
            "clock": the_clock,
            "target": redact_url(target) if target else None,
            "api": api,
            "observer": observer,
        }
        written = write_run_json(
            run_dir,
            scenario_path=scenario_path,
            seed=root_seed,
            clock=the_clock,
            target=target,
            extra={"shoppers": run_meta["shoppers"], "api": api, "observer": observer},
        )
        run_meta["scenario"] = {**run_meta["scenario"], "sha256": written.get("scenario_sha256", "")}
        if observer == "webhooks":
            from generator.observe.webhooks import WebhookReceiver

            if not creds.webhook_secret:
                raise TargetError("observing via webhooks needs the signing secret: set CIO_WEBHOOK_SECRET")
            receiver = WebhookReceiver(creds.webhook_secret, campaigns=_campaign_names(model))
            hook_url = receiver.serve("127.0.0.1", listen or 0)
            out.print(f"listening for reporting webhooks on {hook_url}")

        builder = EvidenceBuilder(model)
        timer = _Timer()
        events_out = NdjsonWriter(run_dir / "events.ndjson" if write_data else None)
        plan_out = NdjsonWriter(run_dir / "deliveries.ndjson" if write_data else None)

        def lives_tap(lives: Iterable[Any]) -> Iterator[Any]:
            for life in lives:
                builder.add_life(life)
                for event in life.events:
                    events_out.write(event_record(event))
                yield life

        def plan_tap(plan: Iterable[Any]) -> Iterator[Any]:
            for delivery in builder.tap_plan(plan):
                plan_out.write(delivery_record(delivery))
                yield delivery

        lives = timer.wrap("simulate", simulate_shoppers(model, seed=root_seed, shoppers=shoppers))
        planned = timer.wrap(
            "plan", plan_deliveries(model, timer.wrap("evidence_truth", lives_tap(lives)), seed=root_seed)
        )
        stream = timer.wrap("evidence_plan", plan_tap(planned))
        encoder = encoder_for(api, creds=creds)
        send_started = time.perf_counter()
        with Ledger(run_dir / "ledger.ndjson") as ledger, _progress(out, quiet) as progress:
            counts = send_plan(
                stream,
                target=url,
                encoder=encoder,
                creds=creds,
                clock=the_clock,
                speed=speed,
                concurrency=concurrency,
                batch_size=batch_size,
                ledger=ledger,
                progress=progress,
            )
        events_out.close()
        plan_out.close()
        deliver_total = time.perf_counter() - send_started
        evidence = builder.finish()
        retain()
        inc = timer.inclusive
        timings["simulate"] = inc.get("simulate", 0.0)
        timings["faults"] = max(0.0, inc.get("plan", 0.0) - inc.get("evidence_truth", 0.0))
        timings["expect_and_index"] = max(
            0.0,
            inc.get("evidence_truth", 0.0)
            - inc.get("simulate", 0.0)
            + inc.get("evidence_plan", 0.0)
            - inc.get("plan", 0.0),
        )
        timings["deliver"] = max(0.0, deliver_total - inc.get("evidence_plan", 0.0))

        observe_started = time.perf_counter()
        horizon_end = evidence.last_arrival_ms + evidence.horizon_ms + 1
        if the_clock == "virtual":
            _advance_clock(url, horizon_end)
        elif wait:
            if counts.planned and not counts.acknowledged:
                # Waiting days of campaign delays for a target that took nothing helps no one.
                raise TargetError(
                    f"nothing was delivered to {redact_url(url)}: of {counts.planned:,} planned deliveries "
                    f"none was acknowledged ({counts.connection_errors:,} attempts got no answer, "
                    f"{counts.http_errors:,} an HTTP error); see {run_dir / 'ledger.ndjson'}"
                )
            _countdown(out, (evidence.horizon_ms / 1000.0) + grace_s, quiet=quiet)
        if the_clock == "wall" and speed is None and not quiet:
            out.print(
                "note: events went out as fast as possible (no --speed), so their spacing differs from the "
                "plan; timing-dependent outcomes (exits before a send, frequency windows) may differ from "
                "the expectations for that reason."
            )
        obs_out = NdjsonWriter(run_dir / "observations.ndjson" if write_data else None)
        if observer == "export":
            from generator.observe.emulator import CHECKER_EXPORT, split_export
            from generator.observe.http import stream_lines

            others, people, outcomes = split_export(
                stream_lines(url, CHECKER_EXPORT, timeout=600.0), with_outcomes=write_data
            )
            observed = Observed.build(
                tee_observations(others, obs_out),
                source=observer,
                complete_events=True,
                comparable_times=the_clock == "virtual",
                events=people,
                outcomes=outcomes,
            )
            if write_data:
                for event_id, person in people.items():
                    reason = outcomes[event_id]
                    obs_out.write({"kind": "event", "person": person, "event_id": event_id, "reason": reason})
        else:
            observations = _observe(observer, url, model, evidence, creds, receiver, app_api_url)
            observed = Observed.build(
                tee_observations(observations, obs_out),
                source=observer,
                complete_events=False,
                comparable_times=the_clock == "virtual",
            )
        obs_out.close()
        timings["observe"] = time.perf_counter() - observe_started
        return evaluate(
            model,
            scenario_path=scenario_path,
            seed=root_seed,
            run_dir=run_dir,
            run_meta=run_meta,
            evidence=evidence,
            observed=observed,
            thresholds=thresholds,
            ledger_counts=counts.as_dict(),
            timings=timings,
            started=started,
            write_data=write_data,
            console=out,
            quiet=quiet,
            # The virtual clock is exact (every batch item carries its own arrival), so no
            # disagreement may be excused as coarse request timing: it would hide a real bug.
            clock_tolerance_ms=0 if the_clock == "virtual" else DEFAULT_CLOCK_TOLERANCE_MS,
            shoppers=shoppers,
        )
    finally:
        if receiver is not None:
            receiver.stop()
        if emulator is not None:
            emulator.stop()


def build_evidence(scenario: Scenario, *, seed: int, shoppers: int | None = None) -> Evidence:
    """Regenerate truth and plan (deterministic per seed) into :class:`Evidence` — for ``shopsim load``."""
    from generator.faults import plan_deliveries
    from generator.simulate import simulate_shoppers

    with tuned_gc():
        builder = EvidenceBuilder(scenario)
        lives = builder.tap_lives(simulate_shoppers(scenario, seed=seed, shoppers=shoppers))
        for _ in builder.tap_plan(plan_deliveries(scenario, lives, seed=seed)):
            pass
        return builder.finish()


@_gc_tuned
def evaluate(
    scenario: Scenario,
    *,
    scenario_path: str,
    seed: int,
    run_dir: Path,
    run_meta: Mapping[str, Any],
    evidence: Evidence,
    observed: Observed,
    thresholds: Sequence[Threshold],
    ledger_counts: Mapping[str, int] | None = None,
    extra_metrics: Mapping[str, float | None] | None = None,
    timings: dict[str, float] | None = None,
    started: float | None = None,
    write_data: bool = True,
    console: Console | None = None,
    quiet: bool = False,
    clock_tolerance_ms: int = DEFAULT_CLOCK_TOLERANCE_MS,
    shoppers: int | None = None,
) -> RunResult:
    """Checks, thresholds and reports for a run whose deliveries and observations are done.

    ``extra_metrics`` (e.g. Locust's ``p95_ms``, ``error_rate``) join the checked metrics before
    thresholds are evaluated. ``shoppers`` is the run's ``--shoppers`` override (for the failures'
    replay commands). Writes expectations.ndjson, summary.json, report.html, junit.xml.
    """
    timings = timings if timings is not None else {}
    retain()  # the evidence and the observations live until the reports are written
    check_started = time.perf_counter()
    ctx = CheckContext(
        evidence=evidence,
        observed=observed,
        scenario_path=scenario_path,
        seed=seed,
        ledger_path=run_dir / "ledger.ndjson",
        clock_tolerance_ms=clock_tolerance_ms,
        shoppers=shoppers,
    )
    result = run_checks(ctx)
    for key, value in (extra_metrics or {}).items():
        result.metrics[key] = None if value is None else float(value)
    result.thresholds = evaluate_thresholds(thresholds, result.metrics, result.notes)
    timings["check"] = time.perf_counter() - check_started
    report_started = time.perf_counter()
    if write_data:
        write_expectations(run_dir / "expectations.ndjson", evidence.truth, evidence.delivered)
    if started is not None:
        timings["total"] = time.perf_counter() - started
    summary = build_summary(
        run=run_meta, result=result, evidence=evidence, ledger=ledger_counts, timings=timings
    )
    write_reports(run_dir, summary)
    timings["report"] = time.perf_counter() - report_started
    summary["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    (run_dir / "summary.json").write_bytes(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    )
    if not quiet:
        print_summary(summary, console=console, run_dir=str(run_dir))
    return RunResult(
        run_dir=run_dir,
        seed=seed,
        scenario=scenario,
        scenario_path=scenario_path,
        check=result,
        summary=summary,
    )


def _campaign_names(scenario: Scenario) -> dict[int, str]:
    return {cid: name for name, cid in scenario.campaign_ids().items()}


def _choose_observer(observe: Observer, url: str, *, embedded: bool) -> str:
    if observe != "auto":
        if embedded and observe != "export":
            raise ScenarioError(
                f"--observe {observe} needs --target; the embedded emulator is read via its export"
            )
        return observe
    if embedded or _is_emulator(url):
        return "export"
    return "app-api"


def _is_emulator(url: str) -> bool:
    from generator.observe.http import request

    try:
        status, _, _ = request(url, "GET", "/_shopsim/health", timeout=5.0)
    except TargetError:
        return False
    return status == 200


def _advance_clock(url: str, now_ms: int) -> None:
    from generator.observe.http import request

    status, _, body = request(
        url,
        "POST",
        "/_shopsim/clock",
        body=orjson.dumps({"now_ms": now_ms}),
        headers={"Content-Type": "application/json"},
    )
    if status >= 300:
        raise TargetError(f"could not advance the emulator clock ({status}): {body[:200]!r}")


def app_api_base(target: str) -> str:
    """The App API base URL that goes with an ingestion target (Customer.io hosts), else the target."""
    from urllib.parse import urlsplit

    host = (urlsplit(target).hostname or "").lower()
    if host.endswith("customer.io"):
        eu = "-eu" in host.split(".")[0]
        return "https://api-eu.customer.io" if eu else "https://api.customer.io"
    return target.rstrip("/")


def _observe(
    observer: str,
    url: str,
    scenario: Scenario,
    evidence: Evidence,
    creds: Credentials,
    receiver: Any,
    app_api_url: str | None,
) -> Iterable[Observation]:
    if observer == "webhooks":
        return list(receiver.observations) if receiver is not None else []
    from generator.observe.app_api import AppApiReader

    if not creds.app_key:
        raise TargetError("observing via the App API needs an App API key: set CIO_APP_KEY")
    reader = AppApiReader(
        app_api_url or app_api_base(url), creds.app_key, campaigns=_campaign_names(scenario)
    )
    return reader.messages()


class _progress:
    """A throttled rich progress line for delivery (nothing when quiet or not a terminal)."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self._console = console
        self._enabled = not quiet and console.is_terminal
        self._last = 0.0
        self._status: Any = None
        self._started = time.perf_counter()

    def __enter__(self) -> Callable[[Any], None] | None:
        if not self._enabled:
            return None
        self._status = self._console.status("delivering…")
        self._status.__enter__()
        return self._update

    def _update(self, counts: Any) -> None:
        now = time.perf_counter()
        if now - self._last < 0.25:
            return
        self._last = now
        rate = counts.settled / max(now - self._started, 1e-9)
        self._status.update(
            f"delivering… {counts.settled:,} settled ({counts.acknowledged:,} acknowledged, "
            f"{counts.rejected:,} rejected) · {rate:,.0f} events/s"
        )

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)


def _countdown(console: Console, seconds: float, *, quiet: bool) -> None:
    """Wait ``seconds`` of wall time (gevent-friendly), showing what is left."""
    import gevent

    deadline = time.monotonic() + seconds
    if quiet or not console.is_terminal:
        if not quiet:
            console.print(f"waiting {seconds:.0f} s for campaign delays (longest delay + grace)…")
        while (left := deadline - time.monotonic()) > 0:
            gevent.sleep(min(left, 1.0))
        return
    with console.status("") as status:
        while (left := deadline - time.monotonic()) > 0:
            status.update(f"waiting for campaign delays: {left:,.0f} s left")
            gevent.sleep(min(left, 1.0))
