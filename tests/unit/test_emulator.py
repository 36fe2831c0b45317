"""The emulator app called in process (no sockets): ingestion, identity, dedupe, clocks, reads."""

from __future__ import annotations

import ast
import gzip
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.emulator.clock import ClockError, parse_arrivals_header
from generator.emulator.decode import PAGE_NAME_LIMIT
from generator.emulator.server_faults import ServerFaults, parse_latency
from generator.emulator.webhooks import payload, sign, verify
from tests.unit.test_emulator_support import (
    APP_AUTH,
    PIPE_AUTH,
    T0,
    call,
    campaigns,
    export,
    make_app,
    of_kind,
)

HOUR = 3_600_000
CART = campaigns(
    cart_recovery={
        "trigger": {"event": "Added to Cart", "where": ["cart_total >= 20"]},
        "delay": "1h",
        "exit_on": ["Order Completed"],
    }
)


def _identify(app, user, at=T0, **attrs):
    status, body, _ = call(app, "PUT", f"/api/v1/customers/{user}", attrs, at=at)
    assert (status, body) == (200, {})


def _event(app, user, name, at=T0, **fields):
    status, body, _ = call(app, "POST", f"/api/v1/customers/{user}/events", {"name": name, **fields}, at=at)
    return status, body


# --------------------------------------------------------------------------- Track v1


def test_track_v1_identify_and_event_are_exported() -> None:
    app = make_app()
    _identify(app, "u1", email="u1@example.com", plan="basic")
    assert _event(app, "u1", "Product Viewed", id="E1", data={"sku": "s1"}, timestamp=T0 // 1000) == (200, {})
    records = export(app)
    (profile,) = of_kind(records, "profile")
    assert profile["id"] == "u1" and profile["email"] == "u1@example.com"
    assert profile["attributes"] == {"plan": "basic"}
    (event,) = of_kind(records, "event")
    assert event == {
        "kind": "event",
        "event_id": "E1",
        "name": "Product Viewed",
        "type": "event",
        "person": "u1",
        "anonymous_id": None,
        "timestamp_ms": T0,
        "received_ms": T0,
        "outcome": "accepted",
        "properties": {"sku": "s1"},
    }


@pytest.mark.parametrize("auth", ["", "Basic Zm9vOmJhcg==", "Bearer shopsim-track-key", "Basic !!!"])
def test_track_rejects_bad_credentials(auth: str) -> None:
    app = make_app()
    status, body, _ = call(app, "POST", "/api/v1/customers/u1/events", {"name": "x"}, auth=auth or "")
    assert status == 401 and body["meta"]["errors"]
    assert of_kind(export(app), "event") == []


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"", "empty"),
        (b'{"data": {}}', "'name' is required"),
        (b'{"name": 5.5e400}', "not valid JSON"),
        (b'{"name": "x", "data": [1]}', "'data' must be an object"),
        (b'{"name": "x", "timestamp": "yesterday"}', "'timestamp'"),
        (b'{"name": "x", "id": {"a": 1}}', "'id' must be a string"),
        (b'{"name": "' + b"n" * 101 + b'"}', "longer than 100 bytes"),
    ],
)
def test_track_v1_event_bad_bodies_are_400_with_errors(raw: bytes, fragment: str) -> None:
    app = make_app()
    status, body, _ = call(app, "POST", "/api/v1/customers/u1/events", raw=raw)
    assert status == 400
    assert any(fragment in message for message in body["meta"]["errors"]), body


def test_track_v1_event_data_limit_is_100000_bytes() -> None:
    app = make_app()
    small = {"name": "x", "data": {"blob": "a" * 99_000}}
    big = {"name": "x", "data": {"blob": "a" * 100_001}}
    assert call(app, "POST", "/api/v1/customers/u1/events", small)[0] == 200
    status, body, _ = call(app, "POST", "/api/v1/customers/u1/events", big)
    assert status == 400 and "100000 bytes" in body["meta"]["errors"][0]


def test_wrong_content_type_is_refused() -> None:
    app = make_app()
    status, body, _ = call(
        app,
        "POST",
        "/api/v1/customers/u1/events",
        {"name": "x"},
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert status == 415 and "content type" in body["meta"]["errors"][0]


def test_email_identifiers_are_case_insensitive_and_cio_id_resolves() -> None:
    app = make_app()
    _identify(app, "Bob@Example.com", first_name="Bob")
    _event(app, "bob@example.com", "Viewed", id="E1")
    (profile,) = of_kind(export(app), "profile")
    _event(app, f"cio_{profile['cio_id']}", "Viewed", id="E2")
    events = of_kind(export(app), "event")
    assert {e["person"] for e in events} == {"Bob@Example.com"}
    assert len(of_kind(export(app), "profile")) == 1


def test_identify_by_known_email_gives_the_person_the_path_id() -> None:
    app = make_app()
    _identify(app, "ann@example.com")
    _identify(app, "u7", email="ANN@example.com", plan="pro")
    (profile,) = of_kind(export(app), "profile")
    assert profile["id"] == "u7" and profile["attributes"] == {"plan": "pro"}


def test_timestamp_orders_attribute_updates() -> None:
    app = make_app()
    _identify(app, "u1", plan="gold", _timestamp=2000)
    _identify(app, "u1", plan="silver", _timestamp=1000)  # older update arrives later
    _identify(app, "u1", tier="x", _timestamp=1500)
    (profile,) = of_kind(export(app), "profile")
    assert profile["attributes"] == {"plan": "gold", "tier": "x"}


def test_update_only_identify_never_creates() -> None:
    app = make_app()
    _identify(app, "ghost", _update=True, plan="x")
    assert of_kind(export(app), "profile") == []


def test_delete_removes_the_person() -> None:
    app = make_app()
    _identify(app, "u1", email="u1@example.com")
    assert call(app, "DELETE", "/api/v1/customers/u1", at=T0)[0] == 200
    assert of_kind(export(app), "profile") == []


# --------------------------------------------------------------------------- dedupe


def test_a_repeated_event_id_is_a_duplicate() -> None:
    app = make_app()
    for at in (T0, T0 + 1000):
        _event(app, "u1", "Viewed", at=at, id="E1")
    outcomes = [e["outcome"] for e in of_kind(export(app), "event")]
    assert outcomes == ["accepted", "duplicate"]


def test_dedupe_window_is_configurable() -> None:
    app = make_app(dedupe_window_ms=HOUR)
    _event(app, "u1", "Viewed", at=T0, id="E1")
    _event(app, "u1", "Viewed", at=T0 + 10 * 60_000, id="E1")
    _event(app, "u1", "Viewed", at=T0 + 3 * HOUR, id="E1")
    outcomes = [e["outcome"] for e in of_kind(export(app), "event")]
    assert outcomes == ["accepted", "duplicate", "accepted"]


def test_pipelines_message_id_dedupes_too() -> None:
    app = make_app()
    msg = {"userId": "u1", "event": "Viewed", "messageId": "M1"}
    call(app, "POST", "/v1/track", msg, at=T0)
    call(app, "POST", "/v1/batch", {"batch": [{**msg, "type": "track"}]}, at=T0 + 5)
    assert [e["outcome"] for e in of_kind(export(app), "event")] == ["accepted", "duplicate"]


def test_message_id_dedupe_can_be_turned_off() -> None:
    app = make_app(dedupe_message_id=False)
    for at in (T0, T0 + 5):
        call(app, "POST", "/v1/track", {"userId": "u1", "event": "Viewed", "messageId": "M1"}, at=at)
        _event(app, "u1", "Viewed", at=at, id="T1")
    outcomes = [(e["event_id"], e["outcome"]) for e in of_kind(export(app), "event")]
    assert outcomes == [("M1", "accepted"), ("T1", "accepted"), ("M1", "accepted"), ("T1", "duplicate")]


# --------------------------------------------------------------------------- anonymous merge


def test_track_anonymous_events_merge_on_identify_with_anonymous_id() -> None:
    app = make_app()
    status, _, _ = call(
        app, "POST", "/api/v1/events", {"name": "Viewed", "anonymous_id": "a1", "id": "E1"}, at=T0
    )
    assert status == 200
    assert of_kind(export(app), "event")[0]["outcome"] == "anonymous_pending"
    _identify(app, "u1", at=T0 + 60_000, email="u1@example.com", anonymous_id="a1")
    records = export(app)
    (event,) = of_kind(records, "event")
    assert (event["outcome"], event["person"]) == ("merged_anonymous", "u1")
    assert of_kind(records, "profile")[0]["anonymous_ids"] == ["a1"]
    status, body, _ = call(app, "GET", "/v1/customers/u1/activities?type=anon_merge")
    assert status == 200 and [a["type"] for a in body["activities"]] == ["anon_merge"]


def test_a_repeated_identify_does_not_reopen_the_late_merge_window() -> None:
    app = make_app()
    _identify(app, "u1", at=T0, anonymous_id="a1")
    call(
        app,
        "POST",
        "/api/v1/events",
        {"name": "Viewed", "anonymous_id": "a1", "id": "E1"},
        at=T0 + 4 * 60_000,
    )
    call(
        app,
        "POST",
        "/api/v1/events",
        {"name": "Viewed", "anonymous_id": "a1", "id": "E2"},
        at=T0 + 6 * 60_000,
    )
    _identify(app, "u1", at=T0 + 7 * 60_000, anonymous_id="a1")
    call(
        app,
        "POST",
        "/api/v1/events",
        {"name": "Viewed", "anonymous_id": "a1", "id": "E3"},
        at=T0 + 8 * 60_000,
    )
    outcomes = [(e["event_id"], e["outcome"]) for e in of_kind(export(app), "event")]
    assert outcomes == [("E1", "merged_anonymous"), ("E2", "anonymous_pending"), ("E3", "anonymous_pending")]


def test_anonymous_events_older_than_30_days_expire() -> None:
    app = make_app()
    old = (T0 - 31 * 24 * HOUR) // 1000
    call(
        app,
        "POST",
        "/api/v1/events",
        {"name": "Viewed", "anonymous_id": "a1", "id": "E1", "timestamp": old},
        at=T0,
    )
    _identify(app, "u1", at=T0 + 1000, anonymous_id="a1")
    assert of_kind(export(app), "event")[0]["outcome"] == "expired"


def test_anonymous_id_is_not_reusable_by_another_person() -> None:
    app = make_app()
    call(app, "POST", "/api/v1/events", {"name": "Viewed", "anonymous_id": "a1", "id": "E1"}, at=T0)
    _identify(app, "u1", at=T0 + 1000, anonymous_id="a1")
    call(
        app,
        "POST",
        "/api/v1/events",
        {"name": "Viewed", "anonymous_id": "a1", "id": "E2"},
        at=T0 + 10 * 60_000,
    )
    _identify(app, "u2", at=T0 + 11 * 60_000, anonymous_id="a1")
    events = of_kind(export(app), "event")
    assert [(e["event_id"], e["person"], e["outcome"]) for e in events] == [
        ("E1", "u1", "merged_anonymous"),
        ("E2", None, "anonymous_pending"),
    ]


# --------------------------------------------------------------------------- merge_customers


def test_merge_customers_needs_exactly_one_identifier_per_side() -> None:
    app = make_app()
    status, body, _ = call(
        app,
        "POST",
        "/api/v1/merge_customers",
        {"primary": {"id": "a", "email": "a@x.com"}, "secondary": {"id": "b"}},
    )
    assert status == 400 and "exactly one" in body["meta"]["error"]


def test_merge_customers_moves_events_and_retires_the_secondary() -> None:
    app = make_app()
    _identify(app, "u1", email="u1@example.com")
    _identify(app, "u2", email="u2@example.com", plan="pro")
    _event(app, "u2", "Viewed", id="E1")
    status, _, _ = call(
        app,
        "POST",
        "/api/v1/merge_customers",
        {"primary": {"id": "u1"}, "secondary": {"email": "U2@example.com"}},
    )
    assert status == 200
    records = export(app)
    assert [p["id"] for p in of_kind(records, "profile")] == ["u1"]
    assert of_kind(records, "profile")[0]["attributes"] == {"plan": "pro"}
    (event,) = of_kind(records, "event")
    assert (event["person"], event["outcome"]) == ("u1", "merged_secondary")


def test_merge_without_primary_does_nothing() -> None:
    app = make_app()
    _identify(app, "u2", email="u2@example.com")
    call(app, "POST", "/api/v1/merge_customers", {"primary": {"id": "nobody"}, "secondary": {"id": "u2"}})
    assert [p["id"] for p in of_kind(export(app), "profile")] == ["u2"]


# --------------------------------------------------------------------------- sends and drops


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda app: None, ""),
        (lambda app: call(app, "POST", "/api/v1/customers/u1/suppress", at=T0 + 1000), "suppressed"),
        (lambda app: _identify(app, "u1", at=T0 + 1000, unsubscribed="TRUE"), "unsubscribed"),
        (lambda app: call(app, "DELETE", "/api/v1/customers/u1", at=T0 + 1000), "deleted"),
    ],
)
def test_a_due_message_is_sent_or_dropped_with_the_reason(setup, reason: str) -> None:
    app = make_app(CART)
    _identify(app, "u1", email="u1@example.com")
    _event(app, "u1", "Added to Cart", at=T0, id="E1", data={"cart_total": 30})
    setup(app)
    assert call(app, "POST", "/_shopsim/clock", {"now_ms": T0 + 2 * HOUR})[0] == 200
    (journey,) = of_kind(export(app), "journey")
    assert journey["outcome"] == ("dropped" if reason else "sent")
    assert (
        journey["reason"] == reason and journey["at_ms"] == T0 + HOUR and journey["trigger_event_id"] == "E1"
    )


def test_person_without_email_gets_a_dropped_message() -> None:
    app = make_app(CART)
    _event(app, "u1", "Added to Cart", id="E1", data={"cart_total": 30})
    call(app, "POST", "/_shopsim/clock", {"now_ms": T0 + 2 * HOUR})
    (journey,) = of_kind(export(app), "journey")
    assert (journey["outcome"], journey["reason"]) == ("dropped", "no_email")


def test_exit_records_the_exit_event() -> None:
    app = make_app(CART)
    _identify(app, "u1", email="u1@example.com")
    _event(app, "u1", "Added to Cart", at=T0, id="E1", data={"cart_total": 30})
    _event(app, "u1", "Order Completed", at=T0 + 60_000, id="E2")
    call(app, "POST", "/_shopsim/clock", {"now_ms": T0 + 2 * HOUR})
    (journey,) = of_kind(export(app), "journey")
    assert (journey["outcome"], journey["exit_event_id"], journey["at_ms"]) == ("exited", "E2", T0 + 60_000)
    assert journey["reason"] == "exit_on:Order Completed"


def test_skips_record_the_reason() -> None:
    app = make_app(
        campaigns(
            c={"trigger": {"event": "Added to Cart", "where": ["cart_total >= 20"]}, "frequency": "once"}
        )
    )
    _identify(app, "u1", email="u1@example.com")
    call(
        app,
        "POST",
        "/api/v1/events",
        {"name": "Added to Cart", "anonymous_id": "a1", "data": {"cart_total": 30}},
        at=T0,
    )
    _event(app, "u1", "Added to Cart", at=T0, id="F", data={"cart_total": 5})
    _event(
        app, "u1", "Added to Cart", at=T0, id="S", data={"cart_total": 30}, timestamp=(T0 - 80 * HOUR) // 1000
    )
    _event(app, "u1", "Added to Cart", at=T0, id="OK", data={"cart_total": 30})
    _event(app, "u1", "Added to Cart", at=T0, id="Q", data={"cart_total": 30})
    skips = {s["trigger_event_id"]: s["reason"] for s in of_kind(export(app), "skip")}
    assert {k: v for k, v in skips.items() if k in ("F", "S", "Q")} == {
        "F": "filter",
        "S": "stale",
        "Q": "frequency",
    }
    assert "anonymous" in skips.values()


# --------------------------------------------------------------------------- clocks


def test_virtual_clock_never_goes_backwards() -> None:
    app = make_app(CART)
    _identify(app, "u1", at=T0 + 10_000, email="u1@example.com")
    _event(app, "u1", "Viewed", at=T0, id="E1")  # an older clock header: processed at the current time
    assert of_kind(export(app), "event")[0]["received_ms"] == T0 + 10_000
    status, body, _ = call(app, "POST", "/_shopsim/clock", {"now_ms": T0})
    assert status == 409 and body["now_ms"] == T0 + 10_000
    status, body, _ = call(app, "POST", "/_shopsim/clock", {"advance_ms": 5})
    assert (status, body["now_ms"]) == (200, T0 + 10_005)
    assert call(app, "GET", "/_shopsim/clock")[1]["now_ms"] == T0 + 10_005


def test_a_request_fires_due_messages_before_it_is_processed() -> None:
    app = make_app(CART)
    _identify(app, "u1", email="u1@example.com")
    _event(app, "u1", "Added to Cart", at=T0, id="E1", data={"cart_total": 30})
    # the purchase arrives exactly when the message is due: the send happens first
    _event(app, "u1", "Order Completed", at=T0 + HOUR, id="E2")
    (journey,) = of_kind(export(app), "journey")
    assert journey["outcome"] == "sent"


@pytest.mark.parametrize("value", ["soon", "1.5", "99999999999999999999"])
def test_malformed_clock_header_is_400(value: str) -> None:
    app = make_app()
    status, body, _ = call(
        app, "POST", "/v1/track", {"userId": "u", "event": "x"}, headers={"x-shopsim-clock": value}
    )
    assert status == 400 and "X-Shopsim-Clock" in body["meta"]["errors"][0]


def test_wall_clock_rejects_clock_control() -> None:
    app = make_app(clock="wall")
    assert call(app, "POST", "/_shopsim/clock", {"now_ms": T0})[0] == 409


# --------------------------------------------------------------------------- Track v2


def test_v2_batch_answers_207_with_per_item_errors_and_applies_the_rest() -> None:
    app = make_app()
    batch = [
        {
            "type": "person",
            "identifiers": {"id": "u1"},
            "action": "identify",
            "attributes": {"email": "u1@example.com"},
        },
        {"type": "person", "identifiers": {"id": "u1"}, "action": "event", "name": "Viewed", "id": "E1"},
        {"type": "person", "identifiers": {"id": "u1", "email": "x@y.z"}, "action": "event", "name": "Bad"},
        {"type": "person", "identifiers": {"id": "u1"}, "action": "event"},
        {"type": "robot", "action": "identify"},
        {
            "type": "person",
            "identifiers": {"id": "u1"},
            "action": "page",
            "name": "/pricing",
            "attributes": {"url": "/p"},
        },
    ]
    status, body, _ = call(app, "POST", "/api/v2/batch", {"batch": batch}, at=T0)
    assert status == 207
    assert [e["batch_index"] for e in body["errors"]] == [2, 3, 4]
    assert {"reason", "field", "message"} <= set(body["errors"][0])
    events = of_kind(export(app), "event")
    assert next((e["event_id"], e["type"]) for e in events) == ("E1", "event")
    assert [e["type"] for e in events] == ["event", "page"]


def test_v2_entity_errors_and_size_limits() -> None:
    app = make_app()
    status, body, _ = call(app, "POST", "/api/v2/entity", {"type": "person", "action": "identify"})
    assert status == 400 and body["errors"][0]["field"] == "identifiers"
    big = {
        "type": "person",
        "identifiers": {"id": "u1"},
        "action": "event",
        "name": "x",
        "attributes": {"b": "a" * 33_000},
    }
    assert call(app, "POST", "/api/v2/entity", big)[0] == 400
    status, body, _ = call(app, "POST", "/api/v2/batch", {"batch": [big] * 16})
    assert status == 400 and body["errors"][0]["reason"] == "too_large"
    status, body, _ = call(app, "POST", "/api/v2/batch", {"batch": [big]})
    assert status == 207 and body["errors"][0]["reason"] == "too_large"


# --------------------------------------------------------------------------- Pipelines


def test_pipelines_calls_and_bearer_auth() -> None:
    app = make_app()
    assert (
        call(app, "POST", "/v1/identify", {"userId": "u1", "traits": {"email": "u1@example.com"}})[0] == 200
    )
    call(
        app,
        "POST",
        "/v1/page",
        {"userId": "u1", "name": "Home", "properties": {"url": "https://x/"}},
        auth="Bearer shopsim-pipelines-key",
    )
    call(app, "POST", "/v1/screen", {"anonymousId": "a1", "name": "Cart"})
    call(app, "POST", "/v1/group", {"userId": "u1", "groupId": "g1"})
    call(app, "POST", "/v1/alias", {"userId": "u1", "previousId": "a1"})
    assert [(e["type"], e["name"]) for e in of_kind(export(app), "event")] == [
        ("page", "Home"),
        ("screen", "Cart"),
    ]


def test_pipelines_is_permissive_unless_strict() -> None:
    app = make_app()
    bad_auth = "Basic " + "d3Jvbmc6"  # "wrong:"
    assert call(app, "POST", "/v1/track", {"userId": "u1", "event": "x"}, auth=bad_auth)[:2] == (200, {})
    assert call(app, "POST", "/v1/track", {"event": "no ids"})[:2] == (200, {})
    assert call(app, "POST", "/v1/track", raw=b"{nope")[:2] == (200, {})
    assert of_kind(export(app), "event") == []
    dropped = call(app, "GET", "/_shopsim/stats")[1]["dropped_items"]
    assert dropped == {"unauthorized": 1, "required": 1, "malformed": 1}
    strict = {"x-strict-mode": "1"}
    assert (
        call(app, "POST", "/v1/track", {"userId": "u1", "event": "x"}, auth=bad_auth, headers=strict)[0]
        == 401
    )
    status, body, _ = call(app, "POST", "/v1/track", {"event": "no ids"}, headers=strict)
    assert status == 400 and "userId" in body["meta"]["errors"][0]
    status, body, _ = call(
        app, "POST", "/v1/batch", {"batch": [{"type": "track", "userId": "u"}, 5]}, headers=strict
    )
    assert status == 400 and len(body["meta"]["errors"]) == 2
    assert of_kind(export(app), "event") == []


def test_pipelines_oversize_items_are_dropped_and_the_rest_kept() -> None:
    app = make_app()
    big = {"type": "track", "userId": "u1", "event": "Big", "properties": {"b": "a" * 33_000}}
    small = {"type": "track", "userId": "u1", "event": "Small", "messageId": "S1"}
    assert call(app, "POST", "/v1/batch", {"batch": [big, small]})[:2] == (200, {})
    assert [e["name"] for e in of_kind(export(app), "event")] == ["Small"]
    assert call(app, "POST", "/v1/track", big)[:2] == (200, {})
    assert call(app, "POST", "/v1/batch", {"batch": [small] * 8000})[:2] == (
        200,
        {},
    )  # > 500 KB: dropped whole
    assert len(of_kind(export(app), "event")) == 1
    assert call(app, "POST", "/v1/track", big, headers={"x-strict-mode": "1"})[0] == 400


def test_browser_style_write_key_in_a_text_plain_body() -> None:
    app = make_app()
    headers = {"content-type": "text/plain"}
    body = {"writeKey": "shopsim-pipelines-key", "anonymousId": "a1", "event": "Viewed", "messageId": "B1"}
    assert call(app, "POST", "/v1/t", body, auth="", headers=headers)[:2] == (200, {})
    batch = {
        "writeKey": "shopsim-pipelines-key",
        "batch": [{"type": "page", "anonymousId": "a1", "name": "Home"}],
    }
    assert call(app, "POST", "/v1/b", batch, auth="", headers=headers)[0] == 200
    assert (
        call(app, "POST", "/v1/t", {**body, "writeKey": "nope", "messageId": "B2"}, auth="", headers=headers)[
            0
        ]
        == 200
    )
    assert next(e["event_id"] for e in of_kind(export(app), "event")) == "B1"
    assert len(of_kind(export(app), "event")) == 2


def test_gzip_bodies_are_accepted_and_bad_gzip_is_400() -> None:
    app = make_app()
    assert (
        call(app, "POST", "/v1/track", {"userId": "u1", "event": "Z", "messageId": "G1"}, gzip_body=True)[0]
        == 200
    )
    assert (
        call(app, "POST", "/api/v1/customers/u1/events", {"name": "Z", "id": "G2"}, gzip_body=True)[0] == 200
    )
    status, body, _ = call(
        app, "POST", "/api/v1/customers/u1/events", raw=b"not gzip", headers={"content-encoding": "gzip"}
    )
    assert status == 400 and "gzip" in body["meta"]["errors"][0]
    bomb = gzip.compress(b"{" + b" " * (9 * 1024 * 1024) + b"}")
    status, _, _ = call(
        app, "POST", "/api/v1/customers/u1/events", raw=bomb, headers={"content-encoding": "gzip"}
    )
    assert status == 413
    assert [e["event_id"] for e in of_kind(export(app), "event")] == ["G1", "G2"]


# --------------------------------------------------------------------------- App API and export


def _with_a_send(app) -> None:
    _identify(app, "u1", email="u1@example.com")
    _event(app, "u1", "Added to Cart", at=T0, id="E1", data={"cart_total": 30})
    call(app, "POST", "/_shopsim/clock", {"now_ms": T0 + 2 * HOUR})


def test_app_api_needs_the_bearer_app_key() -> None:
    app = make_app(CART)
    assert call(app, "GET", "/v1/messages", auth="")[0] == 401
    assert call(app, "GET", "/v1/messages", auth=PIPE_AUTH)[0] == 401
    assert call(app, "GET", "/v1/messages", auth=APP_AUTH)[0] == 200


def test_activities_messages_and_metrics() -> None:
    app = make_app(CART)
    _with_a_send(app)
    for n in range(5):
        _event(app, "u1", "Viewed", at=T0 + 3 * HOUR, id=f"V{n}")
    status, body, _ = call(app, "GET", "/v1/customers/u1/activities?limit=3")
    assert status == 200 and len(body["activities"]) == 3 and body["next"] == "3"
    rest = call(app, "GET", f"/v1/customers/u1/activities?limit=100&start={body['next']}")[1]
    types = [a["type"] for a in body["activities"] + rest["activities"]]
    assert types.count("event") == 6 and types.count("sent_email") == 1
    sent = call(app, "GET", "/v1/customers/u1@example.com/activities?id_type=email&type=sent_email")[1]
    (activity,) = sent["activities"]
    assert activity["data"]["trigger_event_id"] == "E1" and activity["customer_identifiers"]["id"] == "u1"
    assert call(app, "GET", "/v1/customers/nobody/activities")[0] == 404
    messages = call(app, "GET", "/v1/messages")[1]["messages"]
    (message,) = messages
    assert (message["campaign_id"], message["trigger_event_id"], message["recipient"]) == (
        1,
        "E1",
        "u1@example.com",
    )
    assert message["metrics"] == {"sent": (T0 + HOUR) // 1000}
    assert call(app, "GET", f"/v1/messages/{message['id']}")[1]["message"]["id"] == message["id"]
    assert call(app, "GET", "/v1/campaigns/1/metrics")[0] == 400
    metrics = call(app, "GET", "/v1/campaigns/1/metrics?version=2&res=hours")[1]["metric"]["series"]
    assert sum(metrics["sent"]) == 1 and sum(metrics["dropped"]) == 0
    assert call(app, "GET", "/v1/campaigns")[1]["campaigns"][0]["name"] == "cart_recovery"
    assert call(app, "GET", "/v1/campaigns/99/metrics?version=2")[0] == 404


def test_export_records_have_the_interface_fields() -> None:
    app = make_app(CART)
    _with_a_send(app)
    _event(app, "u1", "Added to Cart", at=T0 + 3 * HOUR, id="E2", data={"cart_total": 1})
    records = export(app)
    keys = {r["kind"]: set(r) for r in records}
    assert keys["profile"] >= {"kind", "cio_id", "id", "email", "anonymous_ids", "created_ms", "attributes"}
    assert keys["event"] >= {
        "kind",
        "event_id",
        "name",
        "type",
        "person",
        "anonymous_id",
        "timestamp_ms",
        "received_ms",
        "outcome",
        "properties",
    }
    assert keys["journey"] >= {
        "kind",
        "campaign",
        "campaign_id",
        "person",
        "trigger_event_id",
        "entered_ms",
        "outcome",
        "at_ms",
        "exit_event_id",
        "reason",
    }
    assert keys["skip"] >= {
        "kind",
        "campaign",
        "campaign_id",
        "person",
        "trigger_event_id",
        "at_ms",
        "reason",
    }
    assert {r["kind"] for r in export(app, kinds="journey")} == {"journey"}
    assert call(app, "GET", "/_shopsim/export?kinds=bogus")[0] == 400


def test_unknown_routes_and_methods() -> None:
    app = make_app()
    assert call(app, "GET", "/nothing")[0] == 404
    assert call(app, "GET", "/api/v1/customers/u1/events")[0] == 405
    assert call(app, "POST", "/v1/nope", {})[0] == 404
    assert call(app, "GET", "/v1/track")[0] == 405
    assert call(app, "POST", "/v1/messages")[0] == 405
    assert call(app, "GET", "/_shopsim/health")[0] == 200
    region = call(app, "GET", "/api/v1/accounts/region")[1]
    assert region["region"] == "us"


# --------------------------------------------------------------------------- faults, webhooks, durability


def test_error_rate_answers_500_and_503_without_storing() -> None:
    app = make_app(faults=ServerFaults(error_rate=1.0))
    statuses = [
        call(app, "POST", "/v1/track", {"userId": "u", "event": "x", "messageId": f"m{i}"})[0]
        for i in range(4)
    ]
    assert statuses == [500, 503, 500, 503]
    assert of_kind(export(app), "event") == []


def test_error_rate_share_is_close_to_the_setting() -> None:
    faults = ServerFaults(error_rate=0.2, seed=7)
    failures = sum(faults.decide().status is not None for _ in range(5000))
    assert 800 < failures < 1200


def test_rate_limit_answers_429_with_retry_after() -> None:
    app = make_app(faults=ServerFaults(rate_limit=2))
    responses = [call(app, "POST", "/v1/track", {"userId": "u", "event": "x"}) for _ in range(4)]
    assert [r[0] for r in responses[:2]] == [200, 200]
    throttled = responses[-1][2]
    assert throttled.status == 429 and int(throttled.headers["Retry-After"]) >= 1


def test_latency_flag_parses_distributions() -> None:
    assert parse_latency("50ms").fixed == 50
    assert parse_latency("{lognormal: {median: 20ms, p99: 400ms}}").lognormal is not None
    with pytest.raises(ValueError, match="latency"):
        parse_latency("{bogus: 1}")
    # one line each, in the validator's own words (no parser dump, no pydantic help URL)
    for bad, reason in [("[1,2", "expected ','"), ("{bogus: 1}", "Extra inputs are not permitted")]:
        with pytest.raises(ValueError) as info:
            parse_latency(bad)
        assert reason in str(info.value) and "\n" not in str(info.value)
        assert "errors.pydantic.dev" not in str(info.value)
    faults = ServerFaults(latency=parse_latency("{uniform: {min: 10ms, max: 20ms}}"))
    delays = [faults.decide().delay_s for _ in range(200)]
    assert all(0.01 <= d <= 0.02 for d in delays) and len(set(delays)) > 100


def test_webhook_signature_is_hmac_sha256_of_v0_ts_body() -> None:
    import hashlib
    import hmac

    body = b'{"metric":"sent"}'
    expected = hmac.new(b"secret", b"v0:1700000000:" + body, hashlib.sha256).hexdigest()
    assert sign("secret", 1700000000, body) == expected
    assert verify("secret", "1700000000", body, expected)
    assert not verify("other", "1700000000", body, expected)


def test_webhook_payload_carries_campaign_trigger_and_identifiers() -> None:
    from generator.emulator.campaigns import Delivery

    delivery = Delivery(
        journey_seq=3,
        campaign="c",
        campaign_id=7,
        delivery_id="dlv3",
        metric="dropped",
        at_ms=T0,
        trigger_event_id="E1",
        identifiers={"id": "u1", "email": None, "cio_id": "abc"},
        recipient=None,
        reason="no_email",
        message="Cart",
    )
    data = payload(delivery)
    assert (data["metric"], data["object_type"], data["timestamp"]) == ("dropped", "email", T0 // 1000)
    assert data["data"]["campaign_id"] == 7 and data["data"]["trigger_event_id"] == "E1"
    assert data["data"]["identifiers"]["id"] == "u1" and data["data"]["failure_message"] == "no_email"


def test_state_survives_a_restart_on_the_same_db(tmp_path: Path) -> None:
    db = tmp_path / "emu.db"
    app = make_app(CART, db=db)
    _identify(app, "u1", email="u1@example.com", anonymous_id="a1")
    _event(app, "u1", "Added to Cart", at=T0 + 1000, id="E1", data={"cart_total": 30})
    app.store.close()
    again = make_app(CART, db=db)
    assert again.clock.current() == T0 + 1000
    _event(again, "u1", "Added to Cart", at=T0 + 2000, id="E1", data={"cart_total": 30})  # still a duplicate
    call(again, "POST", "/_shopsim/clock", {"now_ms": T0 + 2 * HOUR})
    records = export(again)
    assert [e["outcome"] for e in of_kind(records, "event")] == ["accepted", "duplicate"]
    (journey,) = of_kind(records, "journey")
    assert (journey["outcome"], journey["at_ms"]) == ("sent", T0 + 1000 + HOUR)
    assert of_kind(records, "profile")[0]["anonymous_ids"] == ["a1"]
    again.store.close()


# --------------------------------------------------------------------------- independence


FORBIDDEN = (
    "generator.simulate",
    "generator.faults",
    "generator.wire",
    "generator.expect",
    "generator.deliver",
    "generator.check",
    "generator.observe",
)


def test_the_emulator_never_imports_the_other_side() -> None:
    package = Path(__file__).resolve().parents[2] / "generator" / "emulator"
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"


# --------------------------------------------------------------------------- name limits, v2 anonymous ids


def _long_url(size: int) -> str:
    head = "https://shop.example.com/p/sku?utm_source=instagram&pad="
    return head + "x" * (size - len(head))


def test_track_v1_page_and_screen_names_are_urls_up_to_2000_bytes() -> None:
    app = make_app()
    for n, url in enumerate((_long_url(340), _long_url(PAGE_NAME_LIMIT))):
        status, _ = _event(app, "u1", url, type="page", id=f"P{n}")
        assert status == 200
        status, _, _ = call(
            app, "POST", "/api/v1/events", {"name": url, "type": "page", "anonymous_id": "a1", "id": f"A{n}"}
        )
        assert status == 200
    assert _event(app, "u1", "S" * 500, type="screen", id="S1")[0] == 200
    status, body = _event(app, "u1", _long_url(PAGE_NAME_LIMIT + 1), type="page", id="P9")
    assert status == 400 and "longer than 2000 bytes" in body["meta"]["errors"][0]
    # the documented 100-byte limit still holds for events, including unknown types (= event)
    for kind in ("event", "view"):
        status, body = _event(app, "u1", "n" * 101, type=kind, id=f"E-{kind}")
        assert status == 400 and "longer than 100 bytes" in body["meta"]["errors"][0]
    pages = [(e["event_id"], e["type"], len(e["name"])) for e in of_kind(export(app), "event")]
    assert pages == [
        ("P0", "page", 340),
        ("A0", "page", 340),
        ("P1", "page", PAGE_NAME_LIMIT),
        ("A1", "page", PAGE_NAME_LIMIT),
        ("S1", "screen", 500),
    ]


def test_track_v2_page_names_up_to_2000_bytes_and_event_names_up_to_100() -> None:
    app = make_app()

    def op(action: str, name: str, event_id: str) -> dict:
        return {"type": "person", "identifiers": {"id": "u1"}, "action": action, "name": name, "id": event_id}

    batch = [
        op("page", _long_url(PAGE_NAME_LIMIT), "P1"),
        op("screen", "S" * 300, "S1"),
        op("event", "n" * 100, "E1"),
        op("event", "n" * 101, "E2"),
        op("page", _long_url(PAGE_NAME_LIMIT + 1), "P2"),
    ]
    status, body, _ = call(app, "POST", "/api/v2/batch", {"batch": batch}, at=T0)
    assert status == 207
    assert [(e["batch_index"], e["field"], e["reason"]) for e in body["errors"]] == [
        (3, "name", "too_long"),
        (4, "name", "too_long"),
    ]
    assert [e["event_id"] for e in of_kind(export(app), "event")] == ["P1", "S1", "E1"]


def _v2_anon(action: str, anonymous_id: str, event_id: str, name: str = "Product Viewed") -> dict:
    return {
        "type": "person",
        "identifiers": {"anonymous_id": anonymous_id},
        "action": action,
        "name": name,
        "id": event_id,
        "timestamp": T0 // 1000,
        "attributes": {"sku": "s1"},
    }


def test_track_v2_anonymous_id_identifies_events_that_merge_on_identify() -> None:
    app = make_app()
    batch = [
        _v2_anon("page", "a1", "P1", name=_long_url(300)),
        _v2_anon("event", "a1", "E1"),
        _v2_anon("screen", "a1", "S1", name="Home"),
    ]
    status, body, _ = call(app, "POST", "/api/v2/batch", {"batch": batch}, at=T0)
    assert (status, body) == (200, {})
    events = of_kind(export(app), "event")
    assert [(e["event_id"], e["type"], e["person"], e["anonymous_id"], e["outcome"]) for e in events] == [
        ("P1", "page", None, "a1", "anonymous_pending"),
        ("E1", "event", None, "a1", "anonymous_pending"),
        ("S1", "screen", None, "a1", "anonymous_pending"),
    ]
    identify = {
        "type": "person",
        "identifiers": {"id": "u1"},
        "action": "identify",
        "attributes": {"email": "u1@example.com", "anonymous_id": "a1"},
    }
    assert call(app, "POST", "/api/v2/entity", identify, at=T0 + 60_000)[:2] == (200, {})
    # within five minutes of the identify, a late anonymous event joins the person on arrival
    late = _v2_anon("event", "a1", "E2")
    assert call(app, "POST", "/api/v2/entity", late, at=T0 + 120_000)[:2] == (200, {})
    # the same id again (any API) is a duplicate, as for Track v1
    again = {"name": "Product Viewed", "anonymous_id": "a1", "id": "E1"}
    assert call(app, "POST", "/api/v1/events", again, at=T0 + 130_000)[0] == 200
    records = export(app)
    (profile,) = of_kind(records, "profile")
    assert (profile["id"], profile["email"], profile["anonymous_ids"]) == ("u1", "u1@example.com", ["a1"])
    outcomes = [(e["event_id"], e["person"], e["outcome"]) for e in of_kind(records, "event")]
    assert outcomes == [
        ("P1", "u1", "merged_anonymous"),
        ("E1", "u1", "merged_anonymous"),
        ("S1", "u1", "merged_anonymous"),
        ("E2", "u1", "merged_anonymous"),
        ("E1", None, "duplicate"),
    ]


def test_track_v2_anonymous_id_is_refused_where_it_cannot_apply() -> None:
    app = make_app()
    anon = {"anonymous_id": "a1"}
    batch = [
        {"type": "person", "identifiers": anon, "action": "identify", "attributes": {"email": "a@x.com"}},
        {"type": "person", "identifiers": anon, "action": "delete"},
        {"type": "person", "identifiers": anon, "action": "suppress"},
        {"type": "person", "identifiers": anon, "action": "add_device", "device": {"token": "t"}},
        {"type": "person", "action": "merge", "primary": anon, "secondary": {"id": "u2"}},
        {"type": "person", "identifiers": {"anonymous_id": "a1", "id": "u1"}, "action": "event", "name": "X"},
        {"type": "person", "identifiers": {"anonymous_id": ""}, "action": "event", "name": "X"},
        {"type": "person", "identifiers": {"anonymous_id": "a" * 151}, "action": "page", "name": "X"},
        _v2_anon("event", "a1", "OK1"),
    ]
    status, body, _ = call(app, "POST", "/api/v2/batch", {"batch": batch}, at=T0)
    assert status == 207
    errors = {e["batch_index"]: e for e in body["errors"]}
    assert sorted(errors) == list(range(8))
    for index in range(4):
        assert errors[index]["field"] == "identifiers.anonymous_id"
        assert "only addresses event, page and screen" in errors[index]["message"]
    assert "attributes.anonymous_id" in errors[0]["message"]  # says how to merge it instead
    assert errors[4]["field"] == "primary.anonymous_id"
    assert "exactly one of id, email or cio_id" in errors[4]["message"]
    assert errors[5]["field"] == "identifiers"
    assert (errors[6]["field"], errors[6]["reason"]) == ("identifiers.anonymous_id", "required")
    assert (errors[7]["field"], errors[7]["reason"]) == ("identifiers.anonymous_id", "too_long")
    records = export(app)
    assert of_kind(records, "profile") == []
    assert [(e["event_id"], e["outcome"]) for e in of_kind(records, "event")] == [
        ("OK1", "anonymous_pending")
    ]
    status, body, _ = call(app, "POST", "/api/v2/entity", batch[1], at=T0)
    assert status == 400 and body["errors"][0]["field"] == "identifiers.anonymous_id"


# --------------------------------------------------------------------------- per-item arrivals


def _track(user: str, name: str, event_id: str, **props: object) -> dict:
    return {"type": "track", "userId": user, "event": name, "messageId": event_id, "properties": props}


def _two_carts(app) -> None:
    """u1 and u2 each enter cart_recovery at T0 (their sends are due at T0 + 1 h)."""
    for user in ("u1", "u2"):
        _identify(app, user, email=f"{user}@example.com")
        _event(app, user, "Added to Cart", at=T0, id=f"C-{user}", data={"cart_total": 30})


def _arrivals(*offsets: int, clock: int = T0) -> dict[str, str]:
    return {"x-shopsim-clock": str(clock), "x-shopsim-arrivals": ",".join(map(str, offsets))}


def test_batch_arrivals_process_each_item_at_its_own_time() -> None:
    app = make_app(CART)
    _two_carts(app)
    # one request: u1's purchase 200 ms before its send is due, u2's 200 ms after
    batch = [_track("u1", "Order Completed", "O1"), _track("u2", "Order Completed", "O2")]
    status, _, _ = call(
        app, "POST", "/v1/batch", {"batch": batch}, headers=_arrivals(0, 400, clock=T0 + HOUR - 200)
    )
    assert status == 200
    records = export(app)
    journeys = {j["person"]: j for j in of_kind(records, "journey")}
    assert journeys["u1"]["outcome"] == "exited" and journeys["u1"]["exit_event_id"] == "O1"
    assert journeys["u2"]["outcome"] == "sent" and journeys["u2"]["at_ms"] == T0 + HOUR
    received = {e["event_id"]: e["received_ms"] for e in of_kind(records, "event")}
    assert received["O1"] == T0 + HOUR - 200 and received["O2"] == T0 + HOUR + 200
    assert call(app, "GET", "/_shopsim/clock")[1]["now_ms"] == T0 + HOUR + 200


def test_without_arrivals_a_batch_is_processed_at_its_clock() -> None:
    app = make_app(CART)
    _two_carts(app)
    batch = [_track("u1", "Order Completed", "O1"), _track("u2", "Order Completed", "O2")]
    call(app, "POST", "/v1/batch", {"batch": batch}, at=T0 + HOUR - 200)
    # both purchases processed at the first one's clock: both exit (the pre-header behaviour)
    assert {j["outcome"] for j in of_kind(export(app), "journey")} == {"exited"}


def test_track_v2_batch_arrivals_skip_invalid_items_and_keep_the_rest_in_place() -> None:
    app = make_app()
    ok = {"type": "person", "identifiers": {"id": "u1"}, "action": "event", "name": "Viewed"}
    bad = {"type": "robot", "action": "identify"}
    batch = [{**ok, "id": "E1"}, bad, {**ok, "id": "E3"}, bad]
    status, body, _ = call(app, "POST", "/api/v2/batch", {"batch": batch}, headers=_arrivals(0, 10, 20, 30))
    assert status == 207 and [e["batch_index"] for e in body["errors"]] == [1, 3]
    received = {e["event_id"]: e["received_ms"] for e in of_kind(export(app), "event")}
    assert received == {"E1": T0, "E3": T0 + 20}
    # the clock ends at the last item's arrival, even though that item was invalid
    assert call(app, "GET", "/_shopsim/clock")[1]["now_ms"] == T0 + 30


def test_browser_batch_and_single_calls_take_arrivals_too() -> None:
    app = make_app()
    body = {"batch": [_track("u1", "Viewed", "E1"), _track("u1", "Viewed", "E2")]}
    assert call(app, "POST", "/v1/b", body, headers=_arrivals(5, 7))[0] == 200
    assert call(app, "POST", "/v1/track", _track("u1", "Viewed", "E3"), headers=_arrivals(9))[0] == 200
    status = call(
        app, "POST", "/api/v1/customers/u1/events", {"name": "Viewed", "id": "E4"}, headers=_arrivals(11)
    )[0]
    assert status == 200
    received = {e["event_id"]: e["received_ms"] for e in of_kind(export(app), "event")}
    assert received == {"E1": T0 + 5, "E2": T0 + 7, "E3": T0 + 9, "E4": T0 + 11}


@pytest.mark.parametrize(
    ("path", "headers", "fragment"),
    [
        ("/v1/batch", _arrivals(0, 5, 9), "3 offsets but the body has 2 items"),
        ("/v1/batch", _arrivals(0), "1 offsets but the body has 2 items"),
        ("/api/v2/batch", _arrivals(0, 1, 2), "3 offsets but the body has 2 items"),
        ("/v1/batch", _arrivals(5, 3), "must not decrease"),
        ("/v1/batch", {"x-shopsim-clock": str(T0), "x-shopsim-arrivals": "0,-1"}, "non-negative"),
        ("/v1/batch", {"x-shopsim-clock": str(T0), "x-shopsim-arrivals": "0,,1"}, "item 1"),
        ("/v1/batch", {"x-shopsim-clock": str(T0), "x-shopsim-arrivals": "0,1.5"}, "integer"),
        ("/v1/batch", {"x-shopsim-clock": str(T0), "x-shopsim-arrivals": "0,99999999999999"}, "item 1"),
        ("/v1/batch", {"x-shopsim-arrivals": "0,1"}, "needs X-Shopsim-Clock"),
        ("/v1/track", _arrivals(0, 1), "one item"),
        ("/api/v1/customers/u1/events", _arrivals(0, 1), "one item"),
    ],
)
def test_bad_arrivals_header_is_400_and_nothing_is_stored(path: str, headers: dict, fragment: str) -> None:
    app = make_app()
    if path == "/api/v2/batch":
        item = {"type": "person", "identifiers": {"id": "u1"}, "action": "event", "name": "Viewed"}
        body: dict = {"batch": [{**item, "id": "E1"}, {**item, "id": "E2"}]}
    elif path == "/v1/batch":
        body = {"batch": [_track("u1", "Viewed", "E1"), _track("u1", "Viewed", "E2")]}
    elif path == "/v1/track":
        body = _track("u1", "Viewed", "E1")
    else:
        body = {"name": "Viewed", "id": "E1"}
    status, answer, _ = call(app, "POST", path, body, headers=headers)
    assert status == 400, answer
    assert fragment in " ".join(answer["meta"]["errors"])
    assert of_kind(export(app), "event") == []
    stats = call(app, "GET", "/_shopsim/stats")[1]
    assert stats["dropped_items"] == {} and stats["webhook_outbox"] == {}


def test_wall_clock_checks_arrivals_but_processes_at_the_wall_time() -> None:
    app = make_app(clock="wall")
    body = {"batch": [_track("u1", "Viewed", "E1"), _track("u1", "Viewed", "E2")]}
    assert call(app, "POST", "/v1/batch", body, headers=_arrivals(0, 1, 2))[0] == 400
    assert call(app, "POST", "/v1/batch", body, headers=_arrivals(0, 3_600_000))[0] == 200
    received = [e["received_ms"] for e in of_kind(export(app), "event")]
    assert len(received) == 2 and received[1] - received[0] < 3_600_000


def test_arrivals_clock_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "emu.sqlite"
    app = make_app(CART, db=db)
    _two_carts(app)
    batch = [_track("u1", "Viewed", "V1"), _track("u2", "Viewed", "V2")]
    assert call(app, "POST", "/v1/batch", {"batch": batch}, headers=_arrivals(0, HOUR + 5))[0] == 200
    app.store.close()
    again = make_app(CART, db=db)
    assert call(again, "GET", "/_shopsim/clock")[1]["now_ms"] == T0 + HOUR + 5
    assert {j["outcome"] for j in of_kind(export(again), "journey")} == {"sent"}
    again.store.close()


@given(st.text(max_size=60))
def test_parsing_any_arrivals_header_either_succeeds_or_is_a_clock_error(text: str) -> None:
    try:
        offsets = parse_arrivals_header(text)
    except ClockError:
        return
    assert offsets is None or (all(o >= 0 for o in offsets) and list(offsets) == sorted(offsets))


_STEP = st.tuples(
    st.sampled_from(["u1", "u2", "u3"]),
    st.sampled_from(["Added to Cart", "Order Completed", "Product Viewed"]),
    st.integers(0, 40 * 60_000),
)


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(_STEP, min_size=1, max_size=12), tail=st.integers(0, 2 * HOUR))
def test_a_batch_with_arrivals_equals_one_request_per_item(steps: list, tail: int) -> None:
    """Per-item arrivals make a batch indistinguishable from sending its items one by one."""
    items, arrivals, at = [], [], T0 + HOUR - 30 * 60_000
    for n, (user, name, gap) in enumerate(steps):
        at += gap
        items.append(_track(user, name, f"E{n}", cart_total=30))
        arrivals.append(at)
    apps = make_app(CART), make_app(CART)
    for app in apps:
        _two_carts(app)
        _identify(app, "u3", email="u3@example.com")
    batched, alone = apps
    status, _, _ = call(
        batched,
        "POST",
        "/v1/batch",
        {"batch": items},
        headers=_arrivals(*(a - arrivals[0] for a in arrivals), clock=arrivals[0]),
    )
    assert status == 200
    for item, arrival in zip(items, arrivals, strict=True):
        assert call(alone, "POST", "/v1/track", item, at=arrival)[0] == 200
    end = arrivals[-1] + tail + 2 * HOUR
    for app in apps:
        assert call(app, "POST", "/_shopsim/clock", {"now_ms": end})[0] == 200
    assert export(batched) == export(alone)


def test_event_index_is_the_event_records_as_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # The checker reads ``event_index`` instead of ``event`` lines: same ids, people and outcomes,
    # chunked, and sent only when asked for.
    import generator.emulator.observe_api as observe_api
    from generator.observe.emulator import split_export

    monkeypatch.setattr(observe_api, "INDEX_CHUNK", 2)
    app = make_app()
    call(app, "POST", "/api/v1/events", {"name": "Product Viewed", "anonymous_id": "a1"}, at=T0)
    _identify(app, "u1", at=T0 + 1000, email="u1@example.com", anonymous_id="a1")
    _event(app, "u1", "Added to Cart", at=T0, id="E1")
    _event(app, "u1", "Added to Cart", at=T0, id="E1")
    call(app, "POST", "/api/v1/events", {"name": "Product Viewed", "anonymous_id": "a9"}, at=T0)
    events = of_kind(export(app), "event")
    index = export(app, "event_index")
    assert of_kind(export(app), "event_index") == []
    assert [len(r["event_id"]) for r in index] == [2, 2]
    rows = [row for r in index for row in zip(r["event_id"], r["person"], r["outcome"], strict=True)]
    assert rows == [(e["event_id"], e["person"] or "", e["outcome"]) for e in events]
    assert {"merged_anonymous", "duplicate", "anonymous_pending"} <= {outcome for *_, outcome in rows}
    lines = [orjson.dumps(r) for r in index]
    assert split_export(lines)[1:] == split_export([orjson.dumps(e) for e in events])[1:]
    _, people, outcomes = split_export(lines)
    first: dict[str, tuple[str, str]] = {}
    for e in events:
        first.setdefault(e["event_id"], (e["person"] or "", e["outcome"]))
    assert people == {event_id: person for event_id, (person, _) in first.items()}
    assert outcomes == {event_id: outcome for event_id, (_, outcome) in first.items()}
    assert (people["E1"], outcomes["E1"]) == ("u1", "accepted")  # the first row of a repeated id
    assert split_export(lines, with_outcomes=False)[1:] == (people, {})


# --------------------------------------------------------------------------- webhook outbox


def _delivery(seq: int, metric: str = "sent"):
    from generator.emulator.campaigns import Delivery

    return Delivery(
        journey_seq=seq,
        campaign="cart_recovery",
        campaign_id=1,
        delivery_id=f"dlv{seq:012x}",
        metric=metric,
        at_ms=T0 + seq,
        trigger_event_id=f"E{seq}",
        identifiers={"id": f"u{seq}", "email": f"u{seq}@example.com", "cio_id": f"c{seq}"},
        recipient=f"u{seq}@example.com",
        reason="",
        message="Cart",
    )


def test_webhook_report_commits_in_the_transaction_of_its_journey_outcome(tmp_path: Path) -> None:
    import sqlite3

    from generator.credentials import LOCAL_DEFAULTS
    from generator.emulator.app import EmulatorApp
    from generator.emulator.campaigns import CampaignEngine
    from generator.emulator.clock import VirtualClock
    from generator.emulator.store import Store
    from generator.emulator.webhooks import Outbox
    from generator.emulator.workspace import Workspace

    db = tmp_path / "emu.db"
    store = Store(db)
    outbox = Outbox(store)
    workspace = Workspace(store, lambda people: CampaignEngine(store, people, CART, on_delivery=outbox.add))
    app = EmulatorApp(workspace, clock=VirtualClock(), creds=LOCAL_DEFAULTS)
    _identify(app, "u1", email="u1@example.com")
    _event(app, "u1", "Added to Cart", id="E1", data={"cart_total": 30})
    reader = sqlite3.connect(db)  # another connection sees only what is committed

    def committed() -> tuple[list, list]:
        journeys = reader.execute("SELECT outcome, delivery_id FROM journeys").fetchall()
        reports = reader.execute("SELECT delivery_id, state, attempts, body FROM webhook_outbox").fetchall()
        return journeys, reports

    assert committed() == ([("pending", None)], [])
    assert app.fire(T0 + 2 * HOUR) == 1  # written, not yet committed
    assert committed() == ([("pending", None)], [])
    store.barrier()
    journeys, reports = committed()
    assert journeys == [("sent", "dlv000000000001")]
    ((delivery_id, state, attempts, body),) = reports
    assert (delivery_id, state, attempts) == ("dlv000000000001", "pending", 0)
    report = orjson.loads(body)
    assert report["metric"] == "sent" and report["data"]["delivery_id"] == delivery_id
    assert report["data"]["trigger_event_id"] == "E1" and report["timestamp"] == (T0 + HOUR) // 1000
    reader.close()
    store.close()


def test_outbox_keeps_attempts_and_give_ups_across_a_reopen(tmp_path: Path) -> None:
    from generator.emulator.store import Store
    from generator.emulator.webhooks import Outbox, Report

    db = tmp_path / "emu.db"
    store = Store(db)
    outbox = Outbox(store)
    retried, abandoned, delivered = (outbox.add(_delivery(seq)) for seq in (1, 2, 3))
    assert retried == Report(1, orjson.dumps(payload(_delivery(1))), 0)
    outbox.failed(retried, 3, "HTTP 500", give_up=False)
    outbox.failed(abandoned, 8, "ConnectionRefusedError", give_up=True)
    outbox.delivered(delivered)
    store.close()

    reopened = Store(db)
    again = Outbox(reopened)
    assert again.pending() == [Report(1, retried.body, 3)]
    assert again.counts() == {"pending": 1, "given_up": 1}
    given_up = "SELECT seq, attempts, last_error FROM webhook_outbox WHERE state = 'given_up'"
    assert reopened.query(given_up) == [(2, 8, "ConnectionRefusedError")]
    reopened.close()
