"""Bad input never gets a 5xx: the emulator and the reporting-webhook receiver over real sockets.

Each case sends one malformed request on loopback (port 0) and checks the 4xx with the server's
usual error body, then that the server still answers. Non-ASCII digits are the common thread:
``'²'.isdigit()`` is True but ``int('²')`` raises, which used to surface as a 500 (or, for
``Content-Length``, as a dropped connection).
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from generator.emulator import EmulatorHandle, start_emulator
from generator.emulator.clock import ClockError, parse_clock_header
from generator.events import Observation
from generator.observe.webhooks import WebhookReceiver, sign
from generator.report.data import observation_record
from generator.scenario.model import Campaign

TRACK = "Basic " + base64.b64encode(b"shopsim-site:shopsim-track-key").decode()
PIPE = "Basic " + base64.b64encode(b"shopsim-pipelines-key:").decode()
APP = "Bearer shopsim-app-key"
SECRET = "whsec-test"

SUPERSCRIPT_TWO = b"\xb2"  # '²' on the wire (headers are latin-1)


# --------------------------------------------------------------------------- helpers


def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one request (which must ask to close) and read the whole answer until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        buf = b""
        while chunk := sock.recv(65536):
            buf += chunk
    assert buf, "the server closed the connection without an answer"
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


def _request(
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, bytes | str] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: x", b"Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode("latin-1")))
    if body or method in ("POST", "PUT"):
        lines.append(b"Content-Length: %d" % len(body))
    return _exchange(port, b"\r\n".join(lines) + b"\r\n\r\n" + body)


def _json_post(
    port: int, path: str, payload: Any, auth: str, headers: dict[str, bytes | str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return _request(
        port,
        "POST",
        path,
        headers={"Authorization": auth, "Content-Type": "application/json", **(headers or {})},
        body=orjson.dumps(payload),
    )


def _assert_emulator_alive(emu: EmulatorHandle) -> None:
    status, _, body = _request(emu.port, "GET", "/_shopsim/health")
    assert status == 200 and orjson.loads(body)["status"] == "ok"


def _meta_errors(body: bytes) -> list[str]:
    errors: list[str] = orjson.loads(body)["meta"]["errors"]
    return errors


# --------------------------------------------------------------------------- emulator


@pytest.fixture()
def emu() -> Iterator[EmulatorHandle]:
    campaigns = {"cart": Campaign.model_validate({"trigger": {"event": "Added to Cart"}, "delay": "1h"})}
    with start_emulator(scenario=None, campaigns=campaigns) as handle:
        yield handle


INGEST_CALLS: dict[str, tuple[str, Any, str]] = {
    "pipelines track": ("/v1/track", {"userId": "u1", "event": "Viewed", "messageId": "m1"}, PIPE),
    "pipelines batch": (
        "/v1/batch",
        {"batch": [{"type": "track", "userId": "u1", "event": "Viewed", "messageId": "m2"}]},
        PIPE,
    ),
    "track v1 event": ("/api/v1/customers/u1/events", {"name": "Viewed"}, TRACK),
    "track v1 identify": ("/api/v1/customers/u1", {"email": "u1@example.com"}, TRACK),
    "track v2 entity": (
        "/api/v2/entity",
        {"type": "person", "identifiers": {"id": "u1"}, "action": "identify", "attributes": {}},
        TRACK,
    ),
    "track v2 batch": (
        "/api/v2/batch",
        {"batch": [{"type": "person", "identifiers": {"id": "u1"}, "action": "identify"}]},
        TRACK,
    ),
}


@pytest.mark.parametrize("clock", [SUPERSCRIPT_TWO, b"\xb9", b"-\xb2", b"--5", b"1\xb3"])
@pytest.mark.parametrize("call", sorted(INGEST_CALLS))
def test_non_ascii_digit_clock_header_is_400(emu: EmulatorHandle, call: str, clock: bytes) -> None:
    path, payload, auth = INGEST_CALLS[call]
    method = "PUT" if call == "track v1 identify" else "POST"
    status, _, body = _request(
        emu.port,
        method,
        path,
        headers={"Authorization": auth, "Content-Type": "application/json", "X-Shopsim-Clock": clock},
        body=orjson.dumps(payload),
    )
    assert status == 400
    assert "X-Shopsim-Clock" in _meta_errors(body)[0]
    _assert_emulator_alive(emu)


@pytest.mark.parametrize("arrivals", [SUPERSCRIPT_TWO, b"0,\xb2"])
def test_non_ascii_digit_arrivals_header_is_400(emu: EmulatorHandle, arrivals: bytes) -> None:
    path, payload, auth = INGEST_CALLS["pipelines batch"]
    status, _, body = _json_post(
        emu.port, path, payload, auth, {"X-Shopsim-Clock": "1000", "X-Shopsim-Arrivals": arrivals}
    )
    assert status == 400 and "X-Shopsim-Arrivals" in _meta_errors(body)[0]
    _assert_emulator_alive(emu)


@pytest.mark.parametrize("value", ["²", "-²", "--5", "١"])
def test_parse_clock_header_rejects_what_int_cannot_read(value: str) -> None:
    # '١' (ARABIC-INDIC ONE) is one int() does read: still not an epoch-ms value on the wire
    with pytest.raises(ClockError):
        parse_clock_header(value)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "path",
    [
        "/v1/campaigns/%C2%B2",
        "/v1/campaigns/%E2%91%A0",
        "/v1/campaigns/%C2%B2/metrics",
        "/v1/campaigns/%D9%A1",  # ARABIC-INDIC ONE: int() would read 1
        "/v1/campaigns/" + "1" * 5000,  # over int()'s 4300-digit limit
        "/v1/campaigns/" + "1" * 5000 + "/metrics",
    ],
)
def test_app_api_campaign_id_that_is_no_ascii_number_is_404(
    emu: EmulatorHandle, path: str, method: str
) -> None:
    status, _, body = _request(emu.port, method, path, headers={"Authorization": APP})
    assert status == 404
    if method == "GET":
        assert _meta_errors(body) == ["campaign not found"]
    _assert_emulator_alive(emu)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/messages?limit=%C2%B2",
        "/v1/messages?start=--1",
        "/v1/messages?campaign_id=%E2%91%A0",
        "/v1/messages?start_ts=" + "1" * 5000,
        "/v1/customers/u1/activities?limit=%C2%B2",
        "/v1/customers/u1/activities?start=" + "9" * 5000,
        "/v1/campaigns/1/metrics?version=1&end=%C2%B2",
        "/v1/campaigns/1/metrics?version=1&start=-" + "9" * 5000,
    ],
)
def test_app_api_integer_query_parameter_that_is_no_ascii_number_is_400(
    emu: EmulatorHandle, path: str
) -> None:
    identify = _request(emu.port, "PUT", "/api/v1/customers/u1", headers={"Authorization": TRACK}, body=b"{}")
    assert identify[0] == 200  # so the customer exists and its activities are read
    status, _, body = _request(emu.port, "GET", path, headers={"Authorization": APP})
    assert status == 400 and _meta_errors(body)
    _assert_emulator_alive(emu)


@pytest.mark.parametrize("length", [SUPERSCRIPT_TWO, b"\xb9", b"1\xb3"])
def test_non_ascii_digit_content_length_is_400_and_close(emu: EmulatorHandle, length: bytes) -> None:
    status, headers, body = _exchange(
        emu.port, b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n"
    )
    assert status == 400 and headers["connection"] == "close"
    assert _meta_errors(body) == ["invalid content-length"]
    _assert_emulator_alive(emu)


BAD_SECONDS = ["²", "--5", "-²", "1" * 5000]


@pytest.mark.parametrize("seconds", BAD_SECONDS)
@pytest.mark.parametrize(
    ("path", "field"),
    [("/api/v1/customers/u1/events", "timestamp"), ("/api/v1/customers/u1", "_timestamp")],
)
def test_track_v1_timestamp_string_that_is_no_ascii_number_is_400(
    emu: EmulatorHandle, path: str, field: str, seconds: str
) -> None:
    payload: dict[str, Any] = {"name": "Viewed", field: seconds} if field == "timestamp" else {field: seconds}
    method = "POST" if path.endswith("/events") else "PUT"
    status, _, body = _request(
        emu.port,
        method,
        path,
        headers={"Authorization": TRACK, "Content-Type": "application/json"},
        body=orjson.dumps(payload),
    )
    assert status == 400 and field in _meta_errors(body)[0]
    _assert_emulator_alive(emu)


@pytest.mark.parametrize("seconds", BAD_SECONDS)
def test_track_v2_timestamp_string_that_is_no_ascii_number_is_a_4xx_or_item_error(
    emu: EmulatorHandle, seconds: str
) -> None:
    item = {"type": "person", "identifiers": {"id": "u1"}, "action": "identify", "timestamp": seconds}
    status, _, body = _json_post(emu.port, "/api/v2/entity", item, TRACK)
    assert status == 400 and orjson.loads(body)["errors"][0]["field"] == "timestamp"
    status, _, body = _json_post(emu.port, "/api/v2/batch", {"batch": [item]}, TRACK)
    assert status == 207 and orjson.loads(body)["errors"][0]["batch_index"] == 0
    _assert_emulator_alive(emu)


@pytest.mark.parametrize(
    "payload", [{"now_ms": 2**64 - 1}, {"now_ms": 2**63 - 1}, {"now_ms": -(2**63)}, {"advance_ms": 2**64 - 1}]
)
def test_clock_control_out_of_range_is_400_and_does_not_poison_the_clock(
    emu: EmulatorHandle, payload: dict[str, int]
) -> None:
    path, event, auth = INGEST_CALLS["pipelines track"]
    assert _json_post(emu.port, path, event, auth, {"X-Shopsim-Clock": "1000"})[0] == 200
    status, _, body = _json_post(emu.port, "/_shopsim/clock", payload, "")
    assert status == 400 and "clock" in _meta_errors(body)[0]
    # a clock past SQLite's 64-bit integers used to make every later request a 500
    assert _json_post(emu.port, path, {**event, "messageId": "m9"}, auth)[0] == 200
    _assert_emulator_alive(emu)


# --------------------------------------------------------------------------- webhook receiver


@dataclass
class Hook:
    """A served receiver, its port and the NDJSON lines it wrote."""

    server: WebhookReceiver
    port: int
    lines: list[bytes]


@pytest.fixture()
def hook() -> Iterator[Hook]:
    """A receiver that writes observation NDJSON lines like ``shopsim observe --listen``."""
    lines: list[bytes] = []

    def write(obs: Observation) -> None:
        lines.append(orjson.dumps(observation_record(obs), option=orjson.OPT_APPEND_NEWLINE))

    server = WebhookReceiver(SECRET, campaigns={7: "cart"}, on_observation=write)
    url = server.serve("127.0.0.1", 0)
    try:
        yield Hook(server, int(url.rsplit(":", 1)[1]), lines)
    finally:
        server.stop()


def _report(
    hook: Hook, body: bytes, *, ts: str | None = None, signature: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    stamp = ts if ts is not None else str(int(time.time()))
    sig = signature if signature is not None else sign(SECRET, stamp, body).encode()
    status, _, answer = _request(
        hook.port,
        "POST",
        "/hook",
        headers={
            "Content-Type": "application/json",
            "X-CIO-Timestamp": stamp.encode("latin-1"),
            "X-CIO-Signature": sig,
        },
        body=body,
    )
    return status, orjson.loads(answer)


VALID = b'{"metric":"sent","timestamp":1800000000,"data":{"identifiers":{"id":"u1"},"campaign_id":7}}'


def _assert_receiver_alive(hook: Hook) -> None:
    status, _ = _report(hook, VALID)
    assert status == 200


@pytest.mark.parametrize("signature", [SUPERSCRIPT_TWO, "é".encode("latin-1"), b"ab\xff"])
def test_non_ascii_signature_is_401(hook: Hook, signature: bytes) -> None:
    status, answer = _report(hook, VALID, signature=signature)
    assert status == 401 and "X-CIO-Signature" in answer["error"]
    assert hook.server.rejected == {"mismatch": 1}
    _assert_receiver_alive(hook)


@pytest.mark.parametrize("ts", ["²", "9" * 400, "9" * 5000, "1_800_000_000", "+1800000000", "-1"])
def test_timestamp_header_that_is_no_unix_time_is_401(hook: Hook, ts: str) -> None:
    status, answer = _report(hook, VALID, ts=ts)
    assert status == 401 and "X-CIO-Timestamp" in answer["error"]
    assert hook.server.rejected == {"malformed": 1}
    _assert_receiver_alive(hook)


@pytest.mark.parametrize(
    "body",
    [
        b'{"metric":"sent","data":"x"}',
        b'{"metric":"sent","data":[1]}',
        b'{"metric":"dropped","data":{"identifiers":"x"}}',
        b'{"metric":"sent","data":{"identifiers":[1]}}',
        b'{"metric":"sent","timestamp":1e308}',
        b'{"metric":"sent","timestamp":1e300}',  # finite, but its ms are no 64-bit integer
        b'{"metric":"sent","timestamp":"inf"}',
        b'{"metric":"sent","timestamp":"-inf"}',
        b'{"metric":"sent","timestamp":"nan"}',
        b'{"metric":"sent","timestamp":[1]}',
        b'{"metric":"sent","timestamp":true}',
    ],
)
def test_signed_but_unusable_report_is_400(hook: Hook, body: bytes) -> None:
    status, answer = _report(hook, body)
    assert status == 400 and answer["error"].startswith("unusable report: ")
    assert hook.server.rejected == {"report": 1} and hook.server.accepted == 0 and hook.lines == []
    _assert_receiver_alive(hook)
    assert hook.server.accepted == 1 and len(hook.lines) == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"metric":"sent","data":{"campaign_id":1e300}}',
        b'{"metric":"sent","data":{"campaign_id":"inf"}}',
        b'{"metric":"sent","data":{"campaign_id":[1]}}',
        b'{"metric":"sent","data":{"campaign_id":"1' + b"0" * 5000 + b'"}}',
        b'{"metric":{"a":1}}',
        b'{"metric":"opened","data":"x","timestamp":"inf"}',  # other metrics are counted only
    ],
)
def test_odd_but_usable_reports_are_accepted(hook: Hook, body: bytes) -> None:
    assert _report(hook, body)[0] == 200
    assert hook.server.accepted == 1 and hook.server.rejected == {}


def test_signed_body_that_is_no_json_object_is_400_and_counted(hook: Hook) -> None:
    status, answer = _report(hook, b"[]")
    assert status == 400 and answer == {"error": "body is not a JSON object"}
    assert hook.server.rejected == {"json": 1}
    _assert_receiver_alive(hook)


def test_a_client_hanging_up_inside_the_body_is_answered_400_not_raised() -> None:
    """The WSGI app itself (no socket: the peer is gone, so there is nobody to read the answer)."""

    class _HungUp:
        def read(self, size: int) -> bytes:
            raise OSError("unexpected end of file while reading request")

    statuses: list[str] = []
    server = WebhookReceiver(SECRET)
    environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "10", "wsgi.input": _HungUp()}
    body = server(environ, lambda status, headers: statuses.append(status))
    assert statuses == ["400 Bad Request"] and orjson.loads(b"".join(body)) == {"error": "incomplete body"}
