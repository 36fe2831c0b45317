"""Observation readers: export parsing, the App API reader (paging, rate, 429, auth) and signed webhooks."""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest
from gevent.pywsgi import WSGIServer

import generator.report.data  # noqa: F401  (imports rich, whose import touches global `random`: not inside a test)
from generator.errors import TargetError
from generator.events import Observation, ObservationKind
from generator.observe import (
    AppApiReader,
    SignatureError,
    WebhookReceiver,
    parse_export,
    sign,
    verify_signature,
)

SECRET = "whsec-test"
NOW = 1_800_000_000


# --------------------------------------------------------------------------- export


def test_export_records_become_observations():
    lines = [
        orjson.dumps(
            {
                "kind": "profile",
                "cio_id": "c1",
                "id": "u1",
                "email": "u1@example.com",
                "anonymous_ids": ["a1"],
                "created_ms": 5,
                "attributes": {},
            }
        ),
        orjson.dumps(
            {
                "kind": "event",
                "event_id": "E1",
                "name": "Added to Cart",
                "type": "event",
                "person": "u1",
                "anonymous_id": "a1",
                "timestamp_ms": 1,
                "received_ms": 2,
                "outcome": "merged_anonymous",
                "properties": {},
            }
        ),
        orjson.dumps(
            {
                "kind": "journey",
                "campaign": "cart",
                "campaign_id": 1,
                "person": "u1",
                "trigger_event_id": "E1",
                "entered_ms": 10,
                "outcome": "exited",
                "at_ms": 20,
                "exit_event_id": "O1",
                "reason": "exit_on:Order Completed",
            }
        ),
        orjson.dumps(
            {
                "kind": "journey",
                "campaign": "cart",
                "campaign_id": 1,
                "person": "u1",
                "trigger_event_id": "E2",
                "entered_ms": 30,
                "outcome": "pending",
                "at_ms": None,
            }
        ),
        orjson.dumps(
            {
                "kind": "skip",
                "campaign": "cart",
                "campaign_id": 1,
                "person": None,
                "trigger_event_id": "E3",
                "at_ms": 40,
                "reason": "anonymous",
            }
        ),
        b"",
        orjson.dumps({"kind": "future-kind"}),
    ]
    obs = list(parse_export(lines))
    kinds = [o.kind for o in obs]
    assert kinds == [
        ObservationKind.PROFILE,
        ObservationKind.EVENT,
        ObservationKind.ENTRY,
        ObservationKind.EXIT,
        ObservationKind.ENTRY,
        ObservationKind.SKIP,
    ]
    assert obs[0].data["anonymous_ids"] == ("a1",)
    assert (obs[1].event_id, obs[1].person, obs[1].reason, obs[1].at_ms) == (
        "E1",
        "u1",
        "merged_anonymous",
        2,
    )
    assert obs[3].data["exit_event_id"] == "O1" and obs[3].at_ms == 20
    assert obs[5].person == "" and obs[5].reason == "anonymous"
    # Journey steps are built through the slots (the hot path of big exports): the very records
    # the dataclass constructor makes.
    assert obs[2:5] == [
        Observation(
            kind=ObservationKind.ENTRY,
            person="u1",
            at_ms=10,
            campaign="cart",
            event_id="E1",
            reason="exited",
            data={"campaign_id": 1},
        ),
        Observation(
            kind=ObservationKind.EXIT,
            person="u1",
            at_ms=20,
            campaign="cart",
            event_id="E1",
            reason="exit_on:Order Completed",
            data={"exit_event_id": "O1"},
        ),
        Observation(
            kind=ObservationKind.ENTRY,
            person="u1",
            at_ms=30,
            campaign="cart",
            event_id="E2",
            reason="pending",
            data={"campaign_id": 1},
        ),
    ]


# --------------------------------------------------------------------------- App API


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def _messages(n: int, *, per_page: int, throttle_first: bool = False):
    """A fake /v1/messages: n messages, paged, with an optional 429 on the first request."""
    calls: list[tuple[str, dict[str, str], float]] = []
    state = {"throttled": not throttle_first}
    items = [
        {
            "id": f"m{i}",
            "customer_id": f"u{i}",
            "customer_identifiers": {"id": f"u{i}"},
            "campaign_id": 1 + i % 2,
            "trigger_event_id": f"E{i}",
            "metrics": {"sent": NOW + i} if i % 3 else {"dropped": NOW + i},
        }
        for i in range(n)
    ]

    def fetch(path: str, headers: dict[str, str], clock: FakeClock) -> tuple[int, dict[str, str], bytes]:
        calls.append((path, dict(headers), clock.now()))
        if not state["throttled"]:
            state["throttled"] = True
            return 429, {"retry-after": "2"}, b'{"meta":{"error":"over the 10-per-second limit"}}'
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(path).query)
        start = int(query.get("start", ["0"])[0])
        page = items[start : start + per_page]
        nxt = str(start + per_page) if start + per_page < n else ""
        return 200, {}, orjson.dumps({"messages": page, "next": nxt})

    return fetch, calls


def test_app_api_pages_maps_campaigns_and_spaces_requests():
    clock = FakeClock()
    fetch, calls = _messages(25, per_page=10, throttle_first=True)
    reader = AppApiReader(
        "https://api.example.test",
        "secret-key",
        campaigns={1: "cart", 2: "browse"},
        fetch=lambda p, h: fetch(p, h, clock),
        sleep=clock.sleep,
        clock=clock.now,
    )
    obs = list(reader.messages())
    assert len(obs) == 25
    assert [o.kind for o in obs[:3]] == [ObservationKind.DROP, ObservationKind.SEND, ObservationKind.SEND]
    assert obs[1].campaign == "browse" and obs[2].campaign == "cart" and obs[1].event_id == "E1"
    assert obs[1].at_ms == (NOW + 1) * 1000 and obs[1].person == "u1"
    assert all(h["Authorization"] == "Bearer secret-key" for _, h, _ in calls)
    assert len(calls) == 4  # one 429, then three pages
    assert 2.0 in clock.sleeps  # Retry-After honoured
    times = [t for _, _, t in calls]
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(times)), "more than 10 requests/s"


def test_app_api_refused_key_is_a_target_error_without_the_key():
    reader = AppApiReader(
        "https://api.example.test",
        "s3cr3t",
        campaigns={},
        fetch=lambda p, h: (401, {}, b""),
        sleep=lambda s: None,
    )
    with pytest.raises(TargetError) as info:
        list(reader.messages())
    assert "CIO_APP_KEY" in str(info.value) and "s3cr3t" not in str(info.value)
    with pytest.raises(TargetError, match="CIO_APP_KEY"):
        AppApiReader("https://api.example.test", "", campaigns={})


def test_app_api_reader_against_a_loopback_server():
    """The real HTTP path (geventhttpclient) against a tiny WSGI app on port 0, with activities paging."""
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ.get("HTTP_AUTHORIZATION", ""))
        path = environ["PATH_INFO"]
        qs = environ.get("QUERY_STRING", "")
        if path == "/v1/customers/u%201/activities" or path == "/v1/customers/u 1/activities":
            body: dict[str, Any] = (
                {
                    "activities": [
                        {
                            "id": "a2",
                            "type": "event",
                            "name": "Added to Cart",
                            "timestamp": NOW,
                            "data": {"id": "E9"},
                        }
                    ],
                    "next": "p2",
                }
                if "start=p2" not in qs
                else {"activities": [{"id": "a1", "type": "anon_merge", "timestamp": NOW}], "next": ""}
            )
        elif path == "/v1/messages":
            body = {"messages": [], "next": ""}
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b"{}"]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    try:
        reader = AppApiReader(f"http://127.0.0.1:{server.server_port}", "k", campaigns={})
        obs = list(reader.observations(people=["u 1"]))
    finally:
        server.stop()
    assert [(o.kind, o.person, o.event_id, o.name) for o in obs] == [
        (ObservationKind.EVENT, "u 1", "E9", "Added to Cart")
    ]
    assert set(seen) == {"Bearer k"}


# --------------------------------------------------------------------------- webhooks


def _headers(body: bytes, *, ts: int = NOW, secret: str = SECRET) -> dict[str, str]:
    return {"X-CIO-Timestamp": str(ts), "X-CIO-Signature": sign(secret, ts, body)}


def test_signature_good_bad_missing_stale_malformed():
    body = b'{"metric":"sent"}'
    verify_signature(SECRET, _headers(body), body, now_s=NOW)
    verify_signature(SECRET, {k.lower(): v for k, v in _headers(body).items()}, body, now_s=NOW)
    cases = {
        "mismatch": (_headers(body, secret="other"), body),
        "missing": ({"X-CIO-Timestamp": str(NOW)}, body),
        "stale": (_headers(body, ts=NOW - 301), body),
        "malformed": ({"X-CIO-Timestamp": "yesterday", "X-CIO-Signature": "ab"}, body),
    }
    for reason, (headers, payload) in cases.items():
        with pytest.raises(SignatureError) as info:
            verify_signature(SECRET, headers, payload, now_s=NOW)
        assert info.value.reason == reason
    tampered = b'{"metric":"dropped"}'
    with pytest.raises(SignatureError):
        verify_signature(SECRET, _headers(body), tampered, now_s=NOW)
    verify_signature(SECRET, _headers(body, ts=NOW - 10_000), body, now_s=NOW, tolerance_s=None)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_receiver_verifies_and_records_reports():
    import time

    receiver = WebhookReceiver(SECRET, campaigns={7: "cart_recovery"})
    url = receiver.serve("127.0.0.1", 0)
    try:
        report = {
            "metric": "sent",
            "event_id": "01E",
            "object_type": "email",
            "timestamp": NOW,
            "data": {
                "campaign_id": 7,
                "customer_id": "0200",
                "identifiers": {"id": "u1"},
                "trigger_event_id": "E1",
                "delivery_id": "d1",
            },
        }
        body = json.dumps(report).encode()
        now = int(time.time())
        assert _post(url, body, _headers(body, ts=now))[0] == 200
        assert _post(url, body, _headers(body, ts=now, secret="wrong"))[0] == 401
        assert _post(url, body, {})[0] == 401
        assert _post(url, body, _headers(body, ts=now - 3600))[0] == 401
        junk = b"not json"
        assert _post(url, junk, _headers(junk, ts=now))[0] == 400
        opened = {"metric": "opened", "timestamp": NOW, "data": {}}
        raw = json.dumps(opened).encode()
        assert _post(url, raw, _headers(raw, ts=now))[0] == 200
    finally:
        receiver.stop()
    (obs,) = receiver.observations
    assert (obs.kind, obs.person, obs.campaign, obs.event_id, obs.at_ms) == (
        ObservationKind.SEND,
        "u1",
        "cart_recovery",
        "E1",
        NOW * 1000,
    )
    assert receiver.accepted == 2
    assert receiver.rejected == {"mismatch": 1, "missing": 1, "stale": 1, "json": 1}


def test_receiver_needs_a_secret():
    with pytest.raises(TargetError, match="CIO_WEBHOOK_SECRET"):
        WebhookReceiver("")


def test_observe_command_writes_verified_reports(tmp_path, monkeypatch, capsys):
    import socket
    import time

    import gevent

    from generator.cli import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "obs.ndjson"
    monkeypatch.setenv("CIO_WEBHOOK_SECRET", SECRET)
    worker = gevent.spawn(main, ["observe", "--listen", str(port), "--out", str(out), "--duration", "3s"])
    report = {
        "metric": "dropped",
        "timestamp": NOW,
        "data": {"campaign_id": 3, "identifiers": {"id": "u7"}, "trigger_event_id": "E7"},
    }
    body = json.dumps(report).encode()
    status = None
    for _ in range(50):  # bounded: the server comes up within the command's first moments
        try:
            status = _post(f"http://127.0.0.1:{port}/", body, _headers(body, ts=int(time.time())))[0]
            break
        except OSError:
            gevent.sleep(0.05)
    assert status == 200
    assert worker.get(timeout=30) == 0
    (line,) = out.read_bytes().splitlines()
    record = orjson.loads(line)
    assert (record["kind"], record["person"], record["event_id"], record["campaign"]) == (
        "drop",
        "u7",
        "E7",
        "3",
    )
    assert "1 accepted, 0 rejected" in capsys.readouterr().out


def test_observe_command_without_secret_is_an_input_error(tmp_path, monkeypatch, capsys):
    from generator.cli import main

    monkeypatch.delenv("CIO_WEBHOOK_SECRET", raising=False)
    assert main(["observe", "--listen", "0", "--out", str(tmp_path / "x"), "--duration", "1s"]) == 2
    assert "CIO_WEBHOOK_SECRET" in capsys.readouterr().err


def test_split_export_keeps_the_first_row_of_an_id_across_event_lines_and_index_columns() -> None:
    from generator.observe.emulator import split_export

    lines = [
        orjson.dumps({"kind": "event", "event_id": "E1", "person": "u1", "outcome": "accepted"}),
        b"",
        orjson.dumps(
            {
                "kind": "event_index",
                "event_id": ["E2", "E1", "E2"],
                "person": ["", "u9", "u2"],
                "outcome": ["anonymous_pending", "duplicate", "duplicate"],
            }
        ),
        orjson.dumps({"kind": "event", "event_id": "E2", "person": "u3", "outcome": "duplicate"}),
    ]
    others, people, outcomes = split_export(lines)
    assert others == []
    assert people == {"E1": "u1", "E2": ""}
    assert outcomes == {"E1": "accepted", "E2": "anonymous_pending"}
    assert split_export(lines, with_outcomes=False)[1:] == (people, {})
