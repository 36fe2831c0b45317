"""Tiny inline-SVG charts for the self-contained HTML report (no matplotlib, no CDN, no URLs).

Each function returns one ``<svg>`` element as text, sized by ``width``/``height`` in CSS px,
with a ``<title>`` per bar or point so hovering shows exact values. All text is escaped. Inline
SVG in HTML5 needs no ``xmlns`` attribute, so the report contains no URL at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#3b6fb6", "#e07b39", "#4a9c5d", "#b8423c", "#7d5ba6", "#8c8c8c")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = step * magnitude
        if top >= value:
            return float(top)
    return float(value)


def _fmt(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.2f}"


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    width: int = 640,
    height: int = 220,
    color: str = PALETTE[0],
    unit: str = "",
) -> str:
    """Vertical bars with category labels underneath (histograms with labelled bins)."""
    left, right, top, bottom = 48, 12, 28, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max(values, default=0))
    n = max(len(values), 1)
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.78)
    parts = [_open(width, height, title), _axes(left, top, plot_w, plot_h, peak)]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = 0 if peak == 0 else plot_h * value / peak
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{escape(label)}: {escape(_fmt(value))}{escape(unit)}</title></rect>"
        )
        if n <= 16:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(
    labels: Sequence[str], values: Sequence[float], *, title: str, width: int = 640, color: str = PALETTE[2]
) -> str:
    """Horizontal bars with the label on the left and the value (and share of the first) on the right."""
    row = 26
    left, right, top = 170, 110, 28
    height = top + row * max(len(values), 1) + 8
    plot_w = width - left - right
    peak = max(values, default=0) or 1
    first = values[0] if values else 0
    parts = [_open(width, height, title)]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row
        w = plot_w * value / peak
        share = f" ({value / first:.0%})" if first and i else ""
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" font-size="12" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{color}">'
            f"<title>{escape(label)}: {escape(_fmt(value))}</title></rect>"
            f'<text x="{left + w + 6:.1f}" y="{y + 16}" font-size="12">'
            f"{escape(_fmt(value))}{escape(share)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    x_labels: Sequence[str] = (),
    width: int = 640,
    height: int = 220,
) -> str:
    """One polyline per named series over shared x positions, with a legend."""
    left, right, top, bottom = 48, 12, 28, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    longest = max((len(v) for _, v in series), default=0)
    peak = _nice_max(max((max(v, default=0) for _, v in series), default=0))
    parts = [_open(width, height, title), _axes(left, top, plot_w, plot_h, peak)]
    step = plot_w / max(longest - 1, 1)
    for index, (name, values) in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        points = " ".join(
            f"{left + i * step:.1f},{top + plot_h - (plot_h * v / peak if peak else 0):.1f}"
            for i, v in enumerate(values)
        )
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{points}"/>')
        lx = left + 8 + index * 150
        parts.append(
            f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{height - 5}" font-size="11">{escape(name)}</text>'
        )
    if x_labels and longest:
        every = max(1, longest // 8)
        for i in range(0, min(longest, len(x_labels)), every):
            parts.append(
                f'<text x="{left + i * step:.1f}" y="{top + plot_h + 14}" '
                'font-size="10" text-anchor="middle">'
                f"{escape(x_labels[i])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<text x="4" y="16" font-size="13" font-weight="bold">{escape(title)}</text>'
    )


def _axes(left: int, top: int, plot_w: float, plot_h: float, peak: float) -> str:
    out = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#999"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h - plot_h * frac
        out.append(
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{escape(_fmt(peak * frac))}</text>"
        )
        if frac:
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
    return "".join(out)
