"""``shopsim run``: deliver a scenario, observe the target, check and report — the end-to-end test.

``shopsim run SCENARIO [--target URL --api ...] [--seed S] [--shoppers N] [--results DIR]
[--expect 'metric op value' ...] [--clock virtual|wall]``

Default: the embedded emulator on a free loopback port with the virtual clock (deterministic,
seconds for thousands of shoppers). With ``--target``: the wall clock, a countdown over the
longest campaign delay plus ``--grace``, then observation via the emulator export (when the
target is ``shopsim serve``), the App API (``CIO_APP_KEY``; ``--app-api-url``) or reporting
webhooks (``--observe webhooks --listen PORT``; ``CIO_WEBHOOK_SECRET``).

Writes ``results/<run-id>/``: run.json (first), summary.json, report.html, junit.xml,
events/deliveries/expectations/observations/ledger NDJSON; prints a summary table.

Exit codes: 0 every threshold holds; 1 a threshold failed (or a check crashed); 2 bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from generator.commands._args import duration_s, port, positive_float, positive_int, seed, shopper_count

HELP = "Run a scenario end to end (deliver, observe, check, report); exit 1 when a threshold fails."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="scenario YAML file")
    parser.add_argument(
        "--seed", type=seed, help="root seed (default: the scenario's seed, else a fresh one)"
    )
    parser.add_argument("--shoppers", type=shopper_count, help="override the scenario's shopper count")
    parser.add_argument("--target", help="ingestion endpoint to test (default: the embedded emulator)")
    parser.add_argument(
        "--api",
        default="pipelines",
        choices=("pipelines", "track-v1", "track-v2", "browser"),
        help="wire API",
    )
    parser.add_argument(
        "--results", type=Path, default=Path("results"), help="results directory (default: results)"
    )
    parser.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="'METRIC OP VALUE'",
        help="extra threshold, e.g. --expect 'suppression_violations == 0' (repeatable)",
    )
    parser.add_argument(
        "--clock", choices=("virtual", "wall"), help="virtual (embedded default) or wall (--target default)"
    )
    parser.add_argument(
        "--observe",
        default="auto",
        choices=("auto", "export", "app-api", "webhooks"),
        help="how to read what the target did (auto: emulator export, else the App API)",
    )
    parser.add_argument("--app-api-url", help="App API base URL (default: derived from --target)")
    parser.add_argument(
        "--listen", type=port, help="port for the reporting-webhook receiver (--observe webhooks)"
    )
    parser.add_argument(
        "--grace",
        type=duration_s,
        default=60.0,
        help="wall clock: wait after the longest delay (default 60s)",
    )
    parser.add_argument(
        "--speed",
        type=positive_float,
        help="wall clock: divide arrival gaps by this (default: as fast as possible)",
    )
    parser.add_argument("--allow-production", action="store_true", help="allow a Customer.io production host")
    parser.add_argument("--credentials-file", type=Path, help="KEY=VALUE file with CIO_* credentials")
    parser.add_argument(
        "--batch-size", type=positive_int, default=100, help="events per batch request (default 100)"
    )
    parser.add_argument("--concurrency", type=positive_int, default=10, help="wall clock: requests in flight")
    parser.add_argument(
        "--no-data", action="store_true", help="skip the events/deliveries/observations data files"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")


def run(args: argparse.Namespace) -> int:
    from generator.pipeline import run as run_pipeline

    result = run_pipeline(
        args.scenario,
        seed=args.seed,
        shoppers=args.shoppers,
        target=args.target,
        api=args.api,
        results=args.results,
        expect=args.expect,
        clock=args.clock,
        observe=args.observe,
        app_api_url=args.app_api_url,
        listen=args.listen,
        grace_s=args.grace,
        speed=args.speed,
        allow_production=args.allow_production,
        credentials_file=args.credentials_file,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        write_data=not args.no_data,
        quiet=args.quiet,
    )
    return result.exit_code
