"""shopsim: realistic anonymous-then-identified shopper event streams, load tests and end-to-end checks.

The public API is small on purpose::

    from generator import load_scenario, simulate, run

    scenario = load_scenario("scenarios/d2c_cart_recovery.yaml")   # validated; ScenarioError with file:line
    for event in simulate(scenario, seed=42, shoppers=100):          # the truth stream, deterministic
        ...
    result = run("scenarios/d2c_cart_recovery.yaml", shoppers=500)  # end to end on the embedded emulator
    assert result.suppression_violations == 0

Everything else (wire encoders, the delivery plan, the emulator, checks) is importable from its
module but may change between releases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from generator.pipeline import RunResult
    from generator.scenario.load import load_scenario
    from generator.simulate import simulate

__all__ = ["RunResult", "load_scenario", "run", "simulate"]


def __getattr__(name: str) -> Any:
    # Lazy: `import generator` must stay cheap (the CLI, locustfiles and the emulator import it,
    # and the run pipeline pulls in rich and the whole engine).
    if name == "load_scenario":
        from generator.scenario.load import load_scenario

        return load_scenario
    if name == "simulate":
        from generator.simulate import simulate

        return simulate
    if name in ("run", "RunResult"):
        from generator import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'generator' has no attribute {name!r}")


def run(*args: Any, **kwargs: Any) -> RunResult:
    """Run a scenario end to end and return its result (see :func:`generator.pipeline.run`)."""
    from generator.pipeline import run as _run

    return _run(*args, **kwargs)
