"""The exception tree of shopsim.

::

    ShopsimError                 every error a user can cause or meet; the CLI prints it and exits 2
    ├── ScenarioError            a scenario file is invalid; carries every problem found (file:line:col)
    ├── DeliveryError            events could not be delivered as configured (bad credentials file, ...)
    ├── TargetError              the target may not be used (non-loopback, production host)
    └── CheckFailed              the final verdict of a run was "fail" (exit 1, not 2)

Input errors say what to fix. Check findings are values in a CheckResult, not exceptions;
``CheckFailed`` only carries the verdict. Exceptions never carry credentials.
"""

from __future__ import annotations

from dataclasses import dataclass

COMMAND_LINE = "<command line>"
"""The ``file`` of a :class:`Problem` in a value given on the command line (``--seed``, ``--expect``)."""


class ShopsimError(Exception):
    """Root of every error shopsim raises on purpose."""

    exit_code: int = 2


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a scenario, located as precisely as the input allows."""

    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str = ""

    def render(self) -> str:
        # line 0 = not in a file's text (file not found, a command-line value): no position.
        where = f"{self.file}:{self.line}:{self.column}" if self.line > 0 else self.file
        key = f" {self.path}:" if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}:{key} {self.message}{hint}"


class ScenarioError(ShopsimError):
    """A scenario file (or a value given on the command line for it) is invalid."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(file=COMMAND_LINE, line=0, column=0, path="", message=problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = problems
        super().__init__(self.render())

    def render(self) -> str:
        """One line for one problem (``invalid scenario: file:line:col: path: message``, or
        ``invalid command line: ...`` for a flag's value), else a head line and one per problem."""
        count = len(self.problems)
        if count == 1:
            (problem,) = self.problems
            if problem.file == COMMAND_LINE:
                return "invalid command line: " + problem.render().removeprefix(COMMAND_LINE + ": ")
            return "invalid scenario: " + problem.render()
        return f"invalid scenario ({count} problems):\n" + "\n".join("  " + p.render() for p in self.problems)


class DeliveryError(ShopsimError):
    """Events could not be delivered as configured."""


class TargetError(ShopsimError):
    """The target may not be used as given (safety rules, unreachable, bad credentials)."""


class CheckFailed(ShopsimError):
    """The run completed but at least one threshold failed."""

    exit_code = 1
