"""pytest plugin for staging suites (registered as the ``shopsim`` pytest11 entry point).

The ``shopsim_run`` fixture is a callable that runs a scenario end to end and returns a
:class:`~generator.pipeline.RunResult`::

    def test_cart_recovery(shopsim_run):
        result = shopsim_run("scenarios/d2c_cart_recovery.yaml", shoppers=500, seed=7)
        assert result.suppression_violations == 0
        assert result.trigger_recall("cart_recovery") >= 0.95

By default each call starts the embedded emulator (virtual clock; seconds). Against a staging
workspace: ``pytest --shopsim-target https://... --shopsim-api track-v1`` (credentials from the
``CIO_*`` environment variables; the run waits the longest campaign delay + grace). When a test
that called ``shopsim_run`` fails, its report gains a "shopsim" section with the failed
thresholds and the worst attributed failures, each with its ``reproduce with:`` line.

Options: ``--shopsim-target URL``, ``--shopsim-api pipelines|track-v1|track-v2|browser``,
``--shopsim-results DIR`` (default: a pytest temporary directory), ``--shopsim-grace SECONDS``,
``--shopsim-allow-production``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from generator.pipeline import RunResult

_RESULTS = pytest.StashKey[list["RunResult"]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shopsim", "shopsim end-to-end runs (shopsim_run fixture)")
    group.addoption("--shopsim-target", default=None, help="ingestion endpoint (default: embedded emulator)")
    group.addoption(
        "--shopsim-api",
        default="pipelines",
        choices=("pipelines", "track-v1", "track-v2", "browser"),
        help="wire API for --shopsim-target (default: pipelines)",
    )
    group.addoption("--shopsim-results", default=None, help="keep run directories here (default: pytest tmp)")
    group.addoption(
        "--shopsim-grace", type=float, default=60.0, help="seconds to wait after the longest delay"
    )
    group.addoption(
        "--shopsim-allow-production", action="store_true", help="allow a Customer.io production host"
    )


@pytest.fixture
def shopsim_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., RunResult]:
    """Run a scenario end to end: ``shopsim_run(path, seed=..., shoppers=..., expect=[...]) -> RunResult``."""
    config = request.config
    target: str | None = config.getoption("shopsim_target")
    api: str = config.getoption("shopsim_api")
    results_opt: str | None = config.getoption("shopsim_results")
    grace: float = config.getoption("shopsim_grace")
    allow_production: bool = config.getoption("shopsim_allow_production")
    done = request.node.stash.setdefault(_RESULTS, [])

    def runner(
        scenario: str | Path,
        *,
        seed: int | None = None,
        shoppers: int | None = None,
        expect: Sequence[str] = (),
        **options: Any,
    ) -> RunResult:
        from generator.pipeline import run

        results = Path(results_opt) if results_opt else tmp_path_factory.mktemp("shopsim")
        kwargs: dict[str, Any] = {
            "seed": seed,
            "shoppers": shoppers,
            "expect": expect,
            "results": results,
            "quiet": True,
        }
        if target is not None:
            kwargs.update(target=target, api=api, grace_s=grace, allow_production=allow_production)
        kwargs.update(options)
        result = run(scenario, **kwargs)
        done.append(result)
        return result

    return runner


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    runs = item.stash.get(_RESULTS, [])
    for result in runs:
        text = result.explain(limit=5) or "no failures recorded by the checks"
        report.sections.append(
            (
                f"shopsim {result.scenario.name} (seed {result.seed}, {result.verdict})",
                f"{text}\nrun: {result.run_dir}",
            )
        )
