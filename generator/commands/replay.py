"""``shopsim replay SCENARIO [--seed S] [--shoppers N] --shopper K [--format table|json]``: a shopper.

Shopper k depends only on ``(seed, k)``, so this reproduces exactly the shopper a report
or a failing check names ("Reproduce with: shopsim replay ... --seed S --shopper K").

``table`` (default): a header (journey, device, traffic source, person, anonymous ids) and one
row per event: time (UTC), offset from the shopper's arrival, journey/state, call, name, key
properties (product sku and price, cart total, order total, ...) and the ids it carries.
``json``: one JSON document with the person and every event as the simulator produced it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from generator.commands import _args
from generator.durations import format_duration
from generator.errors import ShopsimError
from generator.events import Event, ShopperLife
from generator.scenario import load_scenario
from generator.simulate import simulate_one

HELP = "Show one shopper's journey (time, state, call, key properties) for debugging and reproduction."

COLUMNS = ("time (UTC)", "+offset", "journey/state", "call", "name", "key properties", "ids")

_KEY_PROPS = (
    "sku", "price", "quantity", "cart_total", "value", "order_id", "total", "plan", "subscription_id",
    "reason", "path", "utm_source",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``shopsim replay``."""
    parser.add_argument("scenario", metavar="SCENARIO", help="the scenario YAML file")
    parser.add_argument("--seed", type=_args.seed, help="the run's root seed (default: the scenario's seed)")
    parser.add_argument(
        "--shoppers",
        type=_args.positive_int,
        metavar="N",
        help="the run's --shoppers, if it had one (the scenario's own count or duration may end first)",
    )
    parser.add_argument(
        "--shopper",
        type=_args.non_negative_int,
        required=True,
        metavar="K",
        help="the shopper index k (0-based)",
    )
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="table (default) or one JSON document"
    )


def run(args: argparse.Namespace) -> int:
    """Replay shopper K and print it."""
    scenario = load_scenario(args.scenario)
    if args.seed is not None:
        seed = args.seed
    elif scenario.seed is not None:
        seed = scenario.seed
    else:
        raise ShopsimError(
            f"{args.scenario}: the scenario has no 'seed:', so replay needs --seed "
            "(use the seed printed by the run or recorded in results/<run-id>/run.json)"
        )
    life = simulate_one(scenario, seed=seed, shopper=args.shopper, shoppers=args.shoppers)
    if args.format == "json":
        sys.stdout.buffer.write(render_json(life, scenario=scenario.name, seed=seed) + b"\n")
        sys.stdout.flush()
        return 0
    header = header_lines(life, scenario=args.scenario, seed=seed, shoppers=args.shoppers)
    rows = table_rows(life)
    if sys.stdout.isatty():
        _print_rich(header, rows)
    else:
        sys.stdout.write(render_plain(header, rows))
    return 0


def render_json(life: ShopperLife, *, scenario: str, seed: int) -> bytes:
    """The shopper as one JSON document (events exactly as simulated)."""
    doc = {
        "scenario": scenario,
        "seed": seed,
        "shopper": life.person.shopper,
        "start_ms": life.start_ms,
        "journey": life.journey,
        "device": life.device,
        "traffic_source": life.traffic_source,
        "person": life.person,
        "events": life.events,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def header_lines(life: ShopperLife, *, scenario: str, seed: int, shoppers: int | None = None) -> list[str]:
    """What the table is about, and how to get it again."""
    person = life.person
    kind = "returning customer" if person.returning else "new visitor"
    identified = "identified" if any(e.type == "identify" for e in life.events) else "never identified"
    return [
        f"shopper {person.shopper} of {scenario} (seed {seed}): {kind}, {identified}",
        f"journey {life.journey} · device {life.device} · source {life.traffic_source} · "
        f"arrived {_utc(life.start_ms)}",
        f"person {person.user_id} <{person.email}> {person.first_name} {person.last_name}",
        f"anonymous ids {', '.join(person.anonymous_ids)}",
        f"reproduce with: shopsim replay {scenario} --seed {seed}"
        + (f" --shoppers {shoppers}" if shoppers is not None else "")
        + f" --shopper {person.shopper}",
    ]


def table_rows(life: ShopperLife) -> list[tuple[str, ...]]:
    """One row per event, in the order of :data:`COLUMNS`."""
    return [
        (
            _utc(e.timestamp_ms),
            "+" + format_duration(e.timestamp_ms - life.start_ms),
            f"{e.journey}/{e.state}",
            f"{e.type.value} ({e.source.value})",
            e.name or "-",
            _key_properties(e),
            _ids(e),
        )
        for e in life.events
    ]


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def _key_properties(event: Event) -> str:
    props: Mapping[str, Any] = event.properties
    if event.type == "identify":
        return f"email={props.get('email', '-')}"
    parts = [f"{k}={props[k]}" for k in _KEY_PROPS if k in props and not isinstance(props[k], list | dict)]
    if isinstance(props.get("products"), list):
        parts.append(f"items={len(props['products'])}")
    return " ".join(parts)


def _ids(event: Event) -> str:
    out = []
    if event.user_id:
        out.append(f"user={event.user_id}")
    if event.anonymous_id:
        out.append(f"anon={event.anonymous_id[:8]}")
    return " ".join(out)


def render_plain(header: list[str], rows: list[tuple[str, ...]]) -> str:
    """Header lines, then the rows as aligned columns (for pipes and files)."""
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(COLUMNS)]
    lines = list(header)
    lines.append("")
    lines.append("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    if not rows:
        lines.append("(no events: the shopper left before emitting anything)")
    return "\n".join(lines) + "\n"


def _print_rich(header: list[str], rows: list[tuple[str, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for line in header:
        console.print(line, highlight=False)
    table = Table(*COLUMNS, show_lines=False, header_style="bold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
