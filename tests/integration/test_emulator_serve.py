"""``shopsim serve`` wiring, signed reporting webhooks and the wall-clock scheduler, on loopback."""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import gevent
import orjson
import pytest

from generator.cli import main
from generator.credentials import Credentials
from generator.emulator import start_emulator
from generator.emulator.httpserver import HttpServer, Request, Response
from generator.emulator.webhooks import verify
from generator.scenario.model import Campaign

ROOT = Path(__file__).resolve().parents[2]
PIPE = "Basic " + base64.b64encode(b"shopsim-pipelines-key:").decode()
T0 = 1_793_620_800_000


def _post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url,
        data=orjson.dumps(body),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": PIPE, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        exc.close()
        return int(exc.code)


def _export(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "/_shopsim/export", timeout=10) as response:
        return [orjson.loads(line) for line in response.read().splitlines() if line]


class Receiver:
    """A webhook endpoint that fails the first ``fail_first`` posts with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[Request] = []
        self.attempts = 0
        self._fail_first = fail_first
        self.server = HttpServer(self._handle)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.port}/hooks/cio"

    def _handle(self, request: Request) -> Response:
        self.attempts += 1
        if self.attempts <= self._fail_first:
            return Response(500, b"{}")
        self.received.append(request)
        return Response(200, b"{}")

    def wait_for(self, count: int) -> list[Request]:
        for _ in range(1000):  # bounded: at most ~10 s
            if len(self.received) >= count:
                break
            gevent.sleep(0.01)
        return self.received


@pytest.mark.parametrize("fail_first", [0, 2])
def test_sent_and_dropped_messages_are_reported_by_signed_webhooks(fail_first: int) -> None:
    receiver = Receiver(fail_first=fail_first)
    creds = Credentials(
        site_id="s",
        api_key="k",
        pipelines_key="shopsim-pipelines-key",
        app_key="a",
        webhook_secret="whsec-test",
    )
    campaigns = {"cart": Campaign.model_validate({"trigger": {"event": "Added to Cart"}, "delay": "10m"})}
    try:
        with start_emulator(scenario=None, campaigns=campaigns, creds=creds, webhook_url=receiver.url) as emu:
            clock = {"X-Shopsim-Clock": str(T0)}
            assert (
                _post(
                    emu.url + "/v1/identify", {"userId": "u1", "traits": {"email": "u1@example.com"}}, clock
                )
                == 200
            )
            _post(emu.url + "/v1/track", {"userId": "u1", "event": "Added to Cart", "messageId": "E1"}, clock)
            _post(emu.url + "/v1/track", {"userId": "u2", "event": "Added to Cart", "messageId": "E2"}, clock)
            assert _post(emu.url + "/_shopsim/clock", {"now_ms": T0 + 3_600_000}) == 200
            received = receiver.wait_for(2)
    finally:
        receiver.server.stop()
    assert len(received) == 2 and receiver.attempts == 2 + fail_first
    reports = {}
    for request in received:
        assert request.path == "/hooks/cio"
        stamp, signature = request.headers["x-cio-timestamp"], request.headers["x-cio-signature"]
        assert verify("whsec-test", stamp, request.body, signature)
        report = orjson.loads(request.body)
        reports[report["data"]["trigger_event_id"]] = report
    sent, dropped = reports["E1"], reports["E2"]
    assert (sent["metric"], sent["object_type"], sent["timestamp"]) == (
        "sent",
        "email",
        (T0 + 600_000) // 1000,
    )
    assert sent["data"]["campaign_id"] == 1 and sent["data"]["identifiers"]["id"] == "u1"
    assert sent["data"]["recipient"] == "u1@example.com" and sent["data"]["delivery_id"]
    assert (dropped["metric"], dropped["data"]["failure_message"]) == ("dropped", "no_email")
    assert dropped["data"]["identifiers"]["id"] == "u2"


def test_wall_clock_scheduler_sends_when_real_time_reaches_the_delay() -> None:
    campaigns = {"cart": Campaign.model_validate({"trigger": {"event": "Added to Cart"}, "delay": "300ms"})}
    with start_emulator(scenario=None, campaigns=campaigns, clock="wall") as emu:
        _post(emu.url + "/v1/identify", {"userId": "u1", "traits": {"email": "u1@example.com"}})
        _post(emu.url + "/v1/track", {"userId": "u1", "event": "Added to Cart", "messageId": "E1"})
        outcome = None
        for _ in range(500):  # bounded: at most ~10 s
            journeys = [r for r in _export(emu.url) if r["kind"] == "journey"]
            outcome = journeys[0]["outcome"] if journeys else None
            if outcome == "sent":
                break
            gevent.sleep(0.02)
        assert outcome == "sent"
        assert _post(emu.url + "/_shopsim/clock", {"now_ms": T0}) == 409


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--latency", "{bogus: 1}"], "--latency"),
        (["--port", "70000"], "--port"),
        (["--dedupe-window", "soon"], "--dedupe-window"),
        (["--error-rate", "2"], "--error-rate"),
        (["--tls-cert", "x.pem"], "--tls-key"),
        (["--db", "/nonexistent-dir/x.db"], "--db"),
    ],
)
def test_serve_flag_errors_are_one_readable_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_serve_subprocess_wires_server_faults_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "generator", "serve", "--port", "0", "--error-rate", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        statuses = {_post(url + "/v1/track", {"userId": "u", "event": "x"}) for _ in range(4)}
        assert statuses == {500, 503}
        with urllib.request.urlopen(url + "/_shopsim/health", timeout=10) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "stopped" in err
