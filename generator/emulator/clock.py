"""The emulator's two clocks (DESIGN.md, "Two clocks").

- :class:`VirtualClock`: "now" is the arrival time each request carries in
  ``X-Shopsim-Clock`` (epoch ms) or what ``POST /_shopsim/clock`` sets; it never goes
  backwards. Before the first value arrives, the first request without one starts the clock at
  the wall time. Due messages fire when the clock passes them, before the request is processed.
- :class:`WallClock`: "now" is the wall time; a scheduler greenlet fires due messages.

A batch request may carry one arrival time per item: ``X-Shopsim-Arrivals`` holds
comma-separated non-negative ms offsets from ``X-Shopsim-Clock``, one per item in body order,
non-decreasing. The virtual clock then processes item ``i`` at ``clock + offset[i]`` (firing
what is due first), exactly as if every item had come in its own request. Like the clock
header it is harness metadata: the arrival time is what a real workspace observes by itself.

The clock value is persisted (``meta.clock_ms``) so a restarted emulator continues from it.
"""

from __future__ import annotations

import time
from typing import Literal

CLOCK_HEADER = "x-shopsim-clock"
ARRIVALS_HEADER = "x-shopsim-arrivals"
MAX_ARRIVAL_OFFSET_MS = 10**12
"""Offsets beyond ~31 years are certainly a bug in the sender, not a batch window."""
MAX_CLOCK_MS = 10**16 - 1
"""The largest |clock| in epoch ms: what 16 characters of ``X-Shopsim-Clock`` can carry. Larger
values (``POST /_shopsim/clock`` takes JSON integers up to 2**64) would overflow SQLite's
64-bit integers once an offset or a campaign delay is added."""

ClockMode = Literal["virtual", "wall"]


class ClockError(ValueError):
    """A clock value that cannot be used (not an integer, or before the current time)."""


def parse_clock_header(value: str | None) -> int | None:
    """The epoch-ms value of ``X-Shopsim-Clock`` (None when absent); ClockError when malformed."""
    if value is None or value == "":
        return None
    text = value.strip()
    digits = text[1:] if text.startswith("-") else text
    # ASCII only: str.isdigit() is True for '²', which int() rejects (that was a 500)
    if not (digits.isascii() and digits.isdigit()) or len(text) > 16:
        raise ClockError(f"X-Shopsim-Clock must be an integer epoch-ms value, got {text[:32]!r}")
    return int(text)


def parse_arrivals_header(value: str | None) -> tuple[int, ...] | None:
    """The per-item offsets of ``X-Shopsim-Arrivals`` (None when absent); ClockError when malformed.

    Offsets are non-negative integers in body order and never decrease (items are processed in
    order, and the clock never goes backwards).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    offsets: list[int] = []
    previous = 0
    for index, part in enumerate(text.split(",")):
        token = part.strip()
        if not token.isascii() or not token.isdigit() or len(token) > 13:
            raise ClockError(
                f"X-Shopsim-Arrivals item {index} must be a non-negative integer ms offset, "
                f"got {token[:32]!r}"
            )
        offset = int(token)
        if offset > MAX_ARRIVAL_OFFSET_MS:
            raise ClockError(f"X-Shopsim-Arrivals item {index} offset {offset} ms is implausibly large")
        if offset < previous:
            raise ClockError(
                f"X-Shopsim-Arrivals offsets must not decrease (item {index}: {offset} < {previous})"
            )
        offsets.append(offset)
        previous = offset
    return tuple(offsets)


class VirtualClock:
    """A monotone clock driven by requests."""

    mode: ClockMode = "virtual"

    def __init__(self, start_ms: int | None = None) -> None:
        self.now_ms: int | None = start_ms

    def at(self, requested: int | None) -> int:
        """The time a request is processed at: ``max(now, requested)``; starts the clock if unset."""
        if requested is None:
            if self.now_ms is None:
                self.now_ms = int(time.time() * 1000)
            return self.now_ms
        if self.now_ms is None or requested > self.now_ms:
            self.now_ms = requested
        return self.now_ms

    def current(self) -> int | None:
        return self.now_ms


class WallClock:
    """Real time; request clock headers are ignored."""

    mode: ClockMode = "wall"

    def __init__(self) -> None:
        self.now_ms: int | None = None

    def at(self, requested: int | None) -> int:
        now = int(time.time() * 1000)
        if self.now_ms is not None and now < self.now_ms:
            now = self.now_ms  # the wall clock stepped back: stay monotone
        self.now_ms = now
        return now

    def current(self) -> int | None:
        return self.at(None)
