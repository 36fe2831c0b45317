"""How the reports show a run's numbers: the headline metrics and their order, and values for people."""

from __future__ import annotations

from typing import Any

KEY_METRICS = (
    "suppression_violations",
    "trigger_recall",
    "delivered_recall",
    "false_triggers",
    "duplicate_entries",
    "unaddressable_intent",
    "merge_completeness",
    "send_time_error_p50_ms",
    "send_time_error_p95_ms",
    "tracking_plan_violations",
    "ingestion_loss",
)
"""The metrics every report shows first, in this order (the rest follow)."""


def format_value(value: Any) -> str:
    """A metric value for people: ``n/a`` when not measurable, whole numbers with thousands
    separators, others to 4 significant digits; anything else as its text (unescaped)."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{int(value):,}" if value.is_integer() else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
