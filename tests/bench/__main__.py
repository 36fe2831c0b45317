"""Run every benchmark module (or those named on the command line) and write results/bench/*.json."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

import orjson


def main(argv: list[str]) -> int:
    out_dir = Path("results/bench")
    out_dir.mkdir(parents=True, exist_ok=True)
    package = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(package)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    failed = 0
    for name in names:
        module = importlib.import_module(f"tests.bench.{name}")
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            result = module.run(out_dir)
        except Exception as exc:  # one broken benchmark must not hide the others
            failed += 1
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)
            continue
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode(), flush=True)
        print(f"   ({time.perf_counter() - started:.1f}s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
