"""Benchmarks (`make bench`): each ``bench_*.py`` module exposes ``run(out_dir: Path) -> dict``
and writes ``out_dir/<name>.json``. They measure; they never assert timings."""
