"""Durations as humans write them in scenarios (``90s``, ``1h30m``, ``250ms``, ``2d``) ↔ integer milliseconds.

Integer milliseconds are the one time unit inside shopsim: event times, arrival times,
delays and think times are all ``int`` ms, so arithmetic is exact and output deterministic.
"""

from __future__ import annotations

import math
import re

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

DURATION_PATTERN = (
    r"^(?=\d)(\d+(\.\d+)?w)?(\d+(\.\d+)?d)?(\d+(\.\d+)?h)?(\d+(\.\d+)?m)?(\d+(\.\d+)?s)?(\d+(\.\d+)?ms)?$"
)
"""A written duration: numbers with units, largest unit first, each unit at most once, no spaces.

``1h30m`` reads one way only; ``1h1h``, ``30m1h`` and ``1 h`` are almost always typos, so they are
rejected (the scenario JSON Schema uses the same pattern)."""

_DURATION = re.compile(DURATION_PATTERN)
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")

MAX_DURATION_MS = 3660 * 86_400_000
"""The longest duration a scenario may write (3660d, about ten years).

Longer than any run, think time, delay or window a shop could mean, and short enough that
event times (start + run + think times) stay far inside the range of ULID timestamps and
calendar dates. The scenario model enforces it; :func:`parse_duration` itself does not."""


def parse_duration(value: object) -> int:
    """Parse ``"1h30m"``, ``"250ms"``, ``"2.5s"`` or a bare number of seconds into integer milliseconds.

    Raises ``ValueError`` with the accepted forms when the value is not a duration;
    negative durations are rejected.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '90s' or '1h', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return _whole_ms(value * 1000, value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like '90s' or '1h', got {value!r}")
    if value.strip().startswith("-"):
        raise ValueError(f"duration must not be negative, got {value!r}")
    if not value:
        raise ValueError("expected a duration like '90s' or '1h', got an empty string")
    if _DURATION.fullmatch(value) is None:
        raise ValueError(
            f"expected a duration like '90s', '15m', '1h30m', '250ms' or '2d' "
            f"(largest unit first, each unit once, no spaces), got {value!r}"
        )
    return _whole_ms(sum(float(number) * _UNIT_MS[unit] for number, unit in _PART.findall(value)), value)


def _whole_ms(ms: float, value: object) -> int:
    # round() of an infinite or NaN float raises OverflowError/ValueError with no context.
    if math.isnan(ms):
        raise ValueError(f"expected a duration like '90s' or '1h', got {value!r}")
    if math.isinf(ms):
        raise ValueError(f"duration is too large, got {value!r}")
    return round(ms)


def format_duration(ms: int) -> str:
    """Render integer milliseconds compactly (``5400000`` → ``"1h30m"``).

    The inverse of :func:`parse_duration`.
    """
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    if ms:
        parts.append(f"{ms}ms")
    return sign + "".join(parts)
