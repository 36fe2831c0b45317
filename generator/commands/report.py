"""``shopsim report RUN_DIR``: re-render report.html and junit.xml (and the terminal table) from summary.json.

Useful after upgrading shopsim or to print a finished run's summary again; exit 0 when the
run passed, 1 when it failed, 2 when RUN_DIR has no readable summary.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Re-render a finished run's report.html, junit.xml and summary table from its summary.json."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a results/<run-id> directory")
    parser.add_argument("--quiet", "-q", action="store_true", help="write the files, print nothing")


def run(args: argparse.Namespace) -> int:
    import orjson

    from generator.errors import ShopsimError
    from generator.report import print_summary, read_summary
    from generator.report.html import write_html
    from generator.report.junit import write_junit

    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        raise ShopsimError(f"{run_dir}: not a directory; give a results/<run-id> directory")
    try:
        summary = read_summary(run_dir)
    except FileNotFoundError:
        raise ShopsimError(f"{run_dir}: no summary.json here; give a results/<run-id> directory") from None
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise ShopsimError(f"{run_dir / 'summary.json'}: not a readable summary ({exc})") from None
    try:
        write_html(run_dir, summary)
        write_junit(run_dir, summary)
        if not args.quiet:
            print_summary(summary, run_dir=str(run_dir))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        # A summary.json edited by hand (a field of the wrong type): the user's file, not a bug.
        raise ShopsimError(
            f"{run_dir / 'summary.json'}: not a summary shopsim wrote ({type(exc).__name__}: {exc})"
        ) from None
    return 0 if summary.get("verdict") == "pass" else 1
