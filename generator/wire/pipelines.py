"""Data Pipelines API (``https://cdp.customer.io/v1``): Segment-spec messages.

Messages (reference/customerio.md §4.2–4.3, §5.1, OpenAPI ``/identify``, ``/track``, ``/batch``)::

    {"type": "identify", "userId", "anonymousId", "messageId", "timestamp", "traits", "context"}
    {"type": "track", "event", "userId", "anonymousId", "messageId", "timestamp", "properties", "context"}
    {"type": "page"|"screen", "name", "userId", "anonymousId", "messageId", "timestamp", "properties", ...}
    POST /v1/identify | /v1/track | /v1/page | /v1/screen    one message
    POST /v1/alias    {"type": "alias", "userId", "previousId"}
    POST /v1/batch    {"batch": [message, ...]}

``messageId`` is the event id (a ULID), ``timestamp`` ISO-8601 UTC with milliseconds and ``Z``.
``userId``/``anonymousId`` are omitted when unknown (Segment spec: at least one is present);
``context`` is omitted when empty. ``type`` is written in single calls too (the endpoint implies
it, the schema allows it), so a single call and a batch item are the same bytes.

Identify traits: the simulator's ``created_at`` (Unix seconds) becomes the reserved trait
``createdAt`` as an ISO-8601 string (OpenAPI: ``format: date-time``); other traits pass through.

Limits: 32 KB per call and per batch item, 500 KB per batch; Pipelines answers 200 and drops
oversize input unless ``X-Strict-Mode: 1``, so oversize is flagged here, before sending.
Auth: Basic ``<pipelines key>:`` (empty password).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from generator.credentials import Credentials
from generator.errors import DeliveryError
from generator.events import CallType, Event
from generator.wire.base import (
    BATCH_LIMIT_BYTES,
    ITEM_LIMIT_BYTES,
    JSON_CONTENT,
    WireRequest,
    basic_auth,
    cut_batches,
    dumps,
    iso_ms,
)
from generator.wire.track_v1 import name_over_limit as _name_over_limit

BATCH_PATH = "/v1/batch"
CALL_PATHS = {
    CallType.IDENTIFY: "/v1/identify",
    CallType.TRACK: "/v1/track",
    CallType.PAGE: "/v1/page",
    CallType.SCREEN: "/v1/screen",
}


def traits(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Identify traits in Pipelines form: ``created_at`` (Unix s) → ``createdAt`` (ISO-8601)."""
    out: dict[str, Any] = {}
    for key, value in properties.items():
        if key == "created_at" and isinstance(value, int) and not isinstance(value, bool):
            out["createdAt"] = iso_ms(value * 1000)
        else:
            out[key] = value
    return out


def message(event: Event) -> dict[str, Any]:
    """The Segment-spec message for ``event`` (a dict in the documented key order)."""
    kind = event.type
    msg: dict[str, Any]
    if kind is CallType.TRACK:
        msg = {"type": "track", "event": event.name}
    elif kind is CallType.IDENTIFY:
        msg = {"type": "identify"}
    else:
        msg = {"type": kind.value, "name": event.name}
    if event.user_id is not None:
        msg["userId"] = event.user_id
    if event.anonymous_id is not None:
        msg["anonymousId"] = event.anonymous_id
    msg["messageId"] = event.id
    msg["timestamp"] = iso_ms(event.timestamp_ms)
    if kind is CallType.IDENTIFY:
        msg["traits"] = traits(event.properties)
    else:
        msg["properties"] = event.properties
    if event.context:
        msg["context"] = event.context
    return msg


def alias(user_id: str, previous_id: str, *, message_id: str, timestamp_ms: int) -> WireRequest:
    """``POST /v1/alias``: tie ``previous_id`` to ``user_id`` (only some destinations need it)."""
    body = dumps(
        {
            "type": "alias",
            "userId": user_id,
            "previousId": previous_id,
            "messageId": message_id,
            "timestamp": iso_ms(timestamp_ms),
        }
    )
    return WireRequest("POST", "/v1/alias", body, JSON_CONTENT, (message_id,), len(body) > ITEM_LIMIT_BYTES)


def name_over_limit(event: Event) -> bool:
    """Whether the message's name is over the limit the emulator (and Customer.io's Track side)
    enforces: a track ``event`` name over 100 B, a page/screen ``name`` over 2,000 B.

    The Pipelines API answers 200 and drops such a message in permissive mode, so sending it would
    be acknowledged yet lost; flagging it oversize reports it instead (see track_v1.name_over_limit).
    """
    if event.type is CallType.TRACK:
        return _name_over_limit(event.name, "event")
    if event.type is CallType.PAGE or event.type is CallType.SCREEN:
        return _name_over_limit(event.name, event.type.value)
    return False


class PipelinesEncoder:
    """Data Pipelines: ``encode`` → ``/v1/<call>``; ``batches`` → ``/v1/batch``."""

    api: str = "pipelines"
    batching: bool = True

    def encode(self, event: Event) -> WireRequest:
        body = dumps(message(event))
        oversize = len(body) > ITEM_LIMIT_BYTES or name_over_limit(event)
        return WireRequest("POST", CALL_PATHS[event.type], body, JSON_CONTENT, (event.id,), oversize)

    def batches(self, events: Sequence[Event], *, max_items: int = 100) -> list[WireRequest]:
        items = [(event.id, dumps(message(event))) for event in events]
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
            isolate={event.id for event in events if name_over_limit(event)},
        )

    def auth_headers(self, creds: Credentials) -> dict[str, str]:
        if not creds.pipelines_key:
            raise DeliveryError("the Pipelines API needs CIO_PIPELINES_KEY (environment or credentials file)")
        return {"Authorization": basic_auth(creds.pipelines_key, "")}
