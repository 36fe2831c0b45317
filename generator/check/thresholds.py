"""Thresholds → verdict: the scenario's ``expect:`` plus ``--expect 'metric op value'`` flags.

A threshold is ``metric[scope] op number`` (parsed by :class:`~generator.scenario.model.Threshold`).
It fails when its metric is out of range, when the metric could not be measured in this run
(e.g. ``ingestion_loss`` without an event export), or when the scope names no campaign.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import ValidationError

from generator.check.model import ThresholdResult
from generator.errors import ScenarioError
from generator.scenario.model import Threshold
from generator.scenario.rules import scope_problem


def parse_thresholds(
    texts: Iterable[str], *, flag: str = "--expect", campaigns: Iterable[str] | None = None
) -> list[Threshold]:
    """Parse command-line thresholds; a bad one raises :class:`ScenarioError` naming the flag and
    text. With ``campaigns`` (the scenario's), a ``[scope]`` must name one of them, as in the
    scenario's own ``expect:``, so a typo fails before the run rather than after it."""
    out: list[Threshold] = []
    names = None if campaigns is None else list(campaigns)
    for text in texts:
        try:
            threshold = Threshold.model_validate(text)
        except ValidationError as exc:
            message = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
            raise ScenarioError(f"{flag} {text!r}: {message}") from None
        wrong = None if names is None else scope_problem(threshold, names)
        if wrong is not None:
            raise ScenarioError(f"{flag} {text!r}: {wrong[0]} ({wrong[1]})")
        out.append(threshold)
    return out


def evaluate(
    thresholds: Iterable[Threshold],
    metrics: Mapping[str, float | None],
    notes: Mapping[str, str] | None = None,
) -> list[ThresholdResult]:
    """Evaluate each threshold against ``metrics`` (keys ``name`` or ``name[scope]``); ``notes``
    (metric key → caveat, :attr:`CheckResult.notes`) are carried onto the results."""
    results: list[ThresholdResult] = []
    for threshold in thresholds:
        key = f"{threshold.metric}[{threshold.scope}]" if threshold.scope else threshold.metric
        if key not in metrics:
            scoped = sorted(
                k.split("[", 1)[1].rstrip("]") for k in metrics if k.startswith(threshold.metric + "[")
            )
            note = (
                f"no scope {threshold.scope!r} for {threshold.metric} (known: {', '.join(scoped) or 'none'})"
                if threshold.scope
                else f"{threshold.metric} was not measured in this run"
            )
            results.append(
                ThresholdResult(threshold=str(threshold), metric=key, actual=None, passed=False, note=note)
            )
            continue
        actual = metrics[key]
        if actual is None:
            results.append(
                ThresholdResult(
                    threshold=str(threshold),
                    metric=key,
                    actual=None,
                    passed=False,
                    note=f"{key} cannot be measured with this target/observer",
                )
            )
            continue
        results.append(
            ThresholdResult(
                threshold=str(threshold),
                metric=key,
                actual=actual,
                passed=threshold.holds(actual),
                note=(notes or {}).get(key, ""),
            )
        )
    return results
