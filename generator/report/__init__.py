"""Reports of a run in ``results/<run-id>/``: summary.json, report.html, junit.xml, data, terminal.

:func:`write_reports` writes the three report files from one summary dict; ``shopsim report
RUN_DIR`` re-renders them from ``summary.json`` alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from generator.report.html import render_html, write_html
from generator.report.junit import render_junit, write_junit
from generator.report.summary import build_summary, read_summary, write_summary
from generator.report.terminal import print_summary

__all__ = [
    "build_summary",
    "print_summary",
    "read_summary",
    "render_html",
    "render_junit",
    "write_reports",
]


def write_reports(run_dir: Path, summary: Mapping[str, Any]) -> dict[str, Path]:
    """Write summary.json, report.html and junit.xml; returns their paths by name."""
    return {
        "summary": write_summary(run_dir, summary),
        "html": write_html(run_dir, summary),
        "junit": write_junit(run_dir, summary),
    }
