"""``shopsim generate SCENARIO``: write the truth stream (or the delivery plan) as NDJSON.

::

    shopsim generate SCENARIO [--shoppers N] [--seed S] [--shard i/n] [--format pipelines|track-v1]
                              [--delivered] [--people-csv FILE] [-o FILE|-]

Output (:mod:`generator.wire.ndjson` documents the line formats):

- ``--format pipelines`` (default): one Segment-spec message per line, the body of a Data
  Pipelines call; ``--format track-v1``: one Track API v1 request per line, ``{"method",
  "path", "body"}``.
- ``-o FILE`` (default ``-`` = stdout); ``FILE.gz`` is gzip, deterministic (no time stamp, no
  name in the header). Same seed ⇒ byte-identical output; ``--shard i/n`` writes only shoppers
  ``k % n == i``, and the shards' lines together are exactly the unsharded run's lines.
- ``--delivered`` writes the delivery plan (faults applied, in arrival order) instead of the
  truth. Each line then carries its fault record under a namespaced key that real endpoints
  ignore: ``context.shopsim`` in a Pipelines message, a top-level ``shopsim`` beside
  ``method``/``path``/``body`` in a Track line, holding ``truth_id``, ``shopper``,
  ``arrival_ms`` (epoch ms), ``faults`` (tags) and ``dropped`` (planned but never delivered).
- ``--people-csv FILE``: also write the identified people in the layout of Customer.io's
  people CSV import (:mod:`generator.deliver.files`), e.g. to seed a demo workspace.

On a terminal, a progress bar runs on stderr; at the end one summary line goes to stderr
(shoppers, events, seconds, seed). Bad flags exit 2 with a message naming the flag.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from generator.commands._args import seed, shopper_count
from generator.deliver.files import NdjsonSink, PeopleCsvSink
from generator.events import CallType, ShopperLife
from generator.faults import plan_deliveries
from generator.scenario.model import Scenario
from generator.wire.ndjson import FORMATS, delivery_line, line_renderer

HELP = "Write a scenario's event stream (or, with --delivered, its delivery plan) as NDJSON."

_EPILOG = """\
--delivered: each line carries {"truth_id","shopper","arrival_ms","faults","dropped"} under
context.shopsim (pipelines) or a top-level "shopsim" key (track-v1); real endpoints ignore it.
Lines with "dropped": true were planned but never delivered.
"""


MAX_SHARDS = 1_000_000
"""More shards than this would be more processes than shoppers of any sane run."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with ``0 <= i < n``; argparse turns the error into exit 2."""
    index, sep, count = text.partition("/")
    try:
        if not sep:
            raise ValueError
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n such as 0/4, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"need 0 <= i < n (e.g. 0/4 ... 3/4), got {text!r}")
    if n > MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SHARDS:,} shards, got {text!r}")
    return i, n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``shopsim generate``."""
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("scenario", metavar="SCENARIO", help="the scenario YAML file")
    parser.add_argument(
        "--shoppers", type=shopper_count, metavar="N", help="number of shoppers (overrides the scenario)"
    )
    parser.add_argument(
        "--seed", type=seed, metavar="S", help="root seed (default: the scenario's, else a fresh one)"
    )
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="i/n",
        help="only shoppers with k %% n == i (default 0/1)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="pipelines", help="line format (default: pipelines)", dest="fmt"
    )
    parser.add_argument(
        "--delivered", action="store_true", help="write the delivery plan (faults applied, arrival order)"
    )
    parser.add_argument(
        "--people-csv", type=Path, metavar="FILE", help="also write identified people as a CSV"
    )
    parser.add_argument(
        "-o", "--output", default="-", metavar="FILE|-", help="output file; .gz = gzip (default: -)"
    )


def run(args: argparse.Namespace) -> int:
    """Generate, write, print the summary line; exit 0."""
    from generator.scenario.load import load_scenario
    from generator.simulate import resolve_seed, simulate_shoppers

    scenario = load_scenario(args.scenario)
    seed = resolve_seed(args.seed, scenario)
    shard: tuple[int, int] = args.shard
    total = args.shoppers or scenario.shoppers
    expected = None if total is None else max(0, -(-(total - shard[0]) // shard[1]))
    lives = simulate_shoppers(scenario, seed=seed, shoppers=args.shoppers, shard=shard)
    started = time.perf_counter()
    stats = generate(
        scenario,
        lives,
        seed=seed,
        fmt=args.fmt,
        output=args.output,
        delivered=args.delivered,
        people_csv=args.people_csv,
        progress_total=expected,
        progress_to=sys.stderr if sys.stderr.isatty() else None,
    )
    seconds = time.perf_counter() - started
    what = "deliveries" if args.delivered else "events"
    dropped = f" ({stats.dropped:,} dropped)" if args.delivered else ""
    rate = stats.lines / seconds if seconds > 0 else 0.0
    target = "stdout" if args.output == "-" else args.output
    people = f", {stats.people:,} people → {args.people_csv}" if args.people_csv else ""
    print(
        f"shopsim generate: {stats.shoppers:,} shoppers, {stats.lines:,} {what}{dropped} in {seconds:.2f} s "
        f"({rate:,.0f}/s), seed {seed} → {target}{people}",
        file=sys.stderr,
    )
    return 0


class Stats:
    """Counts of one generate run."""

    __slots__ = ("dropped", "lines", "people", "shoppers")

    def __init__(self) -> None:
        self.shoppers = 0
        self.lines = 0
        self.dropped = 0
        self.people = 0


def generate(
    scenario: Scenario,
    lives: Iterable[ShopperLife],
    *,
    seed: int,
    fmt: str = "pipelines",
    output: str | Path = "-",
    delivered: bool = False,
    people_csv: Path | None = None,
    progress_total: int | None = None,
    progress_to: TextIO | None = None,
) -> Stats:
    """Write ``lives`` as NDJSON to ``output`` (and people to ``people_csv``); the library entry point."""
    stats = Stats()
    render = line_renderer(fmt)  # validates fmt before any file is opened
    with ExitStack() as stack:
        sink = stack.enter_context(NdjsonSink(output))
        people = stack.enter_context(PeopleCsvSink(people_csv)) if people_csv is not None else None
        tick = (
            stack.enter_context(_Progress(progress_to, progress_total)) if progress_to is not None else None
        )
        counted = _tap(lives, stats, people, tick)
        if delivered:
            for delivery in plan_deliveries(scenario, counted, seed=seed):
                sink.write(delivery_line(delivery, fmt))
                stats.dropped += delivery.dropped
        else:
            for life in counted:
                events = life.events
                if events:
                    sink.write(b"".join([render(e) for e in events]), len(events))
        stats.lines = sink.lines
        stats.people = people.rows if people is not None else 0
    return stats


def _tap(
    lives: Iterable[ShopperLife],
    stats: Stats,
    people: PeopleCsvSink | None,
    tick: Callable[[], None] | None,
) -> Iterator[ShopperLife]:
    for life in lives:
        stats.shoppers += 1
        if people is not None and any(e.type is CallType.IDENTIFY for e in life.events):
            people.write(life.person)
        if tick is not None:
            tick()
        yield life


class _Progress:
    """A rich progress bar on ``stream``; yields a tick function called once per shopper."""

    def __init__(self, stream: TextIO, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("generating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("shoppers"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=True,
        )
        self._task = self._progress.add_task("generate", total=total)
        self._pending = 0

    def _tick(self) -> None:
        # Updating rich per shopper would cost more than generating the shopper.
        self._pending += 1
        if self._pending >= 500:
            self._progress.advance(self._task, self._pending)
            self._pending = 0

    def __enter__(self) -> Callable[[], None]:
        self._progress.start()
        return self._tick

    def __exit__(self, *exc: object) -> None:
        self._progress.advance(self._task, self._pending)
        self._progress.stop()
