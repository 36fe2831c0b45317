"""Wire compatibility with Customer.io's official Python clients.

The clients build their request bodies in process (no network here): customerio-python's
``send_request`` is captured, cdp-analytics-python's ``Client(send=False)`` returns the message
it would have queued. Our encoders must produce the same fields for the same call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from generator.events import CallType, Event, Source
from generator.wire import encoder_for

customerio = pytest.importorskip("customerio")
analytics = pytest.importorskip("customerio.analytics.client")

BASE = "https://track.customer.io/api/v1"


class CapturingTrack(customerio.CustomerIO):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(site_id="s", api_key="k")
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def send_request(self, method: str, url: str, data: dict[str, Any]) -> None:
        self.sent.append((method, url, data))


def event(type_: CallType, *, user_id: str | None, name: str = "Added to Cart", **kw: Any) -> Event:
    return Event(
        id=kw.pop("id", "01J0000000000000000000000B"),
        shopper=0,
        seq=0,
        type=type_,
        name=name,
        timestamp_ms=1_717_000_060_000,
        user_id=user_id,
        anonymous_id=kw.pop("anonymous_id", "a-9f2c"),
        properties=kw.pop("properties", {"product_id": "sku-1", "price": 19, "quantity": 1}),
        context=kw.pop("context", {}),
        source=Source.WEB,
    )


def ours_v1(e: Event) -> tuple[str, str, dict[str, Any]]:
    request = encoder_for("track-v1").encode(e)
    return request.method, "https://track.customer.io" + request.path, orjson.loads(request.body)


def test_track_person_event_matches_customerio_python():
    e = event(CallType.TRACK, user_id="u 42/x")
    client = CapturingTrack()
    client.track("u 42/x", e.name, data=dict(e.properties), id=e.id, timestamp=e.timestamp_ms // 1000)
    (method, url, body) = client.sent[0]
    our_method, our_url, ours = ours_v1(e)
    assert (our_method, our_url) == (method, url)
    assert ours.pop("type") == "event"  # we always name the type; the client leaves it to the default
    assert ours == body


def test_track_anonymous_matches_customerio_python():
    e = event(CallType.TRACK, user_id=None)
    client = CapturingTrack()
    client.track_anonymous(
        "a-9f2c", e.name, data=dict(e.properties), id=e.id, timestamp=e.timestamp_ms // 1000
    )
    (method, url, body) = client.sent[0]
    our_method, our_url, ours = ours_v1(e)
    assert (our_method, our_url) == (method, url)
    assert ours.pop("type") == "event"
    assert ours == body


def test_identify_matches_customerio_python():
    traits = {"email": "jane@example.com", "created_at": 1717000120, "first_name": "Jane"}
    e = event(CallType.IDENTIFY, user_id="u-42", name="", properties=traits)
    client = CapturingTrack()
    client.identify("u-42", **traits, anonymous_id="a-9f2c")
    assert ours_v1(e) == client.sent[0]


def test_pageview_matches_customerio_python():
    e = event(CallType.PAGE, user_id="u-42", name="Sku 1", properties={"url": "https://shop.example/p/1"})
    client = CapturingTrack()
    client.pageview("u-42", "https://shop.example/p/1", url="https://shop.example/p/1")
    (method, url, body) = client.sent[0]
    our_method, our_url, ours = ours_v1(e)
    assert (our_method, our_url) == (method, url)
    assert {k: ours[k] for k in body} == body  # we add id and timestamp, which pageview() cannot send


def pipelines_client_message(call: str, **kwargs: Any) -> dict[str, Any]:
    client = analytics.Client("wk", send=False, sync_mode=True)
    ok, msg = getattr(client, call)(**kwargs)
    assert ok
    return dict(msg)


@pytest.mark.parametrize("call", ["track", "page", "screen", "identify"])
def test_pipelines_matches_cdp_analytics_python(call):
    type_ = CallType(call)
    properties = {"email": "jane@example.com"} if call == "identify" else {"product_id": "sku-1", "price": 19}
    e = event(
        type_, user_id="u-42", name="Product Viewed" if call == "track" else "Sku 1", properties=properties
    )
    ts = datetime.fromtimestamp(e.timestamp_ms / 1000, UTC)
    kwargs: dict[str, Any] = {
        "user_id": "u-42",
        "anonymous_id": "a-9f2c",
        "timestamp": ts,
        "message_id": e.id,
    }
    if call == "identify":
        kwargs["traits"] = dict(properties)
    else:
        kwargs["properties"] = dict(properties)
        kwargs["event" if call == "track" else "name"] = e.name
    theirs = pipelines_client_message(call, **kwargs)
    ours = orjson.loads(encoder_for("pipelines").encode(e).body)
    theirs.pop("context")  # the client adds context.library; ours carries the event's context
    theirs.pop("integrations", None)
    theirs = {k: v for k, v in theirs.items() if v is not None}  # the client keeps unset fields as null
    their_ts = datetime.fromisoformat(theirs.pop("timestamp"))
    our_ts = datetime.fromisoformat(ours.pop("timestamp").replace("Z", "+00:00"))
    assert their_ts == our_ts
    assert ours == theirs
