"""Durations as humans write them in scenarios (``90s``, ``1h30m``, ``250ms``, ``2d``) ↔ integer milliseconds.

Integer milliseconds are the one time unit inside shopsim: event times, arrival times,
delays and think times are all ``int`` ms, so arithmetic is exact and output deterministic.
"""

from __future__ import annotations

import re

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


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
        return round(value * 1000)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like '90s' or '1h', got {value!r}")
    text = value.strip().replace(" ", "")
    if text.startswith("-"):
        raise ValueError(f"duration must not be negative, got {value!r}")
    if not text:
        raise ValueError("expected a duration like '90s' or '1h', got an empty string")
    total = 0.0
    pos = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"expected a duration like '90s', '15m', '1h30m', '250ms' or '2d', got {value!r}")
    return round(total)


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
