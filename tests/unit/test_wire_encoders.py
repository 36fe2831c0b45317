"""Encoder behaviour beyond the golden examples: limits, batching, auth, timestamps, paths."""

from __future__ import annotations

import base64
import types
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.credentials import LOCAL_DEFAULTS, Credentials
from generator.errors import DeliveryError, ShopsimError
from generator.events import CallType, Event, Source
from generator.wire import (
    BATCH_LIMIT_BYTES,
    ITEM_LIMIT_BYTES,
    TRACK_EVENT_DATA_LIMIT_BYTES,
    encoder_for,
    iso_ms,
    merge_customers,
    ndjson_line,
)
from generator.wire.base import cut_batches, quote_path
from generator.wire.pipelines import alias
from generator.wire.track_v1 import EVENT_NAME_LIMIT_BYTES, PAGE_NAME_LIMIT_BYTES

BATCHING = ("track-v2", "pipelines", "browser")


def ev(
    i: int = 0, *, pad: int = 0, type_: CallType = CallType.TRACK, user_id: str | None = "u1", **kw
) -> Event:
    props = {"product_id": "p1", "price": 19.5}
    if pad:
        props["pad"] = "x" * pad
    fields = {
        "id": f"01J{i:023d}",
        "shopper": 0,
        "seq": i,
        "type": type_,
        "name": "Added to Cart" if type_ is CallType.TRACK else "Home",
        "timestamp_ms": 1_717_000_000_000 + i,
        "user_id": user_id,
        "anonymous_id": "a1",
        "properties": props,
        "context": {},
        "source": Source.WEB,
    }
    fields.update(kw)
    return Event(**fields)


# --------------------------------------------------------------------------- timestamps


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_iso_ms_matches_datetime(ms):
    expected = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isoformat(
        timespec="milliseconds"
    )
    assert iso_ms(ms) == expected.replace("+00:00", "Z")


def test_track_timestamps_are_unix_seconds_and_pipelines_iso():
    event = ev(timestamp_ms=1_717_000_000_999)
    assert orjson.loads(encoder_for("track-v1").encode(event).body)["timestamp"] == 1_717_000_000
    assert orjson.loads(encoder_for("track-v2").encode(event).body)["timestamp"] == 1_717_000_000
    assert (
        orjson.loads(encoder_for("pipelines").encode(event).body)["timestamp"] == "2024-05-29T16:26:40.999Z"
    )


# --------------------------------------------------------------------------- paths and auth


@given(st.text(min_size=1, max_size=40))
def test_person_ids_are_percent_encoded_in_paths(user_id):
    request = encoder_for("track-v1").encode(ev(user_id=user_id))
    segment = request.path.removeprefix("/api/v1/customers/").removesuffix("/events")
    assert "/" not in segment and "?" not in segment and " " not in segment
    assert unquote(segment) == user_id
    assert quote_path(user_id) == segment


def test_auth_headers_per_api():
    creds = LOCAL_DEFAULTS
    track = "Basic " + base64.b64encode(b"shopsim-site:shopsim-track-key").decode()
    assert encoder_for("track-v1").auth_headers(creds) == {"Authorization": track}
    assert encoder_for("track-v2").auth_headers(creds) == {"Authorization": track}
    pipelines = "Basic " + base64.b64encode(b"shopsim-pipelines-key:").decode()
    assert encoder_for("pipelines").auth_headers(creds) == {"Authorization": pipelines}
    assert encoder_for("browser").auth_headers(creds) == {}


@pytest.mark.parametrize(
    ("api", "missing"), [("track-v1", "CIO_API_KEY"), ("pipelines", "CIO_PIPELINES_KEY")]
)
def test_missing_keys_are_a_clear_delivery_error(api, missing):
    with pytest.raises(DeliveryError, match=missing):
        encoder_for(api).auth_headers(Credentials(site_id="s"))


def test_browser_write_key_comes_from_the_credentials():
    creds = Credentials(pipelines_key="wk-123")
    request = encoder_for("browser", creds=creds).encode(ev())
    assert request.content_type == "text/plain"
    assert orjson.loads(request.body)["writeKey"] == "wk-123"
    (batch,) = encoder_for("browser", creds=creds).batches([ev(0), ev(1)])
    assert orjson.loads(batch.body)["writeKey"] == "wk-123"
    assert "wk-123" not in repr(encoder_for("browser", creds=creds))


def test_unknown_api_is_an_input_error():
    with pytest.raises(ShopsimError, match="choose one of: track-v1, track-v2, pipelines, browser") as info:
        encoder_for("track-v3")
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("type_", "paths"),
    [
        (
            CallType.TRACK,
            {"track-v1": "/api/v1/customers/u1/events", "pipelines": "/v1/track", "browser": "/v1/t"},
        ),
        (
            CallType.PAGE,
            {"track-v1": "/api/v1/customers/u1/events", "pipelines": "/v1/page", "browser": "/v1/p"},
        ),
        (
            CallType.SCREEN,
            {"track-v1": "/api/v1/customers/u1/events", "pipelines": "/v1/screen", "browser": "/v1/s"},
        ),
        (
            CallType.IDENTIFY,
            {"track-v1": "/api/v1/customers/u1", "pipelines": "/v1/identify", "browser": "/v1/i"},
        ),
    ],
)
def test_single_call_paths(type_, paths):
    for api, path in paths.items():
        request = encoder_for(api).encode(ev(type_=type_))
        assert request.path == path
        assert request.method == ("PUT" if api == "track-v1" and type_ is CallType.IDENTIFY else "POST")


def test_anonymous_events_use_the_anonymous_endpoints():
    event = ev(user_id=None)
    v1 = encoder_for("track-v1").encode(event)
    assert v1.path == "/api/v1/events"
    assert orjson.loads(v1.body)["anonymous_id"] == "a1"
    v2 = orjson.loads(encoder_for("track-v2").encode(event).body)
    assert v2["identifiers"] == {"anonymous_id": "a1"}
    msg = orjson.loads(encoder_for("pipelines").encode(event).body)
    assert "userId" not in msg and msg["anonymousId"] == "a1"


# --------------------------------------------------------------------------- limits


def test_track_v1_event_data_limit():
    fits = ev(pad=TRACK_EVENT_DATA_LIMIT_BYTES - 100)
    over = ev(pad=TRACK_EVENT_DATA_LIMIT_BYTES)
    encoder = encoder_for("track-v1")
    assert not encoder.encode(fits).oversize
    assert encoder.encode(over).oversize


def test_track_v1_identify_attribute_value_limit():
    ok = ev(type_=CallType.IDENTIFY, properties={"email": "a@example.com", "bio": "x" * 1000})
    over = ev(type_=CallType.IDENTIFY, properties={"email": "a@example.com", "bio": "x" * 1001})
    encoder = encoder_for("track-v1")
    assert not encoder.encode(ok).oversize
    assert encoder.encode(over).oversize


@pytest.mark.parametrize("api", ["track-v2", "pipelines", "browser"])
def test_single_call_item_limit(api):
    encoder = encoder_for(api)
    assert not encoder.encode(ev(pad=ITEM_LIMIT_BYTES - 1000)).oversize
    assert encoder.encode(ev(pad=ITEM_LIMIT_BYTES)).oversize


@pytest.mark.parametrize("api", BATCHING)
def test_batches_cut_by_count(api):
    events = [ev(i) for i in range(250)]
    requests = encoder_for(api).batches(events, max_items=100)
    assert [len(r.event_ids) for r in requests] == [100, 100, 50]
    assert [i for r in requests for i in r.event_ids] == [e.id for e in events]
    for request in requests:
        assert len(orjson.loads(request.body)["batch"]) == len(request.event_ids)


@pytest.mark.parametrize("api", BATCHING)
def test_batches_cut_by_bytes_and_isolate_oversize_items(api):
    events = [ev(i, pad=30_000) for i in range(40)]
    events.insert(7, ev(99, pad=ITEM_LIMIT_BYTES))
    requests = encoder_for(api).batches(events, max_items=100)
    assert [i for r in requests for i in r.event_ids] == [e.id for e in events]
    oversize = [r for r in requests if r.oversize]
    assert len(oversize) == 1 and oversize[0].event_ids == (events[7].id,)
    for request in requests:
        if not request.oversize:
            assert len(request.body) <= BATCH_LIMIT_BYTES
        batch = orjson.loads(request.body)["batch"]
        assert all(len(orjson.dumps(item)) <= ITEM_LIMIT_BYTES for item in batch) != request.oversize
    assert max(len(r.event_ids) for r in requests) == 16  # 16 × ~30 KB < 500 KB < 17 × ~30 KB


def test_track_v1_does_not_batch():
    encoder = encoder_for("track-v1")
    assert encoder.batching is False
    requests = encoder.batches([ev(i) for i in range(3)])
    assert [r.event_ids for r in requests] == [(ev(i).id,) for i in range(3)]


@settings(max_examples=60)
@given(
    st.lists(st.integers(min_value=1, max_value=60_000), max_size=60),
    st.integers(min_value=1, max_value=20),
)
def test_cut_batches_accounts_for_every_item(sizes, max_items):
    items = [(f"e{i}", b'"' + b"x" * n + b'"') for i, n in enumerate(sizes)]
    requests = cut_batches(
        items,
        prefix=b"[",
        suffix=b"]",
        max_items=max_items,
        item_limit=ITEM_LIMIT_BYTES,
        batch_limit=BATCH_LIMIT_BYTES,
        make=lambda body, ids, oversize: (body, ids, oversize),
    )
    assert [i for _, ids, _ in requests for i in ids] == [i for i, _ in items]
    for body, ids, oversize in requests:
        decoded = orjson.loads(body)
        assert len(decoded) == len(ids)
        if oversize:
            assert len(ids) == 1 and len(body) - 2 > ITEM_LIMIT_BYTES
        else:
            assert len(ids) <= max_items and len(body) <= BATCH_LIMIT_BYTES


# --------------------------------------------------------------------------- misc


def test_read_only_mappings_and_numpy_scalars_encode():
    event = ev(
        properties=types.MappingProxyType({"price": np.float64(19.5), "quantity": np.int64(2)}),
        context=types.MappingProxyType({"page": types.MappingProxyType({"url": "https://x"})}),
    )
    for api in ("track-v1", "track-v2", "pipelines", "browser"):
        body = orjson.loads(encoder_for(api).encode(event).body)
        assert orjson.dumps(body).count(b"19.5") == 1
    assert orjson.loads(ndjson_line(event, "pipelines"))["properties"] == {"price": 19.5, "quantity": 2}


def test_ndjson_unknown_format():
    with pytest.raises(ShopsimError, match="pipelines, track-v1"):
        ndjson_line(ev(), "csv")


def test_merge_customers_documented_shape():
    request = merge_customers("cool.person@company.com", "42", primary_type="email")
    assert (request.method, request.path) == ("POST", "/api/v1/merge_customers")
    assert orjson.loads(request.body) == {
        "primary": {"email": "cool.person@company.com"},
        "secondary": {"id": "42"},
    }
    with pytest.raises(ValueError):
        merge_customers("a", "b", primary_type="phone")


def test_alias_documented_shape():
    request = alias("42", "507f", message_id="m1", timestamp_ms=0)
    assert request.path == "/v1/alias"
    body = orjson.loads(request.body)
    assert {k: body[k] for k in ("userId", "previousId")} == {"userId": "42", "previousId": "507f"}


def test_identify_without_user_id_uses_the_email():
    event = ev(type_=CallType.IDENTIFY, user_id=None, properties={"email": "a b@example.com"})
    assert encoder_for("track-v1").encode(event).path == "/api/v1/customers/a%20b%40example.com"
    assert orjson.loads(encoder_for("track-v2").encode(event).body)["identifiers"] == {
        "email": "a b@example.com"
    }


@pytest.mark.parametrize("api", ["track-v1", "track-v2", "pipelines", "browser"])
def test_no_events_no_requests(api):
    assert encoder_for(api).batches([], max_items=0) == []
    with pytest.raises(ValueError, match="max_items"):
        encoder_for("pipelines").batches([ev()], max_items=0)


# --------------------------------------------------------------------------- name limits


def _url(size: int) -> str:
    """A page URL of exactly ``size`` bytes (the page name on Track v1/v2)."""
    head = "https://shop.example.com/p/sku?utm_source=instagram&pad="
    return head + "x" * (size - len(head))


@pytest.mark.parametrize("api", ["track-v1", "track-v2"])
def test_page_names_are_urls_with_a_2000_byte_limit_not_the_event_name_limit(api):
    encoder = encoder_for(api)
    for user_id in ("u1", None):
        long_url = ev(type_=CallType.PAGE, user_id=user_id, properties={"url": _url(340)})
        request = encoder.encode(long_url)
        assert orjson.loads(request.body)["name"] == _url(340)
        assert not request.oversize
        assert not encoder.encode(
            ev(type_=CallType.PAGE, user_id=user_id, properties={"url": _url(PAGE_NAME_LIMIT_BYTES)})
        ).oversize
        assert encoder.encode(
            ev(type_=CallType.PAGE, user_id=user_id, properties={"url": _url(PAGE_NAME_LIMIT_BYTES + 1)})
        ).oversize
        screen = "S" * (PAGE_NAME_LIMIT_BYTES // 2 - 1) + "é"  # multi-byte: counted in bytes
        assert not encoder.encode(ev(type_=CallType.SCREEN, user_id=user_id, name=screen)).oversize
        assert encoder.encode(ev(type_=CallType.SCREEN, user_id=user_id, name=screen * 2 + "x")).oversize


@pytest.mark.parametrize("api", ["track-v1", "track-v2"])
def test_event_names_keep_the_documented_100_byte_limit(api):
    encoder = encoder_for(api)
    for user_id in ("u1", None):
        assert not encoder.encode(ev(user_id=user_id, name="n" * EVENT_NAME_LIMIT_BYTES)).oversize
        assert encoder.encode(ev(user_id=user_id, name="n" * (EVENT_NAME_LIMIT_BYTES + 1))).oversize
        assert encoder.encode(ev(user_id=user_id, name="é" * (EVENT_NAME_LIMIT_BYTES // 2 + 1))).oversize


def test_track_v2_batches_isolate_an_item_whose_name_is_over_the_limit():
    events = [ev(i) for i in range(10)]
    events.insert(4, ev(50, name="n" * (EVENT_NAME_LIMIT_BYTES + 1)))
    events.insert(8, ev(51, type_=CallType.PAGE, properties={"url": _url(PAGE_NAME_LIMIT_BYTES + 1)}))
    events.append(ev(52, type_=CallType.PAGE, properties={"url": _url(1500)}))  # long URL, fine
    requests = encoder_for("track-v2").batches(events, max_items=3)
    assert [i for r in requests for i in r.event_ids] == [e.id for e in events]
    oversize = [r.event_ids for r in requests if r.oversize]
    assert oversize == [(events[4].id,), (events[8].id,)]
    for request in requests:
        batch = orjson.loads(request.body)["batch"]
        assert [item["id"] for item in batch] == list(request.event_ids)
        assert len(batch) <= 3


@pytest.mark.parametrize("api", ["pipelines", "browser"])
def test_segment_style_names_over_the_limit_are_flagged_not_silently_sent(api):
    """The emulator (like Customer.io's Track side) drops a track name over 100 B or a page name
    over 2,000 B with a permissive 200; the encoder reports those as oversize instead, alone in
    their own request, so their batch mates still go out."""
    enc = encoder_for(api)
    long_track = ev(1, name="A" * (EVENT_NAME_LIMIT_BYTES + 1))
    ok_track = ev(2, name="A" * EVENT_NAME_LIMIT_BYTES)
    long_page = ev(3, type_=CallType.PAGE, name="P" * (PAGE_NAME_LIMIT_BYTES + 1))
    assert enc.encode(long_track).oversize and enc.encode(long_page).oversize
    assert not enc.encode(ok_track).oversize
    requests = enc.batches([ev(0), long_track, ok_track, long_page, ev(4)], max_items=10)
    flagged = [r.event_ids for r in requests if r.oversize]
    assert flagged == [(long_track.id,), (long_page.id,)]
    sent = [i for r in requests if not r.oversize for i in r.event_ids]
    assert sent == [ev(0).id, ok_track.id, ev(4).id]
