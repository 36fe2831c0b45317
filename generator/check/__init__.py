"""Checks: expectations × observations → metrics, attributed failures and a verdict.

Public surface::

    EvidenceBuilder(scenario)         feed lives/deliveries while the run streams → Evidence
    Observed.build(observations, ...) index what the target did
    CheckContext(evidence, observed, scenario_path=..., seed=..., ledger_path=...)
    run_checks(ctx) -> CheckResult    every registered check; crashes become failures
    evaluate(thresholds, metrics)     → ThresholdResults (the verdict)
    @check                            register a new check ``fn(ctx, out) -> None``
"""

from __future__ import annotations

from generator.check.context import CheckContext
from generator.check.evidence import Evidence, EvidenceBuilder
from generator.check.model import CheckOutcome, CheckResult, Failure, Severity, ThresholdResult
from generator.check.observed import Observed
from generator.check.registry import Collector, check, registered, run_checks
from generator.check.thresholds import evaluate, parse_thresholds

__all__ = [
    "CheckContext",
    "CheckOutcome",
    "CheckResult",
    "Collector",
    "Evidence",
    "EvidenceBuilder",
    "Failure",
    "Observed",
    "Severity",
    "ThresholdResult",
    "check",
    "evaluate",
    "parse_thresholds",
    "registered",
    "run_checks",
]
