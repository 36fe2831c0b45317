"""Argument types shared by the subcommands, so every flag is checked and worded the same way.

Each raises ``argparse.ArgumentTypeError``; argparse turns that into
``shopsim CMD: error: argument --flag: <message>`` and exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from generator.durations import parse_duration
from generator.scenario.model import MAX_SHOPPERS  # the model's bound: one number for file and flag

__all__ = [
    "MAX_SHOPPERS",
    "bounded_int",
    "duration_ms",
    "duration_s",
    "duration_text",
    "non_negative_int",
    "port",
    "positive_duration_s",
    "positive_float",
    "positive_int",
    "seed",
    "shopper_count",
]


def shopper_count(text: str) -> int:
    """``--shoppers``: 1 to :data:`MAX_SHOPPERS`."""
    return bounded_int(1, MAX_SHOPPERS)(text)


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """A whole number in ``low..high`` (counts that start processes or loops: ``--workers``)."""

    def parse(text: str) -> int:
        value = _int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, got {value:,}")
        return value

    return parse


def duration_text(text: str) -> str:
    """A duration as scenarios write it, checked here and passed on as written (to Locust)."""
    duration_ms(text)
    return text


def positive_int(text: str) -> int:
    """A whole number ≥ 1 (``--shoppers``, ``--concurrency``, ``--users``)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number ≥ 0 (``--workers 0`` = one process, ``--retries 0``)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def seed(text: str) -> int:
    """A root seed: 0 ≤ seed < 2**63 (what the scenario model accepts)."""
    value = _int(text)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**63 - 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (``--speed``, ``--rps``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def duration_ms(text: str) -> int:
    """A duration as scenarios write it (``90s``, ``1h30m``) in milliseconds."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration_s(text: str) -> float:
    """A duration as scenarios write it, in seconds."""
    return duration_ms(text) / 1000.0


def positive_duration_s(text: str) -> float:
    """A duration > 0, in seconds (``--duration``: 0 would mean "never stop" by accident)."""
    value = duration_s(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than 0, got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port, 0 meaning "pick a free one"."""
    value = _int(text, what="a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {value}")
    return value


def _int(text: str, *, what: str = "a whole number") -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
