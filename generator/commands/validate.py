"""``shopsim validate SCENARIO [--seed S] [--shoppers N]``: check a scenario and summarise it.

On success: a summary (rich tables on a terminal, plain aligned text otherwise) with the
run's length and expected arrivals, journeys with their shares, campaigns, faults,
thresholds and the analytic funnel; exit 0. On a bad scenario: every problem, located
(``file:line:column``), on stderr; exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from generator.durations import format_duration
from generator.scenario import load_scenario
from generator.scenario.funnel import IDENTIFY, Funnel, analytic_funnel, expected_arrivals, expected_time_to
from generator.scenario.model import Campaign, Faults, Scenario

HELP = "Validate a scenario file and print a summary with its analytic funnel."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``shopsim validate``."""
    parser.add_argument("scenario", metavar="SCENARIO", help="the scenario YAML file")
    parser.add_argument("--seed", type=int, help="the root seed to use instead of the scenario's")
    parser.add_argument("--shoppers", type=int, help="the number of shoppers instead of the scenario's")


def run(args: argparse.Namespace) -> int:
    """Validate, print the summary, exit 0 (a bad scenario raises ScenarioError → exit 2)."""
    overrides = {"seed": args.seed, "shoppers": args.shoppers}
    scenario = load_scenario(args.scenario, overrides=overrides)
    sections = summarize(scenario, file=args.scenario, seed_from_flag=args.seed is not None)
    if sys.stdout.isatty():
        _print_rich(sections, args.scenario)
    else:
        sys.stdout.write(render_plain(sections, args.scenario))
    return 0


# --------------------------------------------------------------------------- summary model


@dataclass(frozen=True, slots=True)
class Section:
    """A titled table of the summary; ``header`` empty for key/value sections."""

    title: str
    rows: Sequence[tuple[str, ...]] = ()
    header: tuple[str, ...] = ()
    note: str = ""


def summarize(scenario: Scenario, *, file: str, seed_from_flag: bool = False) -> list[Section]:
    """The sections of the validate summary (plain data, rendered as text or rich tables)."""
    funnel = analytic_funnel(scenario)
    return [
        _overview(scenario, file, seed_from_flag),
        _journeys(scenario, funnel),
        _campaigns(scenario, funnel),
        _faults(scenario.faults),
        Section("Thresholds (expect)", [(str(t),) for t in scenario.expect]),
        _funnel(funnel),
    ]


def _pct(p: float) -> str:
    return f"{p:.1%}" if p >= 0.001 or p == 0 else f"{p:.3%}"


def _overview(scenario: Scenario, file: str, seed_from_flag: bool) -> Section:
    rows: list[tuple[str, ...]] = [("scenario", f"{scenario.name}  ({file})")]
    if scenario.description:
        rows.append(("description", scenario.description.strip().splitlines()[0]))
    if scenario.seed is None:
        seed = "none: a fresh seed is drawn and recorded at run time"
    else:
        seed = f"{scenario.seed} (from --seed)" if seed_from_flag else f"{scenario.seed} (from the scenario)"
    rows.append(("seed", seed))
    rows.append(("start", scenario.start.strftime("%Y-%m-%dT%H:%M:%SZ (%A)")))
    arrivals = scenario.population.arrivals
    diurnal = arrivals.diurnal if isinstance(arrivals.diurnal, str) else "custom 24-hour curve"
    rows.append(
        (
            "arrivals",
            f"Poisson, {arrivals.rate_per_hour:g}/h daily mean, diurnal {diurnal}, "
            f"weekend ×{arrivals.weekend_factor:g}",
        )
    )
    if scenario.shoppers is not None:
        rows.append(("shoppers", f"{scenario.shoppers:,}"))
    if scenario.duration is not None:
        expected = expected_arrivals(scenario, scenario.duration)
        rows.append(
            (
                "duration",
                f"{format_duration(scenario.duration)}: ≈ {expected:,.0f} shoppers expected to arrive",
            )
        )
    if scenario.shoppers is not None and scenario.duration is None:
        took = expected_time_to(scenario, scenario.shoppers)
        span = format_duration(_round_ms(took)) if took is not None else "more than 10 years"
        rows.append(("arrival span", f"≈ {span} for {scenario.shoppers:,} shoppers to arrive"))
    population = scenario.population
    rows.append(("returning", f"{_pct(population.returning_share)} of shoppers are returning customers"))
    devices = _shares({d.value: w for d, w in population.devices.items()})
    rows.append(("devices", devices))
    rows.append(("sources", _shares({n: s.weight for n, s in population.sources.items()})))
    catalog = scenario.catalog
    rows.append(
        (
            "catalog",
            f"{catalog.products:,} products × {catalog.variants_per_product} variants, "
            f"{len(catalog.categories)} categories, median price {catalog.price.median:g} {catalog.currency}",
        )
    )
    identity = scenario.identity
    points = ", ".join(f"{n} {_pct(p)}" for n, p in identity.points.items())
    rows.append(("identity", f"{identity.strategy} @{identity.email_domain}; points: {points}"))
    plan = scenario.tracking_plan
    rows.append(("tracking plan", f"{len(plan.all_events)} events ({plan.extends} + {len(plan.events)} own)"))
    return Section("Scenario", rows)


def _round_ms(ms: int) -> int:
    """Round to the minute beyond an hour, to the second below: an estimate, not a timestamp."""
    unit = 60_000 if ms >= 3_600_000 else 1000
    return max(unit, round(ms / unit) * unit)


def _shares(weights: dict[str, float]) -> str:
    total = sum(weights.values()) or 1.0
    return ", ".join(f"{n} {_pct(w / total)}" for n, w in weights.items() if w > 0)


def _journeys(scenario: Scenario, funnel: Funnel) -> Section:
    rows = []
    by_name = {j.name: j for j in funnel.journeys}
    for name, journey in scenario.journeys.items():
        rows.append(
            (
                name,
                _pct(by_name[name].share),
                f"{journey.weight:g}",
                journey.audience,
                journey.source or "(population mix)",
                journey.start,
                str(len(journey.states)),
                f"{by_name[name].expected_states:.2f}",
            )
        )
    header = ("journey", "share", "weight", "audience", "source", "start", "states", "mean visits")
    return Section("Journeys", rows, header)


def _trigger(campaign: Campaign) -> str:
    trigger = campaign.trigger
    if trigger.behavior is not None:
        b = trigger.behavior
        text = f"{b.event} ×≥{b.at_least} within {format_duration(b.within)}"
        if b.and_not:
            text += f", none of {', '.join(b.and_not)} within {format_duration(b.exclusion_window)}"
        return text
    text = trigger.event or ""
    if trigger.where:
        text += " where " + " and ".join(str(f) for f in trigger.where)
    return text


def _frequency(campaign: Campaign) -> str:
    reentry = campaign.reentry_ms
    if reentry is None:
        return "once"
    if reentry == 0:
        return "every time"
    return f"once per {format_duration(reentry)}"


def _campaigns(scenario: Scenario, funnel: Funnel) -> Section:
    ids = scenario.campaign_ids()
    # Not errors (a scenario may model a campaign it does not exercise), but worth a line.
    idle = [
        f"no journey emits '{c.trigger.event_name}', so '{name}' never triggers"
        for name, c in scenario.campaigns.items()
        if funnel.reach.get(c.trigger.event_name, 0.0) == 0.0
    ]
    rows = [
        (
            f"{name} (#{ids[name]})",
            _trigger(c),
            format_duration(c.delay),
            ", ".join(c.exit_on) or "-",
            _frequency(c),
        )
        for name, c in scenario.campaigns.items()
    ]
    header = ("campaign", "trigger", "delay", "exit on", "frequency")
    return Section("Campaigns", rows, header, "note: " + "; ".join(idle) if idle else "")


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _faults(faults: Faults) -> Section:
    rows: list[tuple[str, ...]] = []
    for kind in Faults.model_fields:
        value = getattr(faults, kind)
        entries: Sequence[Any] = value if isinstance(value, tuple) else (() if value is None else (value,))
        for entry in entries:
            rows.append((kind, _compact(entry.model_dump(mode="json", exclude_defaults=True)) or "{}"))
    return Section("Faults", rows, ("fault", "configuration"))


def _funnel(funnel: Funnel) -> Section:
    rows = [(event, _pct(p)) for event, p in funnel.reach.items() if event != IDENTIFY]
    rows.append(("identify", _pct(funnel.reach[IDENTIFY])))
    calls = funnel.expected_calls
    per_kind = ", ".join(
        f"{calls[k]:.2f} {k}" for k in ("page", "screen", "track", "identify") if calls[k] > 0
    )
    note = (
        f"per shopper: {funnel.expected_states:.2f} states visited, {funnel.expected_events:.2f} calls "
        f"({per_kind}); exact for the transition probabilities, ignoring journeys' max_steps bound"
    )
    header = ("event", "P(emitted at least once)")
    return Section("Analytic funnel (per arriving shopper)", rows, header, note)


# --------------------------------------------------------------------------- rendering


def render_plain(sections: Sequence[Section], file: str) -> str:
    """The summary as aligned plain text."""
    lines = [f"{file}: valid", ""]
    for section in sections:
        lines.append(section.title)
        table = [section.header, *section.rows] if section.header else list(section.rows)
        if not section.rows:
            lines.append("  (none)")
        else:
            widths = [max(len(row[i]) for row in table if i < len(row)) for i in range(max(map(len, table)))]
            for row in table:
                cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
                lines.append(("  " + "  ".join(cells)).rstrip())
        if section.note:
            lines.append(f"  {section.note}")
        lines.append("")
    return "\n".join(lines)


def _print_rich(sections: Sequence[Section], file: str) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    console.print(Text.assemble(("✓ ", "bold green"), f"{file}: valid"))
    for section in sections:
        table = Table(title=Text(section.title, style="bold"), title_justify="left")
        table.show_header = bool(section.header)
        width = max((len(r) for r in section.rows), default=1)
        columns = section.header or ("",) * width
        for i, name in enumerate(columns):
            numeric = name in ("share", "weight", "states", "mean visits") or name.startswith("P(")
            table.add_column(name, style="bold" if i == 0 else None, justify="right" if numeric else "left")
        for row in section.rows:
            table.add_row(*(Text(cell) for cell in row))
        if not section.rows:
            table.add_row(*([Text("(none)", style="dim")] + [Text("")] * (len(columns) - 1)))
        console.print(table)
        if section.note:
            console.print(Text(f"  {section.note}", style="dim"))
