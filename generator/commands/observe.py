"""``shopsim observe``: receive Customer.io reporting webhooks, verify them, write observations.

``shopsim observe --listen PORT [--out FILE] [--duration 10m] [--scenario FILE]`` serves a
receiver on 127.0.0.1:PORT (``--host`` to change). Every request must carry a valid
``X-CIO-Signature`` for its ``X-CIO-Timestamp`` (HMAC-SHA256 with ``CIO_WEBHOOK_SECRET``) and a
timestamp within ``--tolerance`` of now; anything else is answered 401 and counted. Accepted
``sent``/``dropped`` reports are appended to ``--out`` as observation NDJSON (see
``generator/report/data.py``), ``campaign_id`` mapped to names when ``--scenario`` is given.
Runs until ``--duration`` elapses or Ctrl-C; exit 0.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from generator.commands._args import duration_s, port, positive_duration_s

HELP = "Receive and verify Customer.io reporting webhooks; write them as observation NDJSON."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", type=port, required=True, metavar="PORT", help="port to listen on (0: any free)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument(
        "--out", type=Path, default=Path("observations.ndjson"), help="observations file to append to"
    )
    parser.add_argument(
        "--duration", type=positive_duration_s, help="stop after this long (default: until Ctrl-C)"
    )
    parser.add_argument("--scenario", help="scenario file, to name campaigns by their campaign_id")
    parser.add_argument(
        "--tolerance", type=duration_s, default=300.0, help="max |now - X-CIO-Timestamp| (default 5m)"
    )
    parser.add_argument("--credentials-file", type=Path, help="KEY=VALUE file with CIO_WEBHOOK_SECRET")


def run(args: argparse.Namespace) -> int:
    import gevent
    import orjson

    from generator.credentials import load_credentials
    from generator.errors import ShopsimError, TargetError
    from generator.events import Observation
    from generator.observe.webhooks import WebhookReceiver
    from generator.report.data import observation_record

    creds = load_credentials(file=args.credentials_file)
    if not creds.webhook_secret:
        raise TargetError("shopsim observe needs the webhook signing secret: set CIO_WEBHOOK_SECRET")
    campaigns: dict[int, str] = {}
    if args.scenario:
        from generator.scenario.load import load_scenario

        campaigns = {cid: name for name, cid in load_scenario(args.scenario).campaign_ids().items()}
    try:
        out_file = args.out.open("ab")
    except OSError as exc:
        raise ShopsimError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    with out_file as fh:

        def write(obs: Observation) -> None:
            fh.write(orjson.dumps(observation_record(obs), option=orjson.OPT_APPEND_NEWLINE))
            fh.flush()

        receiver = WebhookReceiver(
            creds.webhook_secret, campaigns=campaigns, tolerance_s=args.tolerance, on_observation=write
        )
        try:
            url = receiver.serve(args.host, args.listen)
        except OSError as exc:
            raise ShopsimError(f"cannot listen on {args.host}:{args.listen}: {exc.strerror or exc}") from None
        print(f"shopsim observe: listening on {url} → {args.out} (Ctrl-C to stop)", flush=True)
        deadline = time.monotonic() + args.duration if args.duration else None
        try:
            while deadline is None or time.monotonic() < deadline:
                gevent.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            receiver.stop()
    rejected = sum(receiver.rejected.values())
    print(
        f"shopsim observe: {receiver.accepted} accepted, {rejected} rejected {dict(receiver.rejected)}",
        flush=True,
    )
    return 0
