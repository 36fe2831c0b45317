"""Check results as values: Failure, Severity, ThresholdResult, CheckResult.

Findings are data, not exceptions (STYLE.md rule 5): a run with a thousand suppression
violations still completes, counts them by attributed cause and lets thresholds decide the
verdict. ``CheckFailed`` only carries that verdict to the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    """How bad a failure is; ordered so reports sort the worst first."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """One deviation found by a check, attributed to the faults that explain it.

    ``cause`` is human text ("late Order Completed (arrived 74 min after purchase; delay 60 min)")
    and ``cause_kind`` its stable category (``latency``, ``double_fire``, ``drop``,
    ``schema_drift``, ``name_drift``, ``never_identified``, ``merge_window``, ``stale``,
    ``unexplained``, ...). ``reproduce`` is the command that replays the shopper.
    """

    check: str
    severity: Severity
    title: str
    message: str
    cause: str = "unexplained"
    cause_kind: str = "unexplained"
    campaign: str = ""
    person: str = ""
    shopper: int | None = None
    event_id: str = ""
    reproduce: str = ""
    count: int = 1
    """How many occurrences this failure stands for (aggregated kinds such as tracking-plan violations)."""

    @property
    def key(self) -> tuple[str, str, str, int, str, str]:
        """Stable dedup key: the same deviation found twice is one failure."""
        return (
            self.check,
            self.campaign,
            self.title,
            -1 if self.shopper is None else self.shopper,
            self.event_id,
            self.person,
        )

    @property
    def sort_key(self) -> tuple[int, str, str, int, str]:
        """Worst first, then by check, campaign, shopper and event: deterministic report order."""
        return (
            -int(self.severity),
            self.check,
            self.campaign,
            -1 if self.shopper is None else self.shopper,
            self.event_id,
        )

    def render(self) -> str:
        """Multi-line text for terminals and test output; ends with the reproduce line."""
        where = f" [{self.campaign}]" if self.campaign else ""
        lines = [f"{self.severity.label.upper()} {self.check}{where}: {self.title}", f"  {self.message}"]
        lines.append(f"  cause: {self.cause}")
        if self.reproduce:
            lines.append(f"  {self.reproduce}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity.label,
            "title": self.title,
            "message": self.message,
            "cause": self.cause,
            "cause_kind": self.cause_kind,
            "campaign": self.campaign,
            "person": self.person,
            "shopper": self.shopper,
            "event_id": self.event_id,
            "count": self.count,
            "reproduce": self.reproduce,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOutcome:
    """How one registered check ran: its failure count, or the error that crashed it."""

    name: str
    failures: int
    seconds: float
    error: str | None = None

    @property
    def crashed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdResult:
    """One threshold evaluated against the measured metrics."""

    threshold: str
    metric: str
    actual: float | None
    passed: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "metric": self.metric,
            "actual": self.actual,
            "passed": self.passed,
            "note": self.note,
        }


@dataclass(slots=True, kw_only=True)
class CheckResult:
    """Everything the checks found: metrics, failures (sorted, deduplicated), verdict inputs, report details.

    ``metrics`` keys are metric names, scoped ones as ``name[campaign]`` (``None`` = not measurable
    in this run). ``failure_counts`` counts every occurrence per check, also those beyond the
    per-check cap on stored examples; ``causes`` counts them per check and cause kind.
    """

    metrics: dict[str, float | None] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    failure_counts: dict[str, int] = field(default_factory=dict)
    causes: dict[str, dict[str, int]] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)
    thresholds: list[ThresholdResult] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    """Metric key → why its value needs reading with care (e.g. a recall of 0 out of 0)."""

    @property
    def passed(self) -> bool:
        """All thresholds hold and no check crashed."""
        return all(t.passed for t in self.thresholds) and not any(c.crashed for c in self.checks)

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    def failures_for(self, check: str) -> list[Failure]:
        return [f for f in self.failures if f.check == check]
