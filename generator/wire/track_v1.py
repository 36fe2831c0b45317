"""Track API v1 (``https://track.customer.io/api/v1``): one request per call, never batched.

Shapes (reference/customerio.md §2.2–2.6, OpenAPI ``eventsRequest``/``anonymousEventsRequest``)::

    identify        PUT  /api/v1/customers/{id}        {<traits flat>, "anonymous_id": a, ["_timestamp": s]}
    person event    POST /api/v1/customers/{id}/events {"name", "type": "event", "id", "timestamp", "data"}
    anonymous event POST /api/v1/events        {"name", "type", "anonymous_id", "id", "timestamp", "data"}
    page view       same endpoints, "type": "page", "name" = the page URL
    screen view     same endpoints, "type": "screen", "name" = the screen name
    merge           POST /api/v1/merge_customers        {"primary": {"id": p}, "secondary": {"id": s}}

Timestamps are integer Unix seconds. An event goes to the person endpoint when it carries a
``user_id`` (the anonymous id then rides on the identify, not the event), else to ``/events``
with ``anonymous_id``. Identifiers in paths are percent-encoded. Auth: Basic ``site_id:api_key``.

Limits checked before sending (request marked ``oversize``): event ``data`` above 100,000 B,
a ``type: event`` name above 100 B, a page/screen name above 2,000 B, an identify attribute
value above 1,000 B or more than 300 attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from generator.credentials import Credentials
from generator.errors import DeliveryError
from generator.events import CallType, Event
from generator.wire.base import (
    JSON_CONTENT,
    TRACK_ATTRIBUTE_VALUE_LIMIT_BYTES,
    TRACK_EVENT_DATA_LIMIT_BYTES,
    TRACK_MAX_ATTRIBUTES,
    WireRequest,
    basic_auth,
    dumps,
    page_url,
    quote_path,
)

EVENT_NAME_LIMIT_BYTES = 100
"""The documented Track *event name* limit (customerio.md §2.8): applies to ``type: event`` calls."""

# A page view's name is its URL (customerio.md §2.5; Segment's destination maps properties.url to
# name), and real URLs with utm_* queries pass 100 bytes all the time. The docs give no limit for
# page/screen names: §2.8's 100 B is the *event name* row. Our choice, unconfirmed (customerio.md
# §13 lists what the docs leave open): 2,000 B, a common practical URL ceiling. The emulator
# applies the same value (generator/emulator/decode.py PAGE_NAME_LIMIT, defined there because the
# emulator never imports wire): change both together.
PAGE_NAME_LIMIT_BYTES = 2_000
"""The byte limit we apply to page and screen names (URLs, screen names); see the comment above."""

_EVENT_TYPE = {CallType.TRACK: "event", CallType.PAGE: "page", CallType.SCREEN: "screen"}


def request_parts(event: Event, *, identify_timestamp: bool = False) -> tuple[str, str, dict[str, Any]]:
    """``(method, path, body)`` of the Track v1 request for ``event`` (body as a dict)."""
    if event.type is CallType.IDENTIFY:
        person = _person_id(event)
        body: dict[str, Any] = dict(event.properties)
        if event.anonymous_id:
            body["anonymous_id"] = event.anonymous_id
        if identify_timestamp:
            body["_timestamp"] = event.timestamp_ms // 1000
        return "PUT", f"/api/v1/customers/{quote_path(person)}", body
    name = page_url(event) if event.type is CallType.PAGE else event.name
    if event.user_id:
        body = {
            "name": name,
            "type": _EVENT_TYPE[event.type],
            "id": event.id,
            "timestamp": event.timestamp_ms // 1000,
            "data": event.properties,
        }
        return "POST", f"/api/v1/customers/{quote_path(event.user_id)}/events", body
    body = {"name": name, "type": _EVENT_TYPE[event.type]}
    if event.anonymous_id:
        body["anonymous_id"] = event.anonymous_id
    body["id"] = event.id
    body["timestamp"] = event.timestamp_ms // 1000
    body["data"] = event.properties
    return "POST", "/api/v1/events", body


def _person_id(event: Event) -> str:
    if event.user_id:
        return event.user_id
    email = event.properties.get("email")
    if isinstance(email, str) and email:
        return email  # email-only identity strategy: the email is the path identifier
    raise ValueError(f"identify event {event.id} has neither user_id nor an email trait")


def _oversize(event: Event, body: Mapping[str, Any]) -> bool:
    if event.type is CallType.IDENTIFY:
        if len(body) > TRACK_MAX_ATTRIBUTES:
            return True
        return any(
            len(value.encode() if isinstance(value, str) else dumps(value))
            > TRACK_ATTRIBUTE_VALUE_LIMIT_BYTES
            for value in body.values()
        )
    if name_over_limit(body["name"], body["type"]):
        return True
    return len(dumps(body["data"])) > TRACK_EVENT_DATA_LIMIT_BYTES


def name_over_limit(name: str, kind: str) -> bool:
    """True when ``name`` is over the byte limit for a call of ``kind`` (``event|page|screen``)."""
    limit = EVENT_NAME_LIMIT_BYTES if kind == "event" else PAGE_NAME_LIMIT_BYTES
    # ≤ limit/4 characters cannot exceed limit UTF-8 bytes: skip the encode for the common case
    return len(name) > limit // 4 and len(name.encode()) > limit


def merge_customers(
    primary: str, secondary: str, *, primary_type: str = "id", secondary_type: str = "id"
) -> WireRequest:
    """``POST /api/v1/merge_customers``: fold ``secondary`` into ``primary``.

    Each side is one identifier of type ``id``, ``email`` or ``cio_id`` (the API takes exactly one).
    """
    for kind in (primary_type, secondary_type):
        if kind not in ("id", "email", "cio_id"):
            raise ValueError(f"identifier type must be 'id', 'email' or 'cio_id', got {kind!r}")
    body = dumps({"primary": {primary_type: primary}, "secondary": {secondary_type: secondary}})
    return WireRequest("POST", "/api/v1/merge_customers", body, JSON_CONTENT, ())


class TrackV1Encoder:
    """Track API v1: one request per event; ``batches`` returns one request per event too."""

    api: str = "track-v1"
    batching: bool = False

    def __init__(self, *, identify_timestamp: bool = False) -> None:
        """``identify_timestamp`` adds ``_timestamp`` (event time, Unix s) to identify bodies so a
        platform can order attribute updates that arrive out of order."""
        self.identify_timestamp = identify_timestamp

    def encode(self, event: Event) -> WireRequest:
        method, path, body = request_parts(event, identify_timestamp=self.identify_timestamp)
        return WireRequest(method, path, dumps(body), JSON_CONTENT, (event.id,), _oversize(event, body))

    def batches(self, events: Sequence[Event], *, max_items: int = 100) -> list[WireRequest]:
        return [self.encode(event) for event in events]

    def auth_headers(self, creds: Credentials) -> dict[str, str]:
        if not creds.site_id or not creds.api_key:
            raise DeliveryError(
                "the Track API needs CIO_SITE_ID and CIO_API_KEY (environment or credentials file)"
            )
        return {"Authorization": basic_auth(creds.site_id, creds.api_key)}
