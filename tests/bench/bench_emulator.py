"""Durable ingestion throughput of the emulator on one core (issue 4).

The server runs in a subprocess pinned to one CPU (``os.sched_setaffinity``), the load
generator in this process on another CPU: gevent sockets, keep-alive connections, requests
pre-encoded so the client stays cheaper than the server. Figures (all from one run, so the
ratios are comparable on a noisy shared machine):

- ``bare_rps``: a minimal responder on the same HTTP layer answering ``200 {}`` with no work;
- ``pywsgi_bare_rps``: the same with ``gevent.pywsgi`` (why the emulator has its own parser);
- ``track_v1_rps``: per-call ``POST /api/v1/customers/{id}/events`` into a durable store
  (``--db`` file, WAL, synchronous NORMAL; every 2xx committed), target ≥ 3,000/s;
- ``track_v1_full_rps``: the same with synchronous FULL;
- ``batch_events_per_s``: events/s through ``POST /v1/batch`` (100 events per request),
  target ≥ 20,000/s;
- ``sqlite_share``: seconds inside SQLite (statements + commits, monotonic clock) / server CPU
  seconds, per workload.

Each rate is reported twice: achieved (per wall second) and per server CPU-second (the
capacity of one dedicated core). On a shared 2-core machine the pinned server often gets only a
fraction of its core (``*_server_cpu_utilisation``), so the per-CPU-second figures and the
ratios against the bare responder are the comparable ones.

Writes ``results/bench/emulator.json``.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

DURATION_S = 5.0
WARMUP_S = 1.0
CONNECTIONS = 32
BATCH = 100
PEOPLE = 500
"""Events are spread over this many people: their profiles exist after the warm-up, as in a real
stream where a shopper sends many events (a first event creates the profile)."""

_BARE_SERVER = r"""
import sys
from gevent import pywsgi
from generator.emulator.httpserver import HttpServer, Response
kind = sys.argv[1]
if kind == "lean":
    server = HttpServer(lambda req: Response(200, b"{}"), port=0)
    server.start()
    port = server.port
else:
    def app(environ, start_response):
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]
    server = pywsgi.WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
    server.start()
    port = server.server_port
print(f"http://127.0.0.1:{port}", flush=True)
import gevent
gevent.wait()
"""


def _pin(cpu: int) -> None:
    try:
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def _spawn(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: _pin(0),
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError("server did not start")
    return proc, url


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _drive(port: int, make: Any, *, seconds: float, connections: int = CONNECTIONS) -> tuple[int, int, float]:
    """Send requests from ``make(n) -> bytes`` on keep-alive connections; (ok, failed, elapsed)."""
    import gevent
    from gevent import socket as gsocket

    state = {"n": 0, "ok": 0, "failed": 0, "stop": False}

    def worker() -> None:
        sock = gsocket.create_connection(("127.0.0.1", port))
        buf = b""
        try:
            while not state["stop"]:
                state["n"] += 1
                sock.sendall(make(state["n"]))
                while b"\r\n\r\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                while len(buf) < length:
                    buf += sock.recv(65536)
                buf = buf[length:]
                if 200 <= status < 300:
                    state["ok"] += 1
                else:
                    state["failed"] += 1
        finally:
            sock.close()

    greenlets = [gevent.spawn(worker) for _ in range(connections)]
    gevent.sleep(WARMUP_S)
    ok0, failed0 = state["ok"], state["failed"]
    started = time.perf_counter()
    gevent.sleep(seconds)
    ok, failed = state["ok"] - ok0, state["failed"] - failed0
    elapsed = time.perf_counter() - started
    state["stop"] = True
    gevent.joinall(greenlets, timeout=5)
    gevent.killall(greenlets)
    return ok, failed, elapsed


def _stats(port: int) -> dict[str, Any]:
    from gevent import socket as gsocket

    sock = gsocket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /_shopsim/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    stats: dict[str, Any] = orjson.loads(data.partition(b"\r\n\r\n")[2])
    return stats


def _track_request(n: int) -> bytes:
    body = orjson.dumps(
        {
            "name": "Product Viewed",
            "id": f"01BENCH{n:019d}",
            "timestamp": 1_790_000_000 + n // 100,
            "data": {"product_id": f"p{n % 500}", "price": 19.5, "currency": "USD", "sku": "sku-1"},
        }
    )
    return (
        b"POST /api/v1/customers/u%d/events HTTP/1.1\r\nHost: bench\r\nAuthorization: %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (n % PEOPLE, _TRACK_AUTH, len(body))
    ) + body


def _batch_request(n: int) -> bytes:
    base = n * BATCH
    items = [
        {
            "type": "track",
            "userId": f"u{(base + i) % PEOPLE}",
            "event": "Product Viewed",
            "messageId": f"m{base + i:024d}",
            "timestamp": "2026-11-02T12:00:00.000Z",
            "properties": {"product_id": f"p{i}", "price": 19.5, "currency": "USD", "sku": "sku-1"},
            "context": {"library": {"name": "bench"}},
        }
        for i in range(BATCH)
    ]
    body = orjson.dumps({"batch": items})
    return (
        b"POST /v1/batch HTTP/1.1\r\nHost: bench\r\nAuthorization: %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (_PIPE_AUTH, len(body))
    ) + body


_TRACK_AUTH = b"Basic " + base64.b64encode(b"shopsim-site:shopsim-track-key")
_PIPE_AUTH = b"Basic " + base64.b64encode(b"shopsim-pipelines-key:")


def _cpu_s(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _bare(kind: str) -> tuple[float, float]:
    """(requests/s achieved, requests per server CPU-second) of a no-work responder."""
    proc, url = _spawn([sys.executable, "-c", _BARE_SERVER, kind])
    try:
        port = int(url.rsplit(":", 1)[1])
        cpu0 = _cpu_s(proc.pid)
        ok, _failed, elapsed = _drive(port, _track_request, seconds=DURATION_S)
        cpu = _cpu_s(proc.pid) - cpu0
        return ok / elapsed, ok / max(cpu, 1e-9)
    finally:
        _stop(proc)


def _emulator(make: Any, *, sync: str, per_request: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        proc, url = _spawn(
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
                "wall",
                "--sync",
                sync,
            ]
        )
        try:
            port = int(url.rsplit(":", 1)[1])
            before = _stats(port)
            cpu0 = _cpu_s(proc.pid)
            ok, failed, elapsed = _drive(port, make, seconds=DURATION_S)
            cpu = _cpu_s(proc.pid) - cpu0
            after = _stats(port)
        finally:
            _stop(proc)
    sqlite = after["sqlite_s"] - before["sqlite_s"]
    commits = after["commits"] - before["commits"]
    return {
        "requests_per_s": round(ok / elapsed, 1),
        "events_per_s": round(ok * per_request / elapsed, 1),
        "failed": failed,
        "requests_per_cpu_s": round(ok / max(cpu, 1e-9), 1),
        "events_per_cpu_s": round(ok * per_request / max(cpu, 1e-9), 1),
        "server_cpu_utilisation": round(cpu / elapsed, 3),
        "sqlite_share": round(min(1.0, sqlite / cpu), 3) if cpu > 0 else None,
        "requests_per_commit": round((after["requests"] - before["requests"]) / max(1, commits), 1),
    }


def run(out_dir: Path) -> dict[str, Any]:
    """Run every measurement and write ``out_dir/emulator.json``."""
    _pin(1)
    bare, bare_cpu = _bare("lean")
    pywsgi, pywsgi_cpu = _bare("pywsgi")
    track = _emulator(_track_request, sync="NORMAL", per_request=1)
    track_full = _emulator(_track_request, sync="FULL", per_request=1)
    batch = _emulator(_batch_request, sync="NORMAL", per_request=BATCH)
    result = {
        "cpus": os.cpu_count(),
        "connections": CONNECTIONS,
        "duration_s": DURATION_S,
        "bare_rps": round(bare, 1),
        "bare_requests_per_cpu_s": round(bare_cpu, 1),
        "pywsgi_bare_rps": round(pywsgi, 1),
        "pywsgi_bare_requests_per_cpu_s": round(pywsgi_cpu, 1),
        "track_v1_rps": track["requests_per_s"],
        "track_v1_requests_per_cpu_s": track["requests_per_cpu_s"],
        "track_v1_server_cpu_utilisation": track["server_cpu_utilisation"],
        "track_v1_vs_bare": round(track["requests_per_s"] / bare, 3),
        "track_v1_vs_bare_per_cpu_s": round(track["requests_per_cpu_s"] / bare_cpu, 3),
        "track_v1_sqlite_share": track["sqlite_share"],
        "track_v1_requests_per_commit": track["requests_per_commit"],
        "track_v1_full_rps": track_full["requests_per_s"],
        "track_v1_full_requests_per_cpu_s": track_full["requests_per_cpu_s"],
        "track_v1_full_requests_per_commit": track_full["requests_per_commit"],
        "batch_events_per_s": batch["events_per_s"],
        "batch_events_per_cpu_s": batch["events_per_cpu_s"],
        "batch_server_cpu_utilisation": batch["server_cpu_utilisation"],
        "batch_requests_per_s": batch["requests_per_s"],
        "batch_vs_bare_requests": round(batch["requests_per_s"] / bare, 3),
        "batch_sqlite_share": batch["sqlite_share"],
        "targets": {"track_v1_rps": 3000, "batch_events_per_s": 20000},
        "failed_requests": track["failed"] + track_full["failed"] + batch["failed"],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "emulator.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return result


if __name__ == "__main__":  # pragma: no cover
    print(orjson.dumps(run(Path("results/bench")), option=orjson.OPT_INDENT_2).decode())
