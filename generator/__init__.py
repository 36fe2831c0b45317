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

# Eager on purpose: the subpackage `generator.simulate` shares its name with the public
# function. Importing the subpackage binds the *module* to `generator.simulate`; rebinding the
# function right after (here, once) keeps `generator.simulate` the function for good, because
# later imports of `generator.simulate.*` find the package in sys.modules and never rebind it.
from generator.scenario.load import load_scenario
from generator.simulate import simulate

if TYPE_CHECKING:
    from generator.pipeline import RunResult

__all__ = ["RunResult", "load_scenario", "run", "simulate"]


def __getattr__(name: str) -> Any:
    # `run` pulls in rich and the whole engine; keep `import generator` light for the emulator
    # and the locustfiles.
    if name == "RunResult":
        from generator.pipeline import RunResult

        return RunResult
    raise AttributeError(f"module 'generator' has no attribute {name!r}")


def run(*args: Any, **kwargs: Any) -> RunResult:
    """Run a scenario end to end and return its result (see :func:`generator.pipeline.run`)."""
    from generator.pipeline import run as _run

    return _run(*args, **kwargs)
