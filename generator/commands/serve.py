"""``shopsim serve``: run the Customer.io workspace emulator as a local HTTP server.

Prints the base URL (one line, flushed) when it is ready, so scripts and tests can read it
(``--port 0`` picks a free port). Loopback only unless ``--host`` says otherwise. Ctrl-C or
SIGTERM stops it cleanly (pending writes committed, the store closed).

Credentials come from flags, else the environment (``CIO_SITE_ID``, ``CIO_API_KEY``,
``CIO_PIPELINES_KEY``, ``CIO_APP_KEY``, ``CIO_WEBHOOK_SECRET``), else the documented local
defaults (``shopsim-site`` / ``shopsim-track-key`` / ``shopsim-pipelines-key`` /
``shopsim-app-key`` / ``shopsim-webhook-secret``). They are never printed.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
from pathlib import Path

from generator.commands._args import positive_float
from generator.credentials import LOCAL_DEFAULTS, Credentials, load_credentials
from generator.durations import parse_duration
from generator.errors import ShopsimError

HELP = "Run the local Customer.io workspace emulator (Track, Pipelines, App API reads, webhooks)."


class ServeError(ShopsimError):
    """A serve flag is invalid."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: loopback only)"
    )
    parser.add_argument("--port", type=int, default=0, help="port (default 0: pick a free one and print it)")
    parser.add_argument("--scenario", type=Path, help="scenario file whose campaigns: the emulator runs")
    parser.add_argument(
        "--db", type=Path, help="SQLite file (durable; restart continues it). Default: in memory"
    )
    parser.add_argument(
        "--clock",
        choices=("virtual", "wall"),
        default="wall",
        help="virtual: now = X-Shopsim-Clock / POST /_shopsim/clock; wall: real time (default)",
    )
    parser.add_argument(
        "--sync",
        choices=("NORMAL", "FULL"),
        default="NORMAL",
        help="SQLite synchronous mode (NORMAL survives kill -9; FULL also power loss)",
    )
    local = LOCAL_DEFAULTS  # loopback-only defaults: printing them gives nothing away
    parser.add_argument("--site-id", help=f"Track site id (env CIO_SITE_ID; default {local.site_id})")
    parser.add_argument("--api-key", help=f"Track API key (env CIO_API_KEY; default {local.api_key})")
    parser.add_argument(
        "--pipelines-key", help=f"Pipelines API key (env CIO_PIPELINES_KEY; default {local.pipelines_key})"
    )
    parser.add_argument(
        "--app-key", help=f"App API key for the reads (env CIO_APP_KEY; default {local.app_key})"
    )
    parser.add_argument(
        "--webhook-secret",
        help=f"reporting-webhook signing secret (env CIO_WEBHOOK_SECRET; default {local.webhook_secret})",
    )
    parser.add_argument("--webhook-url", help="POST signed sent/dropped reports here")
    parser.add_argument(
        "--dedupe-window", help="how long a seen event id stays a duplicate (e.g. 24h; default: whole run)"
    )
    parser.add_argument(
        "--no-dedupe-message-id",
        action="store_true",
        help="do not dedupe Pipelines messageId (Track id always dedupes)",
    )
    parser.add_argument(
        "--latency",
        help="server-side delay per ingestion request: 50ms or '{lognormal: {median: 20ms, p99: 400ms}}'",
    )
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of ingestion requests answered 500/503"
    )
    parser.add_argument(
        "--rate-limit", type=positive_float, help="ingestion requests per second before 429 + Retry-After"
    )
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="private key for --tls-cert (PEM)")


def _credentials(args: argparse.Namespace) -> Credentials:
    base = load_credentials(defaults=LOCAL_DEFAULTS)
    return Credentials(
        site_id=args.site_id or base.site_id,
        api_key=args.api_key or base.api_key,
        pipelines_key=args.pipelines_key or base.pipelines_key,
        app_key=args.app_key or base.app_key,
        webhook_secret=args.webhook_secret or base.webhook_secret,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    import gevent
    from gevent.event import Event

    from generator.emulator import start_emulator
    from generator.emulator.server_faults import parse_latency

    scenario = None
    if args.scenario is not None:
        from generator.scenario.load import load_scenario

        scenario = load_scenario(args.scenario)
    if not 0 <= args.port <= 65535:
        raise ServeError(f"--port must be within 0..65535, got {args.port}")
    if not 0.0 <= args.error_rate <= 1.0:
        raise ServeError(f"--error-rate must be within [0, 1], got {args.error_rate}")
    window = None
    if args.dedupe_window:
        try:
            window = parse_duration(args.dedupe_window)
        except ValueError as exc:
            raise ServeError(f"--dedupe-window: {exc}") from None
    latency = None
    if args.latency:
        try:
            latency = parse_latency(args.latency)
        except ValueError as exc:
            raise ServeError(f"--latency: {exc}") from None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ServeError("--tls-cert and --tls-key go together")
    if args.db is not None and args.db.parent and not args.db.parent.exists():
        raise ServeError(f"--db: directory {args.db.parent} does not exist")
    try:
        handle = start_emulator(
            scenario=scenario,
            host=args.host,
            port=args.port,
            db=args.db,
            clock=args.clock,
            creds=_credentials(args),
            webhook_url=args.webhook_url,
            dedupe_window_ms=window,
            dedupe_message_id=not args.no_dedupe_message_id,
            latency=latency,
            error_rate=args.error_rate,
            rate_limit=args.rate_limit,
            synchronous=args.sync,
            certfile=args.tls_cert,
            keyfile=args.tls_key,
        )
    except sqlite3.DatabaseError as exc:
        # A directory, an unwritable place, or a file that is not a shopsim SQLite store.
        raise ServeError(f"--db {args.db}: cannot use it as the emulator's store ({exc})") from None
    except OSError as exc:
        raise ServeError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ServeError(str(exc)) from None
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print(
            f"shopsim serve: listening on {args.host}, beyond loopback; anyone who can reach it can "
            "write to it (set your own CIO_* keys: the local defaults are public)",
            file=sys.stderr,
            flush=True,
        )
    print(handle.url, flush=True)
    try:
        stop.wait()
    finally:
        handle.stop()
    print("shopsim serve: stopped", file=sys.stderr, flush=True)
    return 0
