"""The check registry: small functions registered with :func:`check`, all run by :func:`run_checks`.

A check is ``fn(ctx: CheckContext, out: Collector) -> None``: it reads the evidence and the
observations from ``ctx`` and reports metrics (``out.metric``), failures (``out.fail``) and
report details (``out.detail``). Every registered check runs; the runner never stops at the
first failure, and a check that raises is reported as that check's failure ("a check bug must
not crash the run", schemathesis) while the others still run.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from generator.check.model import CheckOutcome, CheckResult, Failure, Severity

if TYPE_CHECKING:
    from generator.check.context import CheckContext

MAX_STORED_PER_CHECK = 2000
"""Failures stored per check (all are counted); keeps memory flat when a fault hits every shopper."""


class Collector:
    """What one check reports into; bounded storage, exact counts."""

    def __init__(self, name: str, result: CheckResult, *, reproduce: Callable[[int | None], str]) -> None:
        self.name = name
        self._result = result
        self._reproduce = reproduce
        self._stored = 0
        self._keys: set[tuple[str, str, str, int, str, str]] = set()
        self.count = 0

    def metric(self, name: str, value: float | None, *, scope: str | None = None, note: str = "") -> None:
        """Record a metric (``scope`` = campaign for per-campaign metrics; ``note`` = a caveat the
        verdict shows next to any threshold on it)."""
        key = f"{name}[{scope}]" if scope else name
        self._result.metrics[key] = None if value is None else float(value)
        if note:
            self._result.notes[key] = note

    def fail(self, failure: Failure) -> None:
        """Record a failure (deduplicated by its key; the reproduce line is filled in here)."""
        if failure.key in self._keys:
            return
        self._keys.add(failure.key)
        self.count += failure.count
        counts = self._result.causes.setdefault(self.name, {})
        counts[failure.cause_kind] = counts.get(failure.cause_kind, 0) + failure.count
        if self._stored >= MAX_STORED_PER_CHECK:
            return
        self._stored += 1
        if not failure.reproduce and failure.shopper is not None:
            failure = _with(failure, reproduce=self._reproduce(failure.shopper))
        self._result.failures.append(failure)

    def detail(self, key: str, value: Any) -> None:
        """Attach data for the report (tables, histograms) under ``key``."""
        self._result.details[key] = value


def _with(failure: Failure, **changes: Any) -> Failure:
    from dataclasses import replace

    return replace(failure, **changes)


CheckFn = Callable[["CheckContext", Collector], None]

_REGISTRY: dict[str, CheckFn] = {}


def check(fn: CheckFn) -> CheckFn:
    """Register ``fn`` as a check named after the function."""
    _REGISTRY[fn.__name__] = fn
    return fn


def registered() -> tuple[str, ...]:
    """Names of all registered checks, in registration order."""
    _load_builtin()
    return tuple(_REGISTRY)


def _load_builtin() -> None:
    import generator.check.checks  # noqa: F401  (registers on import)


def run_checks(ctx: CheckContext, *, names: Iterable[str] | None = None) -> CheckResult:
    """Run every registered check (or those named) and collect one :class:`CheckResult`."""
    _load_builtin()
    selected = list(_REGISTRY) if names is None else list(names)
    unknown = [n for n in selected if n not in _REGISTRY]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {', '.join(_REGISTRY)}")
    result = CheckResult()
    for name in selected:
        out = Collector(name, result, reproduce=ctx.reproduce)
        started = time.perf_counter()
        error: str | None = None
        try:
            _REGISTRY[name](ctx, out)
        except Exception as exc:  # a check bug must not crash the run; report it as that check's failure
            error = f"{type(exc).__name__}: {exc}"
            out.fail(
                Failure(
                    check=name,
                    severity=Severity.CRITICAL,
                    title="check crashed",
                    message=f"{error}\n{traceback.format_exc(limit=3)}",
                    cause="internal error in the check (please report)",
                    cause_kind="check_error",
                )
            )
        result.failure_counts[name] = out.count
        result.checks.append(
            CheckOutcome(name=name, failures=out.count, seconds=time.perf_counter() - started, error=error)
        )
    # Attribution as a metric: deviations that no fault tag explains (platform or pipeline bugs).
    result.metrics["unexplained"] = float(
        sum(kinds.get("unexplained", 0) for kinds in result.causes.values())
    )
    result.failures.sort(key=lambda f: f.sort_key)
    return result
