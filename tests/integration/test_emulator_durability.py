"""A 2xx means committed: ``kill -9`` the server mid-ingestion, restart it on the same ``--db``,
and every acknowledged event and the campaign state are still there; so is every reporting
webhook not yet delivered (the outbox), and nothing delivered is sent again."""

from __future__ import annotations

import base64
import dataclasses
import http.client
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gevent
import orjson
import pytest

from generator.emulator.httpserver import Request, Response
from generator.emulator.webhooks import verify

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "clean_baseline.yaml"
T0 = 1_793_620_800_000
HOUR = 3_600_000
TRACK = "Basic " + base64.b64encode(b"shopsim-site:shopsim-track-key").decode()


def _serve(db: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "generator",
            "serve",
            "--port",
            "0",
            "--db",
            str(db),
            "--clock",
            "virtual",
            "--scenario",
            str(SCENARIO),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("http://127.0.0.1:"):
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"serve did not start: {line!r} {err}")
    return proc, int(line.rsplit(":", 1)[1])


@pytest.fixture()
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _request(
    conn: http.client.HTTPConnection, method: str, path: str, body: object | None, clock: int
) -> int:
    payload = orjson.dumps(body) if body is not None else None
    headers = {"Authorization": TRACK, "X-Shopsim-Clock": str(clock), "Content-Type": "application/json"}
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def _export(port: int) -> list[dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/_shopsim/export")
    lines = conn.getresponse().read().splitlines()
    conn.close()
    return [orjson.loads(line) for line in lines if line]


@pytest.mark.slow
def test_acknowledged_events_and_journeys_survive_kill_9(tmp_path: Path, processes: list) -> None:
    db = tmp_path / "emu.db"
    proc, port = _serve(db)
    processes.append(proc)

    # campaign state: 20 people enter cart_recovery (due at T0 + 1h)
    setup = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for n in range(20):
        assert _request(setup, "PUT", f"/api/v1/customers/u{n}", {"email": f"u{n}@example.com"}, T0) == 200
        body = {
            "name": "Added to Cart",
            "id": f"cart-{n}",
            "data": {"cart_total": 50},
            "timestamp": T0 // 1000,
        }
        assert _request(setup, "POST", f"/api/v1/customers/u{n}/events", body, T0 + n) == 200
    setup.close()

    # a concurrent flood, killed mid-stream
    acked: list[str] = []

    def flood(worker: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for i in range(100_000):
                event_id = f"w{worker}-{i}"
                body = {"name": "Product Viewed", "id": event_id, "data": {"i": i}}
                if _request(conn, "POST", f"/api/v1/customers/u{i % 20}/events", body, T0 + 1000) != 200:
                    return
                acked.append(event_id)
        except (OSError, http.client.HTTPException):
            return  # the server died under us: whatever was not answered was not acknowledged
        finally:
            conn.close()

    workers = [gevent.spawn(flood, w) for w in range(8)]
    for _ in range(2000):  # bounded: stop waiting after ~20 s
        if len(acked) >= 400:
            break
        gevent.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    gevent.joinall(workers, timeout=30)
    proc.wait(timeout=10)
    assert len(acked) >= 400, "the flood never got going"

    again, port = _serve(db)
    processes.append(again)
    records = _export(port)
    stored = {r["event_id"] for r in records if r["kind"] == "event" and r["outcome"] == "accepted"}
    missing = [event_id for event_id in acked if event_id not in stored]
    assert missing == []
    journeys = [r for r in records if r["kind"] == "journey"]
    assert sorted(j["trigger_event_id"] for j in journeys) == sorted(f"cart-{n}" for n in range(20))
    assert {j["outcome"] for j in journeys} == {"pending"}

    # the restarted emulator continues: the clock advances past the delay and every message goes out
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/_shopsim/clock", body=orjson.dumps({"now_ms": T0 + 2 * HOUR}))
    assert orjson.loads(conn.getresponse().read())["fired"] == 20
    conn.close()
    sent = [r for r in _export(port) if r["kind"] == "journey" and r["outcome"] == "sent"]
    assert len(sent) == 20 and {s["at_ms"] for s in sent} == {T0 + n + HOUR for n in range(20)}
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=20) == 0


# --------------------------------------------------------------------------- reporting-webhook outbox

SECRET = "whsec-durable"


class Receiver:
    """A loopback webhook endpoint answering ``status`` to every post and keeping each request."""

    def __init__(self, status: int) -> None:
        from generator.emulator.httpserver import HttpServer

        self.status = status
        self.requests: list[Request] = []
        self.server = HttpServer(self._handle)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.port}/hooks/cio"

    def _handle(self, request: Request) -> Response:
        self.requests.append(request)
        return Response(self.status, b"{}")

    def wait_for(self, count: int) -> list[Request]:
        for _ in range(2000):  # bounded: at most ~20 s
            if len(self.requests) >= count:
                break
            gevent.sleep(0.01)
        return self.requests


def _delivery_id(request: Request) -> str:
    stamp, signature = request.headers["x-cio-timestamp"], request.headers["x-cio-signature"]
    assert verify(SECRET, stamp, request.body, signature)
    return str(orjson.loads(request.body)["data"]["delivery_id"])


def _cart_message(port: int, user: str, clock: int) -> None:
    """``user`` enters cart_recovery at ``clock`` and the virtual clock passes the 1 h delay."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    assert _request(conn, "PUT", f"/api/v1/customers/{user}", {"email": f"{user}@example.com"}, clock) == 200
    body = {
        "name": "Added to Cart",
        "id": f"cart-{user}",
        "data": {"cart_total": 50},
        "timestamp": clock // 1000,
    }
    assert _request(conn, "POST", f"/api/v1/customers/{user}/events", body, clock) == 200
    conn.request("POST", "/_shopsim/clock", body=orjson.dumps({"now_ms": clock + 2 * HOUR}))
    assert orjson.loads(conn.getresponse().read())["fired"] == 1
    conn.close()


@pytest.mark.slow
def test_an_undelivered_webhook_report_survives_kill_9(tmp_path: Path, processes: list) -> None:
    db = tmp_path / "emu.db"
    refusing, working = Receiver(500), Receiver(200)
    try:
        proc, port = _serve(db, "--webhook-url", refusing.url, "--webhook-secret", SECRET)
        processes.append(proc)
        _cart_message(port, "u1", T0)
        (first,) = refusing.wait_for(1)[:1]  # the report was committed and tried at least once
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

        again, port = _serve(db, "--webhook-url", working.url, "--webhook-secret", SECRET)
        processes.append(again)
        (resent,) = working.wait_for(1)
        (journey,) = [r for r in _export(port) if r["kind"] == "journey"]
        assert journey["outcome"] == "sent"
        assert resent.body == first.body  # the very report, byte for byte
        assert _delivery_id(resent) == _delivery_id(first) == journey["delivery_id"]
        assert resent.path == "/hooks/cio"
    finally:
        refusing.server.stop()
        working.server.stop()


def test_a_delivered_report_is_not_sent_again_after_a_restart(tmp_path: Path) -> None:
    from generator.credentials import LOCAL_DEFAULTS
    from generator.emulator import start_emulator
    from generator.scenario.load import load_scenario

    db = tmp_path / "emu.db"
    scenario = load_scenario(SCENARIO)
    creds = dataclasses.replace(LOCAL_DEFAULTS, webhook_secret=SECRET)
    receiver = Receiver(200)
    try:
        with start_emulator(scenario=scenario, db=db, creds=creds, webhook_url=receiver.url) as emu:
            _cart_message(emu.port, "u1", T0)
            assert [_delivery_id(r) for r in receiver.wait_for(1)] == ["dlv000000000001"]
        with start_emulator(scenario=scenario, db=db, creds=creds, webhook_url=receiver.url) as emu:
            assert emu.webhooks is not None and emu.webhooks.resumed == 0
            _cart_message(emu.port, "u2", T0 + 3 * HOUR)
            # a resent report would be queued ahead of the new one, so the second arrival tells
            received = receiver.wait_for(2)
    finally:
        receiver.server.stop()
    assert [_delivery_id(r) for r in received] == ["dlv000000000001", "dlv000000000002"]
    assert orjson.loads(received[1].body)["data"]["identifiers"]["id"] == "u2"


def test_a_report_given_up_stays_recorded_and_is_not_retried(tmp_path: Path) -> None:
    from generator.emulator.campaigns import Delivery
    from generator.emulator.store import Store
    from generator.emulator.webhooks import Outbox, WebhookSender

    db = tmp_path / "emu.db"
    refusing = Receiver(500)
    store = Store(db)
    outbox = Outbox(store)
    delivery = Delivery(
        journey_seq=1,
        campaign="cart_recovery",
        campaign_id=1,
        delivery_id="dlv000000000001",
        metric="sent",
        at_ms=T0,
        trigger_event_id="E1",
        identifiers={"id": "u1", "email": "u1@example.com", "cio_id": "c1"},
        recipient="u1@example.com",
        reason="",
        message="Cart",
    )
    sender = WebhookSender(refusing.url, SECRET, outbox, max_attempts=3, backoff_s=0.01)
    try:
        sender.enqueue(delivery)
        refusing.wait_for(3)
        for _ in range(1000):  # bounded: the last failure is recorded right after its answer
            if sender.failed:
                break
            gevent.sleep(0.01)
        assert sender.failed == 1 and sender.pending() == 0 and len(refusing.requests) == 3
        assert len({r.body for r in refusing.requests}) == 1
    finally:
        sender.stop()
        refusing.server.stop()
        store.close()
    reopened = Store(db)
    try:
        assert Outbox(reopened).counts() == {"given_up": 1}
        assert reopened.query("SELECT attempts, last_error FROM webhook_outbox") == [(3, "HTTP 500")]
        assert Outbox(reopened).pending() == []
    finally:
        reopened.close()
