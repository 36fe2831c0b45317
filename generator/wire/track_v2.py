"""Track API v2 (``/api/v2/entity`` for one operation, ``/api/v2/batch`` for many).

Operations (reference/customerio.md §3, OpenAPI ``identify_person``, ``person_event``, ``person_page``)::

    {"type": "person", "identifiers": {"id": u}, "action": "identify", "timestamp": s,
     "attributes": {<traits>, "anonymous_id": a}}
    {"type": "person", "identifiers": {"id": u}, "action": "event", "id", "name", "timestamp", "attributes"}
    {"type": "person", "identifiers": {"id": u}, "action": "page",   ... "name" = the page URL}
    {"type": "person", "identifiers": {"id": u}, "action": "screen", ... "name" = the screen name}
    POST /api/v2/batch  {"batch": [op, op, ...]}

Event properties go under ``attributes`` (v2), not ``data`` (v1); timestamps are Unix seconds.

Anonymous events use ``identifiers: {"anonymous_id": a}``. That is how Segment's Customer.io
(Actions) destination sends them; Customer.io's own v2 schema does not list ``anonymous_id`` as a
person identifier (customerio.md §3 and §13: third-party / unconfirmed). Page names are URLs, as
in v1 and as the Segment destination maps them (the v2 docs example uses a path; both are names).

Limits: ≤ 32 KB per operation (and per ``/entity`` request), ≤ 500 KB per ``/batch`` request;
names as in v1 (``event`` ≤ 100 B, ``page``/``screen`` ≤ 2,000 B: track_v1.name_over_limit).
An operation over a limit goes alone into a request marked oversize, in its place.
Auth: Basic ``site_id:api_key`` (the same keys as v1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from generator.credentials import Credentials
from generator.events import CallType, Event
from generator.wire.base import (
    BATCH_LIMIT_BYTES,
    ITEM_LIMIT_BYTES,
    JSON_CONTENT,
    WireRequest,
    cut_batches,
    dumps,
    page_url,
)
from generator.wire.track_v1 import TrackV1Encoder, name_over_limit

ENTITY_PATH = "/api/v2/entity"
BATCH_PATH = "/api/v2/batch"

_ACTION = {CallType.TRACK: "event", CallType.PAGE: "page", CallType.SCREEN: "screen"}


def operation(event: Event) -> dict[str, Any]:
    """The v2 person operation for ``event`` (a dict, in documented key order)."""
    if event.type is CallType.IDENTIFY:
        attributes: dict[str, Any] = dict(event.properties)
        if event.anonymous_id:
            attributes["anonymous_id"] = event.anonymous_id
        person = event.user_id or event.properties.get("email")
        if not person:
            raise ValueError(f"identify event {event.id} has neither user_id nor an email trait")
        return {
            "type": "person",
            "identifiers": {"id": person} if event.user_id else {"email": person},
            "action": "identify",
            "timestamp": event.timestamp_ms // 1000,
            "attributes": attributes,
        }
    # Anonymous people as {"anonymous_id": ...}: Segment's destination does this (third-party, §3).
    identifiers = {"id": event.user_id} if event.user_id else {"anonymous_id": event.anonymous_id or ""}
    return {
        "type": "person",
        "identifiers": identifiers,
        "action": _ACTION[event.type],
        "id": event.id,
        "name": page_url(event) if event.type is CallType.PAGE else event.name,
        "timestamp": event.timestamp_ms // 1000,
        "attributes": event.properties,
    }


def _name_over_limit(op: dict[str, Any]) -> bool:
    name = op.get("name")
    return isinstance(name, str) and name_over_limit(name, op["action"])


class TrackV2Encoder:
    """Track API v2: ``encode`` → ``/api/v2/entity``; ``batches`` → ``/api/v2/batch``."""

    api: str = "track-v2"
    batching: bool = True

    def encode(self, event: Event) -> WireRequest:
        op = operation(event)
        body = dumps(op)
        oversize = len(body) > ITEM_LIMIT_BYTES or _name_over_limit(op)
        return WireRequest("POST", ENTITY_PATH, body, JSON_CONTENT, (event.id,), oversize)

    def batches(self, events: Sequence[Event], *, max_items: int = 100) -> list[WireRequest]:
        items: list[tuple[str, bytes]] = []
        over_name: set[str] = set()
        for event in events:
            op = operation(event)
            items.append((event.id, dumps(op)))
            if _name_over_limit(op):
                over_name.add(event.id)
        return cut_batches(
            items,
            prefix=b'{"batch":[',
            suffix=b"]}",
            max_items=max_items,
            item_limit=ITEM_LIMIT_BYTES,
            batch_limit=BATCH_LIMIT_BYTES,
            make=lambda body, ids, oversize: WireRequest(
                "POST", BATCH_PATH, body, JSON_CONTENT, ids, oversize
            ),
            isolate=over_name,
        )

    def auth_headers(self, creds: Credentials) -> dict[str, str]:
        return TrackV1Encoder().auth_headers(creds)
