"""Who shopper k is: names, email, phone, ids — from shopper k's IDENTITY stream only.

Faker is used for its word lists, not per shopper (a Faker call costs ~170 µs): the en_US
first/last name tables and their frequency weights are loaded once per process and sampled
with the shopper's numpy generator. Safety (DESIGN.md): emails only on the scenario's
``identity.email_domain`` (reserved ``example.com``/``.net``/``.org`` by default), phone numbers
only in the fictional ``555-0100``–``555-0199`` range, IP addresses only from the documentation
ranges (RFC 5737).

Identifiers are unique by construction, not by luck: ``user_id`` is a bijective 48-bit mix of
the shopper index keyed by the seed, and the email's number is the shopper index, so two
shoppers never collide on a profile (a collision would merge two people on the target and
show up as an unexplained misfire).
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache
from itertools import accumulate
from typing import NamedTuple

from generator.scenario.model import Identity
from generator.simulate.seeding import Stream, shopper_uniforms, shopper_words

_DAY_MS = 86_400_000
_MASK48 = (1 << 48) - 1
LOCALES = (("en-US", 0.80), ("en-GB", 0.12), ("en-CA", 0.08))
DOC_NETS = ("192.0.2.", "198.51.100.", "203.0.113.")
"""RFC 5737 documentation networks: addresses that can never belong to a real shopper."""


@dataclass(frozen=True, slots=True)
class _Names:
    first: tuple[str, ...]
    first_slug: tuple[str, ...]
    first_cum: tuple[float, ...]
    last: tuple[str, ...]
    last_slug: tuple[str, ...]
    last_cum: tuple[float, ...]


def _ascii_slug(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


@cache
def _names() -> _Names:
    """Faker's en_US name tables with cumulative weights (built once per process)."""
    from faker.providers.person.en_US import Provider

    def table(weights: dict[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
        names = tuple(n for n in weights if _ascii_slug(n))
        total = sum(weights[n] for n in names)
        return names, tuple(c / total for c in accumulate(weights[n] for n in names))

    first, first_cum = table(dict(Provider.first_names))
    last, last_cum = table(dict(Provider.last_names))
    return _Names(
        first=first,
        first_slug=tuple(_ascii_slug(n) for n in first),
        first_cum=first_cum,
        last=last,
        last_slug=tuple(_ascii_slug(n) for n in last),
        last_cum=last_cum,
    )


def _pick(cumulative: tuple[float, ...], u: float) -> int:
    return min(bisect_right(cumulative, u), len(cumulative) - 1)


def user_id_for(seed: int, shopper: int) -> str:
    """``cus_`` + 12 hex digits: a keyed bijection of the shopper index (unique per run)."""
    key = seed & _MASK48
    x = (shopper ^ key) & _MASK48
    # Each step is a bijection on 48-bit integers (odd multiply, xor-shift, add), so distinct
    # shoppers always get distinct ids while the digits look random.
    x = (x * 0x9E3779B97F4B) & _MASK48
    x ^= x >> 23
    x = (x + ((seed >> 17) & _MASK48)) & _MASK48
    x = (x * 0xBF58476D1CE5) & _MASK48
    x ^= x >> 25
    return f"cus_{x:012x}"


def uuid_from_bits(a: int, b: int) -> str:
    """A UUID-v4-shaped string from 128 random bits (no ``uuid`` module on the hot path)."""
    h = f"{a & 0xFFFFFFFFFFFFFFFF:016x}"
    g = f"{b & 0xFFFFFFFFFFFFFFFF:016x}"
    # Version nibble 4; variant nibble 8–b from b's top bits (its first hex digit & 3).
    return f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[(b >> 60) & 3]}{g[1:4]}-{g[4:16]}"


_VARIANT = "89ab"


class ShopperIdentity(NamedTuple):
    """The drawn identity of one shopper (before the walk decides when, if ever, they identify).

    A NamedTuple rather than a frozen dataclass: one is built per shopper on the hot path, and a
    tuple is built ~10× faster.
    """

    user_id: str
    email: str
    first_name: str
    last_name: str
    phone: str
    created_ms: int
    """For returning customers: 30–400 days before their arrival. For new ones: their arrival
    (the walk replaces it with the time of their first identify)."""
    anonymous_ids: tuple[str, str]
    """One anonymous id per device a shopper may use (the second only for cross-device shoppers)."""
    ips: tuple[str, str]
    locale: str


_identity = ShopperIdentity._make

IDENTITY_UNIFORMS = 10
IDENTITY_WORDS = 4
"""How many uniforms and 64-bit words of the IDENTITY stream one identity takes."""


def draw_identity(
    spec: Identity,
    *,
    seed: int,
    shopper: int,
    start_ms: int,
    returning: bool,
    draws: tuple[list[float], list[int]] | None = None,
) -> ShopperIdentity:
    """Shopper ``shopper``'s identity, from their IDENTITY stream only.

    ``draws``: the stream's first :data:`IDENTITY_UNIFORMS` uniforms and :data:`IDENTITY_WORDS`
    words when the caller batched them (``seeding.ShopperBlocks``); computed here otherwise.
    """
    if draws is None:
        u = shopper_uniforms(seed, Stream.IDENTITY, (shopper,), 0, IDENTITY_UNIFORMS)[0]
        raw = shopper_words(seed, Stream.IDENTITY, (shopper,), 0, IDENTITY_WORDS)[0]
    else:
        u, raw = draws
    names = _names()
    first_i = _pick(names.first_cum, u[0])
    last_i = _pick(names.last_cum, u[1])
    first, last = names.first[first_i], names.last[last_i]
    local = f"{names.first_slug[first_i]}.{names.last_slug[last_i]}{shopper}"
    email = f"{local}@{spec.email_domain}"
    user_id = email if spec.strategy == "email" else user_id_for(seed, shopper)
    area = 201 + int(u[2] * 789)  # NANP area codes 201–989
    phone = f"+1{area}55501{int(u[3] * 100):02d}"
    created_ms = start_ms - int((30 + u[4] * 370) * _DAY_MS) if returning else start_ms
    locale = LOCALES[0][0] if u[5] < LOCALES[0][1] else LOCALES[1][0] if u[5] < 0.92 else LOCALES[2][0]
    ips = (
        f"{DOC_NETS[int(u[6] * 3)]}{1 + int(u[7] * 254)}",
        f"{DOC_NETS[int(u[8] * 3)]}{1 + int(u[9] * 254)}",
    )
    return _identity(  # positional: the keyword form costs ~1 µs more per shopper
        (
            user_id,
            email,
            first,
            last,
            phone,
            created_ms,
            (uuid_from_bits(raw[0], raw[1]), uuid_from_bits(raw[2], raw[3])),
            ips,
            locale,
        )
    )
