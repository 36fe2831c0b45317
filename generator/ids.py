"""Deterministic ULIDs: 48-bit millisecond time + 80 bits from the caller's RNG, Crockford base32.

Event ids are ULIDs because Customer.io requires them for dedupe (reference/customerio.md §2.3)
and because they sort by event time. Building them from integers is ~10× faster than uuid4().
"""

from __future__ import annotations

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(timestamp_ms: int, random80: int) -> str:
    """Encode a ULID from a millisecond timestamp and an 80-bit random integer."""
    value = ((timestamp_ms & 0xFFFF_FFFF_FFFF) << 80) | (random80 & ((1 << 80) - 1))
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def ulid_time_ms(value: str) -> int:
    """The millisecond timestamp inside a ULID."""
    n = 0
    for ch in value[:10]:
        n = n * 32 + _CROCKFORD.index(ch)
    return n
