"""A 2xx means committed: ``kill -9`` the server mid-ingestion, restart it on the same ``--db``,
and every acknowledged event and the campaign state are still there."""

from __future__ import annotations

import base64
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

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "clean_baseline.yaml"
T0 = 1_793_620_800_000
HOUR = 3_600_000
TRACK = "Basic " + base64.b64encode(b"shopsim-site:shopsim-track-key").decode()


def _serve(db: Path) -> tuple[subprocess.Popen[str], int]:
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
