"""Shared pieces of the wire encoders: the request record, the encoder protocol, limits, helpers.

Limits (reference/customerio.md §2.8, §4.1, §10). "KB" in Customer.io's docs is ambiguous; we
use the stricter reading where it matters for *sending* and the official clients' figure
where they publish one:

- ``ITEM_LIMIT_BYTES`` = 32 768: one Pipelines call, one Pipelines/Track v2 batch item, one v2
  ``/entity`` request (cdp-analytics-python rejects a message above 32 KiB);
- ``BATCH_LIMIT_BYTES`` = 500 000: one ``/batch`` request body (whole body, envelope included);
- ``TRACK_EVENT_DATA_LIMIT_BYTES`` = 100 000: a Track v1 event's serialized ``data``;
- ``TRACK_ATTRIBUTE_VALUE_LIMIT_BYTES`` = 1 000 per identify attribute value,
  ``TRACK_MAX_ATTRIBUTES`` = 300 per identify call.

Timestamps: Track takes integer Unix seconds; Pipelines takes ISO-8601 with milliseconds and
``Z``. :func:`iso_ms` formats integer epoch ms without a ``datetime`` per event: the
``YYYY-MM-DDTHH:`` part is cached per hour, ``MM:SS`` and ``.mmmZ`` come from tables.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import quote

import orjson

from generator.credentials import Credentials
from generator.events import Event

ITEM_LIMIT_BYTES = 32 * 1024
BATCH_LIMIT_BYTES = 500_000
TRACK_EVENT_DATA_LIMIT_BYTES = 100_000
TRACK_ATTRIBUTE_VALUE_LIMIT_BYTES = 1_000
TRACK_MAX_ATTRIBUTES = 300

JSON_CONTENT = "application/json"
TEXT_CONTENT = "text/plain"


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One HTTP request as an encoder renders it (path relative to the API host).

    ``event_ids`` lists the ids carried, in body order, so the sender's ledger can account for
    every event. ``oversize`` marks a request above the API's documented byte limit: it is
    reported, and the sender does not send it unless told to.
    """

    method: str
    path: str
    body: bytes
    content_type: str
    event_ids: tuple[str, ...]
    oversize: bool = False


class Encoder(Protocol):
    """Renders events as requests for one API (``track-v1``, ``track-v2``, ``pipelines``, ``browser``)."""

    api: str
    batching: bool

    def encode(self, event: Event) -> WireRequest:
        """One event as one request (the API's single-call endpoint)."""
        ...

    def batches(self, events: Sequence[Event], *, max_items: int = 100) -> list[WireRequest]:
        """Events as requests: batched by count and bytes where the API batches, else one each.

        An item over the per-item limit becomes its own request with ``oversize=True``.
        """
        ...

    def auth_headers(self, creds: Credentials) -> dict[str, str]:
        """The authentication headers this API needs (may raise DeliveryError if a key is missing)."""
        ...


# --------------------------------------------------------------------------- JSON


def _default(value: Any) -> Any:
    # Events carry Mapping (possibly read-only proxies) and may carry numpy scalars from the
    # simulator; orjson only calls this for types it does not know, so the hot path pays nothing.
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """Compact JSON (orjson) accepting any Mapping and numpy scalars."""
    return orjson.dumps(value, default=_default)


def dumps_line(value: Any) -> bytes:
    """Compact JSON followed by ``\\n``."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_APPEND_NEWLINE)


# --------------------------------------------------------------------------- time

_MS_SUFFIX = tuple(f".{ms:03d}Z" for ms in range(1000))
_MIN_SEC = tuple(f"{m:02d}:{sec:02d}" for m in range(60) for sec in range(60))
_HOUR_CACHE: dict[int, str] = {}
_HOUR_CACHE_MAX = 1 << 16


def iso_ms(epoch_ms: int) -> str:
    """``2024-05-29T16:26:40.000Z`` from integer epoch milliseconds (UTC)."""
    seconds, ms = divmod(epoch_ms, 1000)
    hour, second_of_hour = divmod(seconds, 3600)
    head = _HOUR_CACHE.get(hour)
    if head is None:
        # One strftime per hour of event time; the rest are table lookups (streams span hours,
        # rarely repeat a second, so a per-second cache would mostly miss).
        if len(_HOUR_CACHE) >= _HOUR_CACHE_MAX:
            _HOUR_CACHE.clear()
        head = time.strftime("%Y-%m-%dT%H:", time.gmtime(hour * 3600))
        _HOUR_CACHE[hour] = head
    return head + _MIN_SEC[second_of_hour] + _MS_SUFFIX[ms]


def unix_s(epoch_ms: int) -> int:
    """Integer Unix seconds (Track API) from epoch milliseconds (floor)."""
    return epoch_ms // 1000


# --------------------------------------------------------------------------- HTTP helpers


@lru_cache(maxsize=65_536)
def quote_path(value: str) -> str:
    """Percent-encode one path segment (``/``, ``@``, spaces ... all encoded), as the official clients do."""
    return quote(value, safe="")


def basic_auth(user: str, password: str) -> str:
    """``Basic base64(user:password)``."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def page_url(event: Event) -> str:
    """The URL of a page event: ``properties.url``, else ``context.page.url``, else the page name."""
    url = event.properties.get("url")
    if isinstance(url, str) and url:
        return url
    page = event.context.get("page")
    if isinstance(page, Mapping):
        url = page.get("url")
        if isinstance(url, str) and url:
            return url
    return event.name


# --------------------------------------------------------------------------- batching


def cut_batches(
    items: Sequence[tuple[str, bytes]],
    *,
    prefix: bytes,
    suffix: bytes,
    max_items: int,
    item_limit: int,
    batch_limit: int,
    make: Callable[[bytes, tuple[str, ...], bool], WireRequest],
    isolate: Collection[str] = frozenset(),
) -> list[WireRequest]:
    """Join pre-serialized ``(event_id, item_json)`` pairs into ``prefix + a,b,c + suffix`` bodies.

    A batch closes when it holds ``max_items`` or the next item would push the body over
    ``batch_limit``. An item above ``item_limit``, or whose id is in ``isolate`` (over another
    documented limit, e.g. its name), goes alone into a request marked oversize, in its place in
    the sequence, so nothing is reordered or silently dropped and its batch mates still go out.
    """
    if not items:
        return []
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    out: list[WireRequest] = []
    envelope = len(prefix) + len(suffix)
    ids: list[str] = []
    parts: list[bytes] = []
    size = envelope

    def flush() -> None:
        nonlocal size
        if parts:
            out.append(make(prefix + b",".join(parts) + suffix, tuple(ids), False))
            ids.clear()
            parts.clear()
            size = envelope

    for event_id, item in items:
        n = len(item)
        if n > item_limit or event_id in isolate:
            flush()
            out.append(make(prefix + item + suffix, (event_id,), True))
            continue
        added = n + (1 if parts else 0)
        if parts and (len(parts) >= max_items or size + added > batch_limit):
            flush()
            added = n
        parts.append(item)
        ids.append(event_id)
        size += added
    flush()
    return out
