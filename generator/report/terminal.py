"""The terminal summary printed at the end of every run (rich tables; plain text when not a TTY)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from generator.report.format import KEY_METRICS, format_value


def print_summary(
    summary: Mapping[str, Any], *, console: Console | None = None, run_dir: str = "", examples: int = 3
) -> None:
    """Print thresholds, key metrics, campaign outcomes and the worst failures."""
    console = console or Console(stderr=False, highlight=False)
    metrics = summary.get("metrics", {})
    campaigns = summary.get("campaigns", {})
    if campaigns:
        table = Table(title="Campaigns", title_justify="left")
        for col in ("campaign", "ideal", "sent", "recall", "after exit", "dupes", "false"):
            table.add_column(col, justify="left" if col == "campaign" else "right")
        for name, row in campaigns.items():
            table.add_row(
                escape(name),
                format_value(row.get("truth_send", 0)),
                format_value(row.get("sent", 0)),
                format_value(metrics.get(f"trigger_recall[{name}]")),
                format_value(row.get("violation", 0)),
                format_value(row.get("duplicate", 0)),
                format_value(row.get("false", 0)),
            )
        console.print(table)
    table = Table(title="Metrics", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in KEY_METRICS:
        if key in metrics:
            table.add_row(escape(key), format_value(metrics[key]))
    for key, value in metrics.items():
        if "[" not in key and key not in KEY_METRICS:
            table.add_row(escape(key), format_value(value))
    console.print(table)
    failures = [f for f in summary.get("failures", []) if f.get("severity") != "info"][:examples]
    for f in failures:
        text = (
            f"{f.get('check')}: {f.get('title')}\n  {f.get('message')}\n  cause: {f.get('cause')}\n"
            f"  {f.get('reproduce') or ''}"
        )
        console.print(
            f"[bold red]{str(f.get('severity', '')).upper()}[/] {escape(text)}",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
    thresholds = summary.get("thresholds", [])
    if thresholds:
        table = Table(title="Thresholds", title_justify="left")
        table.add_column("threshold")
        table.add_column("actual", justify="right")
        table.add_column("result")
        for t in thresholds:
            ok = bool(t.get("passed"))
            note = escape(str(t.get("note") or ""))
            result = (
                (f"[green]pass[/] [yellow]{note}[/]" if note else "[green]pass[/]")
                if ok
                else f"[bold red]FAIL[/] {note}"
            )
            table.add_row(escape(str(t.get("threshold"))), format_value(t.get("actual")), result)
        console.print(table)
    verdict = str(summary.get("verdict", "fail"))
    colour = "green" if verdict == "pass" else "bold red"
    where = f"  report: {run_dir}/report.html" if run_dir else ""
    # soft_wrap: a narrow terminal or a CI log must not break the path (copied to open the report)
    console.print(f"[{colour}]{verdict.upper()}[/] seed {summary.get('seed')}{escape(where)}", soft_wrap=True)
