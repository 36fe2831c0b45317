"""``shopsim send``: deliver a scenario's delivery plan to an HTTP endpoint, with a ledger.

``shopsim send SCENARIO --target URL [--api pipelines|track-v1|track-v2|browser] ...`` builds
the plan (load → simulate → faults), sends it with :func:`generator.deliver.http.send_plan`
and writes ``results/<run-id>/``:

- ``run.json``       seed, scenario hash, versions, command line, clock, target (no credentials)
- ``ledger.ndjson``  one line per planned delivery and its final state (see ``deliver/ledger.py``)
- ``delivery.json``  the ledger counts, ``elapsed_s`` (wall seconds), ``events_per_s``,
                     ``stale_timestamps`` (events sent with a timestamp older than 72 h)

Safety: ``--target`` is required (this command is for real endpoints; ``shopsim run`` drives the
embedded emulator). A loopback target works with the emulator's local credentials when none
are configured; any other target needs credentials from the environment (``CIO_SITE_ID``,
``CIO_API_KEY``, ``CIO_PIPELINES_KEY``) or ``--credentials-file``, and a Customer.io production
host needs ``--allow-production`` too. Credentials are never printed or written.

Exit codes: 0 every planned delivery was acknowledged or dropped by an intended fault;
1 some deliveries were rejected or given up (see the ledger); 2 bad input (flags, scenario,
target, credentials); 130 interrupted (the ledger is still complete: what was in flight is
recorded as given up).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import orjson

from generator.commands._args import bounded_int, duration_ms, positive_float, positive_int, shopper_count
from generator.credentials import LOCAL_DEFAULTS, Credentials, load_credentials
from generator.deliver.ledger import LedgerCounts
from generator.errors import DeliveryError
from generator.events import Delivery
from generator.targets import check_target, target_is_loopback

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

HELP = "Send a scenario's events to an HTTP endpoint (batching, retries, a ledger of every event)."

APIS = ("pipelines", "track-v1", "track-v2", "browser")

# Customer.io: only events whose timestamp is within the past 72 hours can trigger campaigns.
STALE_AFTER_MS = 72 * 3600 * 1000

_NEEDED: dict[str, tuple[tuple[str, str], ...]] = {
    "track-v1": (("site_id", "CIO_SITE_ID"), ("api_key", "CIO_API_KEY")),
    "track-v2": (("site_id", "CIO_SITE_ID"), ("api_key", "CIO_API_KEY")),
    "pipelines": (("pipelines_key", "CIO_PIPELINES_KEY"),),
    "browser": (("pipelines_key", "CIO_PIPELINES_KEY"),),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``shopsim send``."""
    parser.epilog = (
        "Credentials: CIO_SITE_ID + CIO_API_KEY (track-v1, track-v2) or CIO_PIPELINES_KEY "
        "(pipelines, browser) from the environment or --credentials-file; a loopback target falls "
        "back to the emulator's local keys. Exit status: 0 all delivered (or dropped by an intended "
        "fault), 1 some events rejected or given up (see ledger.ndjson), 2 bad input, 130 interrupted."
    )
    parser.add_argument("scenario", type=Path, help="scenario YAML file")
    parser.add_argument(
        "--target",
        required=True,
        metavar="URL",
        help="base URL of the ingest endpoint, e.g. http://127.0.0.1:8085 or https://cdp.customer.io",
    )
    parser.add_argument(
        "--api", choices=APIS, default="pipelines", help="wire format and endpoints (default: pipelines)"
    )
    parser.add_argument(
        "--clock", choices=("wall", "virtual"), default="wall", help="wall (default) or virtual"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="root seed (default: the scenario's, else fresh)"
    )
    parser.add_argument(
        "--shoppers", type=shopper_count, default=None, help="override the scenario's shopper count"
    )
    parser.add_argument(
        "--speed",
        type=positive_float,
        default=None,
        help="wall clock: replay the simulated timeline X times faster (default: as fast as possible)",
    )
    parser.add_argument(
        "--keep-timestamps",
        action="store_true",
        help="send the original event timestamps (backfill) instead of shifting them to now",
    )
    parser.add_argument("--rps", type=positive_float, default=None, help="cap requests per second")
    parser.add_argument(
        "--concurrency", type=positive_int, default=10, help="requests in flight (wall clock)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=100, help="events per batch request; 1 = per call"
    )
    parser.add_argument(
        "--batch-window",
        type=duration_ms,
        default=None,
        metavar="DURATION",
        help="longest arrival-time span of one batch (default: 1s on the wall clock, 60s on the virtual "
        "clock, where each item carries its own arrival time)",
    )
    parser.add_argument(
        "--max-attempts", type=bounded_int(1, 100), default=5, help="attempts per request (default 5)"
    )
    parser.add_argument("--credentials-file", type=Path, default=None, metavar="FILE", help="KEY=VALUE file")
    parser.add_argument("--allow-production", action="store_true", help="allow Customer.io production hosts")
    parser.add_argument(
        "--results", type=Path, default=Path("results"), metavar="DIR", help="results directory"
    )
    parser.add_argument(
        "--send-oversize", action="store_true", help="send requests above the API's byte limits anyway"
    )


def resolve_credentials(api: str, target: str, *, file: Path | None) -> Credentials:
    """Credentials for ``api`` at ``target``: local defaults only on loopback; else env/file, checked."""
    loopback = target_is_loopback(target)
    creds = load_credentials(file=file, defaults=LOCAL_DEFAULTS if loopback else None)
    missing = [env for field, env in _NEEDED[api] if not getattr(creds, field)]
    if missing:
        where = "in the environment or in --credentials-file"
        raise DeliveryError(f"sending {api} events to {target} needs {' and '.join(missing)} ({where})")
    return creds


def run(args: argparse.Namespace) -> int:
    """Build the plan, send it, write the ledger; exit 0 (all delivered), 1 (losses) or 2."""
    from generator.deliver.http import RetryPolicy, send_plan
    from generator.deliver.ledger import Ledger
    from generator.faults import plan_deliveries
    from generator.runs import new_run_dir, write_run_json
    from generator.scenario.load import load_scenario
    from generator.simulate import resolve_seed, simulate_shoppers
    from generator.wire import encoder_for

    target = check_target(args.target, allow_production=args.allow_production)
    creds = resolve_credentials(args.api, target, file=args.credentials_file)
    encoder = encoder_for(args.api, creds=creds)
    encoder.auth_headers(creds)  # fail on a missing key before any file is written
    if args.clock == "virtual" and not target_is_loopback(target):
        print(
            "shopsim send: note: --clock virtual stamps requests with X-Shopsim-Clock, which only the "
            "shopsim emulator reads; a real endpoint receives the events as fast as it answers, with "
            "their original timestamps",
            file=sys.stderr,
        )

    scenario = load_scenario(args.scenario)
    seed = resolve_seed(args.seed, scenario)
    lives = simulate_shoppers(scenario, seed=seed, shoppers=args.shoppers)
    plan: Iterable[Delivery] = plan_deliveries(scenario, lives, seed=seed)

    run_dir = new_run_dir(args.results, scenario.name, seed, kind="send")
    write_run_json(
        run_dir,
        scenario_path=args.scenario,
        seed=seed,
        clock=args.clock,
        target=target,
        extra={
            "api": args.api,
            "shoppers": args.shoppers or scenario.shoppers,
            "speed": args.speed,
            "keep_timestamps": args.keep_timestamps,
            "batch_size": args.batch_size,
            "batch_window_ms": args.batch_window,
            "concurrency": args.concurrency,
            "rps": args.rps,
            "max_attempts": args.max_attempts,
            "send_oversize": args.send_oversize,
        },
    )
    err = sys.stderr
    print(
        f"shopsim send: {args.api} → {target} (seed {seed}, clock {args.clock}); results in {run_dir}",
        file=err,
    )

    stale = _StaleCounter(warn=err) if args.keep_timestamps and args.clock == "wall" else None
    if stale is not None:
        plan = stale.wrap(plan)

    started = time.monotonic()
    with Ledger(run_dir / "ledger.ndjson") as ledger, _ProgressDisplay(err) as progress:
        counts = send_plan(
            plan,
            target=target,
            encoder=encoder,
            creds=creds,
            clock=args.clock,
            speed=args.speed,
            keep_timestamps=args.keep_timestamps,
            concurrency=args.concurrency,
            batch_size=args.batch_size,
            batch_window_ms=args.batch_window,
            rps=args.rps,
            ledger=ledger,
            send_oversize=args.send_oversize,
            progress=progress,
            retry=RetryPolicy(max_attempts=args.max_attempts),
            jitter_seed=seed,
            user_agent=_user_agent(),
        )
    elapsed = time.monotonic() - started
    summary: dict[str, object] = {
        **counts.as_dict(),
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(counts.settled / elapsed, 1) if elapsed > 0 else None,
        "stale_timestamps": stale.count if stale is not None else 0,
    }
    (run_dir / "delivery.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    _print_summary(counts, summary, run_dir, sys.stdout)
    return 0 if counts.ok else 1


class _StaleCounter:
    """Counts events sent with a timestamp older than 72 h; warns once, on the first one."""

    def __init__(self, *, warn: TextIO, now_ms: Callable[[], int] | None = None) -> None:
        self.count = 0
        self._warn = warn
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))

    def wrap(self, plan: Iterable[Delivery]) -> Iterator[Delivery]:
        for delivery in plan:
            if not delivery.dropped and delivery.event.timestamp_ms < self._now_ms() - STALE_AFTER_MS:
                if self.count == 0:
                    print(
                        "shopsim send: warning: --keep-timestamps sends events older than 72 h; "
                        "Customer.io stores them (profiles, segments) but they never trigger campaigns",
                        file=self._warn,
                    )
                self.count += 1
            yield delivery


class _ProgressDisplay:
    """A rich progress line on a terminal stderr (events/s, errors); nothing when redirected."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._started = 0.0

    def __enter__(self) -> Callable[[LedgerCounts], None] | None:
        if not self._stream.isatty():
            return None
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(file=self._stream),
        )
        self._task = self._progress.add_task("starting", total=None)
        self._started = time.monotonic()
        self._progress.start()
        return self._update

    def _update(self, counts: LedgerCounts) -> None:
        assert self._progress is not None and self._task is not None
        elapsed = max(time.monotonic() - self._started, 1e-9)
        c = counts
        self._progress.update(
            self._task,
            description=(
                f"{c.settled:,} events {c.settled / elapsed:,.0f}/s · {c.requests:,} req · "
                f"{c.retries:,} retries · errors {c.http_errors:,} HTTP {c.connection_errors:,} conn · "
                f"rejected {c.rejected:,} · given up {c.given_up:,}"
            ),
        )

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _print_summary(counts: LedgerCounts, summary: dict[str, object], run_dir: Path, out: TextIO) -> None:
    rows = [
        ("planned", counts.planned),
        ("acknowledged", counts.acknowledged),
        ("rejected", counts.rejected),
        ("dropped by fault", counts.dropped_by_fault),
        ("given up", counts.given_up),
        ("requests", counts.requests),
        ("retries", counts.retries),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name:<{width}}  {value:>10,}" for name, value in rows]
    rate = summary.get("events_per_s")
    lines.append(
        f"  {'elapsed':<{width}}  {summary['elapsed_s']:>9}s" + (f"  ({rate:,} events/s)" if rate else "")
    )
    if summary.get("stale_timestamps"):
        lines.append(
            f"  {'older than 72 h':<{width}}  {summary['stale_timestamps']:>10,}  (cannot trigger campaigns)"
        )
    verdict = "all delivered" if counts.ok else "some events were NOT delivered: see ledger.ndjson"
    print(f"delivery: {verdict}", file=out)
    print("\n".join(lines), file=out)
    print(f"  ledger: {run_dir / 'ledger.ndjson'}", file=out)


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"shopsim/{version('shopsim')}"
    except PackageNotFoundError:  # pragma: no cover - source tree without install
        return "shopsim"
