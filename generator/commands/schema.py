"""``shopsim schema [-o FILE]``: print the JSON Schema of scenario files, for editors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from generator.errors import ShopsimError
from generator.scenario.schema import schema_json

HELP = "Print the JSON Schema of scenario files (for editor validation and completion)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``shopsim schema``."""
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the schema to FILE instead of standard output",
    )


def run(args: argparse.Namespace) -> int:
    """Write the schema; exit 0."""
    text = schema_json()
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ShopsimError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote the scenario schema to {path}", file=sys.stderr)
    return 0
