"""``report.html``: one self-contained page rendered from ``summary.json`` (opens offline).

Sections: verdict and thresholds; key metrics; per-campaign outcomes; funnel; events over time
(truth vs arrivals per hour); arrival-latency and send-time-error histograms; failures by cause;
top failures each with its ``reproduce with: shopsim replay …`` line; tracking-plan violations.
Inline CSS and inline SVG only: no scripts, no fonts, no external URLs. Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from generator.report import svg
from generator.report.format import KEY_METRICS, format_value

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;
color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666}.verdict{display:inline-block;padding:4px 12px;border-radius:4px;font-weight:bold;color:#fff}
.pass{background:#3d8b4f}.fail{background:#b8423c}table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f5f5f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#3d8b4f}.bad{color:#b8423c;font-weight:bold}
.grid{display:flex;flex-wrap:wrap;gap:16px}
.failure{border-left:4px solid #b8423c;padding:4px 10px;margin:8px 0;background:#fafafa}
.failure.info,.failure.low{border-color:#8c8c8c}.failure.medium{border-color:#e07b39}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f2f2f2;padding:1px 4px}
.chart{background:#fff;border:1px solid #eee}
"""


def _num(value: Any) -> str:
    return escape(format_value(value))


def _table(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{cell}</td>' if i >= numeric_from else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(summary: Mapping[str, Any]) -> str:
    """The whole report page as a string."""
    verdict = str(summary.get("verdict", "fail"))
    scenario = summary.get("scenario", {}) or {}
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>shopsim · {escape(str(scenario.get('name', '')))} · {escape(verdict)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>shopsim run · {escape(str(scenario.get('name', '')))} "
        f'<span class="verdict {escape(verdict)}">{escape(verdict.upper())}</span></h1>',
        f'<p class="meta">run <code>{escape(str(summary.get("run_id", "")))}</code> · scenario '
        f"<code>{escape(str(scenario.get('path', '')))}</code> · seed "
        f"<code>{escape(str(summary.get('seed')))}</code>"
        f" · {_num(summary.get('shoppers'))} shoppers · clock {escape(str(summary.get('clock', '')))}"
        f" · target {escape(str(summary.get('target') or 'embedded emulator'))}"
        f" · observed via {escape(str(summary.get('observer', '')))}</p>",
    ]
    parts.append(_thresholds(summary))
    parts.append(_metrics(summary))
    parts.append(_campaigns(summary))
    parts.append(_charts(summary))
    parts.append(_causes(summary))
    parts.append(_failures(summary))
    parts.append(_violations(summary))
    parts.append(_counts(summary))
    parts.append("</body></html>\n")
    return "".join(parts)


def _thresholds(summary: Mapping[str, Any]) -> str:
    rows = []
    for t in summary.get("thresholds", []):
        mark = '<span class="ok">✓ pass</span>' if t.get("passed") else '<span class="bad">✗ fail</span>'
        note = escape(str(t.get("note") or ""))
        rows.append([f"<code>{escape(str(t.get('threshold')))}</code>", mark, _num(t.get("actual")), note])
    if not rows:
        return "<h2>Thresholds</h2><p>No thresholds: add <code>expect:</code> or pass --expect.</p>"
    return "<h2>Thresholds</h2>" + _table(["threshold", "result", "actual", "note"], rows, numeric_from=2)


def _metrics(summary: Mapping[str, Any]) -> str:
    metrics = summary.get("metrics", {})
    rows = [[f"<code>{escape(k)}</code>", _num(metrics.get(k))] for k in KEY_METRICS if k in metrics]
    extra = [[f"<code>{escape(k)}</code>", _num(v)] for k, v in metrics.items() if k not in KEY_METRICS]
    return "<h2>Metrics</h2>" + _table(["metric", "value"], rows + extra)


def _campaigns(summary: Mapping[str, Any]) -> str:
    campaigns = summary.get("campaigns", {})
    metrics = summary.get("metrics", {})
    if not campaigns:
        return ""
    cols = [
        ("truth_send", "ideal sends"),
        ("truth_suppressed", "ideal suppressed"),
        ("truth_unaddressable", "unaddressable"),
        ("delivered_send", "platform-rule sends"),
        ("entered", "entered"),
        ("sent", "sent"),
        ("exited", "exited"),
        ("violation", "sent after exit"),
        ("duplicate", "duplicates"),
        ("false", "false triggers"),
    ]
    rows = []
    for name, row in campaigns.items():
        recall = metrics.get(f"trigger_recall[{name}]")
        cells = [f"<b>{escape(name)}</b>"] + [_num(row.get(key, 0)) for key, _ in cols] + [_num(recall)]
        rows.append(cells)
    return "<h2>Campaign outcomes</h2>" + _table(
        ["campaign"] + [label for _, label in cols] + ["recall"], rows
    )


def _charts(summary: Mapping[str, Any]) -> str:
    charts = []
    funnel = summary.get("funnel", [])
    if funnel:
        charts.append(
            svg.hbar_chart(
                [str(s) for s, _ in funnel], [float(n) for _, n in funnel], title="Funnel (shoppers)"
            )
        )
    series = summary.get("series", {})
    truth = series.get("truth", [])
    if truth:
        start = int(series.get("start_ms", 0))
        hour = int(series.get("hour_ms", 3_600_000))
        labels = [
            datetime.fromtimestamp((start + i * hour) / 1000, UTC).strftime("%d %H:00")
            for i in range(len(truth))
        ]
        charts.append(
            svg.line_chart(
                [("events (event time)", truth), ("deliveries (arrival time)", series.get("arrivals", []))],
                title="Events over time (per hour, UTC)",
                x_labels=labels,
            )
        )
    hists = summary.get("histograms", {})
    latency = hists.get("latency_ms")
    if latency and any(latency.get("counts", [])):
        charts.append(
            svg.bar_chart(latency["labels"], latency["counts"], title="Arrival latency (arrival − timestamp)")
        )
    error = hists.get("send_time_error_ms")
    if error and any(error.get("counts", [])):
        charts.append(
            svg.bar_chart(
                error["labels"],
                error["counts"],
                title="Send-time error (observed − ideal)",
                color=svg.PALETTE[1],
            )
        )
    if not charts:
        return ""
    return '<h2>Charts</h2><div class="grid">' + "".join(charts) + "</div>"


def _causes(summary: Mapping[str, Any]) -> str:
    causes = summary.get("causes", {})
    rows = []
    for check, kinds in causes.items():
        for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
            rows.append([f"<code>{escape(check)}</code>", escape(kind), _num(count)])
    if not rows:
        return "<h2>Failures by cause</h2><p>No deviations found.</p>"
    return "<h2>Failures by cause</h2>" + _table(["check", "cause", "occurrences"], rows, numeric_from=2)


def _failures(summary: Mapping[str, Any], limit: int = 40) -> str:
    failures = [f for f in summary.get("failures", []) if f.get("severity") != "info"][:limit]
    if not failures:
        return ""
    items = []
    for f in failures:
        severity = escape(str(f.get("severity", "")))
        campaign = f" [{escape(str(f['campaign']))}]" if f.get("campaign") else ""
        count = f" ×{_num(f['count'])}" if (f.get("count") or 1) > 1 else ""
        items.append(
            f'<div class="failure {severity}"><b>{severity.upper()} {escape(str(f.get("check")))}{campaign}: '
            f"{escape(str(f.get('title')))}</b>{count}<br>{escape(str(f.get('message')))}<br>"
            f"cause: <i>{escape(str(f.get('cause')))}</i>"
            + (f"<br><code>{escape(str(f['reproduce']))}</code>" if f.get("reproduce") else "")
            + "</div>"
        )
    return f"<h2>Top failures</h2>{''.join(items)}"


def _violations(summary: Mapping[str, Any]) -> str:
    rows = [
        [
            escape(str(v.get("violationType"))),
            escape(str(v.get("eventName"))),
            f"<code>{escape(str(v.get('violationField')))}</code>",
            escape(str(v.get("violationDescription"))),
            escape(str(v.get("cause"))),
            _num(v.get("count")),
        ]
        for v in summary.get("violations", [])
    ]
    if not rows:
        return ""
    return "<h2>Tracking-plan violations</h2>" + _table(
        ["type", "event", "field", "description", "cause", "events"], rows, numeric_from=5
    )


def _counts(summary: Mapping[str, Any]) -> str:
    counts = dict(summary.get("counts", {}))
    ledger = counts.pop("ledger", {}) or {}
    rows = [[escape(str(k)), _num(v)] for k, v in counts.items()]
    rows += [[f"ledger: {escape(str(k))}", _num(v)] for k, v in ledger.items()]
    rows += [[f"fault: {escape(str(k))}", _num(v)] for k, v in summary.get("faults", {}).items()]
    rows += [[f"time: {escape(str(k))} (s)", _num(v)] for k, v in summary.get("timings_s", {}).items()]
    return "<h2>Counts and timings</h2>" + _table(["what", "value"], rows)


def write_html(run_dir: Path, summary: Mapping[str, Any]) -> Path:
    """Write ``report.html`` next to ``summary.json``."""
    path = run_dir / "report.html"
    path.write_text(render_html(summary), encoding="utf-8")
    return path
