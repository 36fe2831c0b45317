"""Random and mutated requests at every endpoint over real sockets (hypothesis).

Properties: never a 5xx (no ``--error-rate`` is configured), the server keeps answering, and
every event acknowledged with a 2xx is in the export at the end (nothing acknowledged lost).
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.emulator import EmulatorHandle, start_emulator
from generator.scenario.model import Campaign

TRACK = "Basic " + base64.b64encode(b"shopsim-site:shopsim-track-key").decode()
PIPE = "Basic " + base64.b64encode(b"shopsim-pipelines-key:").decode()
APP = "Bearer shopsim-app-key"
T0 = 1_793_620_800_000

ACKED: set[str] = set()


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorHandle]:
    campaigns = {
        "cart": Campaign.model_validate(
            {
                "trigger": {"event": "Added to Cart", "where": ["cart_total >= 20"]},
                "delay": "1h",
                "exit_on": ["Order Completed"],
            }
        ),
        "browse": Campaign.model_validate(
            {
                "trigger": {
                    "behavior": {
                        "event": "Product Viewed",
                        "at_least": 2,
                        "within": "1d",
                        "and_not": ["Added to Cart"],
                    }
                },
                "frequency": {"once_per": "1h"},
            }
        ),
    }
    with start_emulator(scenario=None, campaigns=campaigns, max_body=600_000) as handle:
        yield handle


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
ids = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != "")
names = st.sampled_from(
    ["Added to Cart", "Order Completed", "Product Viewed", "Home", " Added to Cart "]
) | st.text(max_size=12)
people = st.sampled_from(["u1", "u2", "U1@Example.com", "cio_000000000001", "x%2Fy", "u3"]) | st.text(
    min_size=1, max_size=12
)


@st.composite
def track_v1(draw: st.DrawFn) -> tuple[str, str, dict[str, Any], str | None]:
    person = draw(people)
    event_id = draw(ids)
    kind = draw(st.sampled_from(["event", "anon", "identify", "merge", "delete"]))
    if kind == "event":
        body = {"name": draw(names), "id": event_id, "data": {"cart_total": draw(st.integers(0, 60))}}
        return "POST", f"/api/v1/customers/{_quote(person)}/events", body, event_id
    if kind == "anon":
        body = {"name": draw(names), "id": event_id, "anonymous_id": draw(st.sampled_from(["a1", "a2"]))}
        return "POST", "/api/v1/events", body, event_id
    if kind == "identify":
        body = {
            "email": f"{draw(st.sampled_from(['u1', 'u2', 'u3']))}@example.com",
            "anonymous_id": draw(st.sampled_from(["a1", "a2", None])),
        }
        return "PUT", f"/api/v1/customers/{_quote(person)}", body, None
    if kind == "merge":
        body = {"primary": {"id": draw(people)}, "secondary": {"id": draw(people)}}
        return "POST", "/api/v1/merge_customers", body, None
    return "DELETE", f"/api/v1/customers/{_quote(person)}", {}, None


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[str, str, dict[str, Any], str | None]:
    kind = draw(st.sampled_from(["identify", "track", "page", "screen", "group", "alias"]))
    message: dict[str, Any] = {"messageId": draw(ids), "timestamp": "2026-11-02T12:00:00.000Z"}
    if draw(st.booleans()):
        message["userId"] = draw(people)
    if draw(st.booleans()):
        message["anonymousId"] = draw(st.sampled_from(["a1", "a2", "a3"]))
    if kind == "track":
        message["event"] = draw(names)
        message["properties"] = {"cart_total": draw(st.integers(0, 60))}
    elif kind in ("page", "screen"):
        message["name"] = draw(names)
    elif kind == "identify":
        message["traits"] = {"email": "u1@example.com"}
    if draw(st.booleans()):
        message["type"] = kind
        return "POST", "/v1/batch", {"batch": [message]}, None
    return "POST", f"/v1/{kind}", message, None


def _dumps(value: Any) -> bytes:
    # the stdlib encoder: it also writes integers beyond 64 bits, which the server must refuse cleanly
    return json.dumps(value).encode()


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy) -> tuple[str, str, bytes, dict[str, str], str | None]:
    method, path, body, event_id = draw(base)
    headers = {"Content-Type": "application/json"}
    mutation = draw(st.sampled_from(["none", "drop_key", "retype", "unknown", "garbage", "json", "oversize"]))
    if mutation != "none":
        event_id = None  # only untouched requests count towards the acknowledged set
    if mutation == "drop_key" and body:
        body.pop(draw(st.sampled_from(sorted(body))), None)
    elif mutation == "retype" and body:
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    elif mutation == "unknown":
        body[draw(st.text(max_size=8))] = draw(json_values)
    raw = _dumps(body)
    if mutation == "garbage":
        raw = draw(st.binary(max_size=200))
    elif mutation == "json":
        raw = _dumps(draw(json_values))
    elif mutation == "oversize":
        raw = b'{"blob": "' + b"a" * draw(st.sampled_from([33_000, 120_000, 520_000])) + b'"}'
    auth = draw(st.sampled_from(["right", "none", "garbage", "other_api"]))
    if auth != "right":
        event_id = None
    if auth == "right":
        headers["Authorization"] = TRACK if path.startswith("/api/") else PIPE
    elif auth == "garbage":
        headers["Authorization"] = draw(
            st.sampled_from(["Basic ???", "Bearer", "Digest x", "Basic " + "A" * 50])
        )
    elif auth == "other_api":
        headers["Authorization"] = PIPE if path.startswith("/api/") else TRACK
    if draw(st.booleans()):
        headers["Content-Type"] = draw(
            st.sampled_from(["text/plain", "application/xml", "", "multipart/form-data"])
        )
        if headers["Content-Type"] not in ("", "text/plain") or path.startswith("/api/"):
            event_id = None
    if draw(st.booleans()):
        headers["X-Strict-Mode"] = "1"
    if draw(st.booleans()):
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    clock = draw(st.sampled_from(["ok", "none", "garbage"]))
    if clock == "ok":
        headers["X-Shopsim-Clock"] = str(T0 + draw(st.integers(0, 10_000)))
    elif clock == "garbage":
        headers["X-Shopsim-Clock"] = draw(st.sampled_from(["soon", "-", "1e9"]))
        event_id = None
    if draw(st.booleans()):
        method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
        event_id = None
    return method, path, raw, headers, event_id


random_paths = st.sampled_from(
    [
        "/",
        "/api",
        "/api/v1",
        "/api/v9/x",
        "/api/v1/customers",
        "/api/v1/customers//events",
        "/v1",
        "/v1/",
        "/v1/customers/u1/activities?limit=0",
        "/v1/customers/u1/activities?limit=abc",
        "/v1/messages?start=-1",
        "/v1/campaigns/1/metrics?version=3",
        "/v1/campaigns/x",
        "/_shopsim/",
        "/_shopsim/clock",
        "/_shopsim/export?kinds=x",
        "/%ff%fe",
        "/v1/b",
        "/api/v2/entity",
        "/api/v2/batch",
    ]
) | st.text(min_size=1, max_size=30).map(lambda t: "/" + _quote(t))


@st.composite
def anything(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str], str | None]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]))
    headers = {"Authorization": draw(st.sampled_from([TRACK, PIPE, APP, "", "Bearer x"]))}
    body = draw(st.binary(max_size=100) | json_values.map(_dumps))
    return method, draw(random_paths), body, headers, None


def _send(emu: EmulatorHandle, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    lines = [f"{method} {path} HTTP/1.1", "Host: fuzz", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items() if v != "" or k != "Content-Type"]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", emu.port), timeout=30) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            assert chunk, "the server closed without answering"
            data += chunk
    return int(data.split(b" ", 2)[1])


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=mutated(track_v1()) | mutated(pipelines()) | anything())
def test_random_requests_never_get_a_5xx(emu: EmulatorHandle, request: tuple) -> None:
    method, path, body, headers, event_id = request
    status = _send(emu, method, path, body, headers)
    assert status < 500, (method, path, headers, body[:200])
    if event_id is not None and status == 200 and method == "POST" and path.startswith("/api/v1/customers/"):
        ACKED.add(event_id)


def test_zz_nothing_acknowledged_was_lost(emu: EmulatorHandle) -> None:
    """Runs after the property test (same module emulator): every acknowledged id is exported."""
    status = _send(emu, "GET", "/_shopsim/health", b"", {})
    assert status == 200
    with socket.create_connection(("127.0.0.1", emu.port), timeout=30) as sock:
        sock.sendall(b"GET /_shopsim/export?kinds=event HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()  # HTTP/1.0: streamed raw, ended by close
    lines = [line for line in body.splitlines() if line]
    stored = {orjson.loads(line)["event_id"] for line in lines}
    assert ACKED, "the property test acknowledged no events"
    assert stored >= ACKED
