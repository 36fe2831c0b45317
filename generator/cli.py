"""The ``shopsim`` command line: a thin argument layer over the library.

Each subcommand lives in ``generator/commands/<name>.py`` and exposes::

    HELP: str                                      # one line for ``shopsim --help``
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int       # the exit code

Errors: a :class:`~generator.errors.ShopsimError` is printed as one readable block on stderr
and exits with its ``exit_code`` (2 for input errors, 1 for a failed verdict); argparse usage
errors also exit 2, and so does an ``OSError`` that escapes a command: a path or a port the user
named (a directory where a file goes, no permission, a port in use) is the user's to fix, and the
error names it. Anything else is an internal error: one line asking for a report, exit 3, with the
traceback only under ``SHOPSIM_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from generator.errors import ShopsimError

COMMANDS = ("validate", "schema", "generate", "replay", "send", "serve", "run", "observe", "load", "report")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with one subparser per available command."""
    parser = argparse.ArgumentParser(
        prog="shopsim",
        description=(
            "Realistic shopper event streams for load-testing and end-to-end checking retention pipelines."
        ),
    )
    parser.add_argument("--version", action="version", version=f"shopsim {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"generator.commands.{name}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shopsim`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args._run(args)
        return code
    except ShopsimError as exc:
        print(f"shopsim: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("shopsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a traceback.
        sys.stderr.close()
        return 0
    except OSError as exc:
        print(f"shopsim: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # an internal error, not the user's fault
        if os.environ.get("SHOPSIM_DEBUG"):
            traceback.print_exc()
        print(
            f"shopsim: internal error: {type(exc).__name__}: {exc}\n"
            "  This is a bug in shopsim; please report it (rerun with SHOPSIM_DEBUG=1 for the traceback).",
            file=sys.stderr,
        )
        return 3


def describe_os_error(exc: OSError) -> str:
    """``path: reason`` (``a -> b: reason`` for a rename), or the reason alone."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return reason
    where = str(exc.filename) if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    return f"{where}: {reason}"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shopsim")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
