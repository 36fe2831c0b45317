"""The public API is exactly what __all__ says, sorted, and each name resolves."""

import ast
from pathlib import Path

import generator


def test_all_is_sorted_and_exact():
    assert generator.__all__ == sorted(generator.__all__)
    assert set(generator.__all__) == {"RunResult", "load_scenario", "run", "simulate"}


def test_simulate_stays_the_function_after_submodule_imports():
    import importlib

    importlib.import_module("generator.simulate.journey")
    assert generator.simulate.__module__ == "generator.simulate"
    assert callable(generator.simulate) and not isinstance(generator.simulate, type(generator))


def test_every_public_name_resolves():
    for name in generator.__all__:
        assert callable(getattr(generator, name)), name


def test_emulator_never_imports_the_answers():
    """DESIGN.md: the emulator sees only HTTP, never the simulator, faults, encoders or expectations."""
    forbidden = (
        "generator.simulate",
        "generator.faults",
        "generator.wire",
        "generator.expect",
        "generator.deliver",
        "generator.check",
        "generator.observe",
        "generator.pipeline",
    )
    for path in Path(generator.__file__).parent.joinpath("emulator").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"


def test_only_load_imports_locust():
    root = Path(generator.__file__).parent
    for path in root.rglob("*.py"):
        if path.parent.name == "load":
            continue
        text = path.read_text()
        assert "import locust" not in text and "from locust" not in text, path
