"""Which shoppers a load process simulates: shopper k belongs to shard ``k mod n``.

Each Locust worker simulates only its own shard (``simulate_shoppers(..., shard=(i, n))``),
so no journey data crosses the network and the union of the shards is exactly the
single-process run (the simulation guarantees shopper k is identical for any shard).

The shard of a worker is decided on the master when the test starts: the connected workers
are sorted by client id and numbered 0..n-1, and the map travels to the workers inside
Locust's own spawn message (custom parsed options are forwarded to workers). A shard given
explicitly (``--shard i/n``) wins; a stand-alone process is shard ``0/1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["assign_shards", "parse_shard", "shard_for"]


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/n"`` (0 <= i < n); raises ``ValueError`` with the accepted form."""
    head, sep, tail = text.strip().partition("/")
    try:
        index, count = int(head), int(tail)
    except ValueError:
        raise ValueError(f"shard must look like 'i/n' (e.g. 0/2), got {text!r}") from None
    if not sep or count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be 'i/n' with 0 <= i < n, got {text!r}")
    return index, count


def assign_shards(client_ids: Iterable[str]) -> dict[str, int]:
    """Number the workers 0..n-1 by sorted client id (stable, independent of connect order)."""
    return {client: i for i, client in enumerate(sorted(set(client_ids)))}


def shard_for(client_id: str, shard_map: Mapping[str, int] | None, explicit: str | None) -> tuple[int, int]:
    """The shard this process simulates: explicit ``i/n``, else its entry in the master's map, else 0/1."""
    if explicit:
        return parse_shard(explicit)
    if shard_map and client_id in shard_map:
        return shard_map[client_id], len(shard_map)
    return 0, 1
