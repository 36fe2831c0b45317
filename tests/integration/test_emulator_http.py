"""The emulator's HTTP/1.1 layer over real loopback sockets (port 0)."""

from __future__ import annotations

import base64
import gzip
import socket
from collections.abc import Iterator

import orjson
import pytest

from generator.emulator import EmulatorHandle, start_emulator

PIPE = "Basic " + base64.b64encode(b"shopsim-pipelines-key:").decode()


_OPEN: list[socket.socket] = []


@pytest.fixture()
def emu() -> Iterator[EmulatorHandle]:
    with start_emulator(scenario=None, max_body=1_000_000) as handle:
        try:
            yield handle
        finally:
            while _OPEN:
                _OPEN.pop().close()


def _connect(emu: EmulatorHandle) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
    _OPEN.append(sock)
    return sock


def _read_response(sock: socket.socket, buf: bytes = b"") -> tuple[int, dict[str, str], bytes, bytes]:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed, got {buf!r}")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(buf) < length:
            buf += sock.recv(65536)
        return status, headers, buf[:length], buf[length:]
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf += sock.recv(65536)
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line, 16)
            while len(buf) < size + 2:
                buf += sock.recv(65536)
            body += buf[:size]
            buf = buf[size + 2 :]
            if size == 0:
                return status, headers, body, buf
    return status, headers, b"", buf


def _track(message_id: str, *, close: bool = False) -> bytes:
    body = orjson.dumps({"userId": "u1", "event": "Viewed", "messageId": message_id})
    connection = "Connection: close\r\n" if close else ""
    return (
        f"POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: {PIPE}\r\nContent-Type: application/json\r\n"
        f"{connection}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _event_ids(emu: EmulatorHandle) -> list[str]:
    import urllib.request

    with urllib.request.urlopen(emu.url + "/_shopsim/export?kinds=event", timeout=10) as response:
        return [orjson.loads(line)["event_id"] for line in response.read().splitlines() if line]


def test_keep_alive_and_pipelined_requests(emu: EmulatorHandle) -> None:
    sock = _connect(emu)
    sock.sendall(_track("m1") + _track("m2") + _track("m3"))
    buf = b""
    for _ in range(3):
        status, headers, body, buf = _read_response(sock, buf)
        assert (status, body) == (200, b"{}") and "connection" not in headers
    sock.sendall(_track("m4", close=True))
    status, headers, _, _ = _read_response(sock, buf)
    assert status == 200 and headers["connection"] == "close"
    assert sock.recv(10) == b""
    assert _event_ids(emu) == ["m1", "m2", "m3", "m4"]


def test_chunked_request_body_and_expect_continue(emu: EmulatorHandle) -> None:
    body = orjson.dumps({"userId": "u1", "event": "Viewed", "messageId": "c1"})
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    sock = _connect(emu)
    sock.sendall(
        f"POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: {PIPE}\r\nTransfer-Encoding: chunked\r\n"
        "Expect: 100-continue\r\n\r\n".encode()
    )
    status, _, _, buf = _read_response(sock)
    assert status == 100
    sock.sendall(chunks)
    status, _, payload, _ = _read_response(sock, buf)
    assert (status, payload) == (200, b"{}")
    assert _event_ids(emu) == ["c1"]


def test_gzip_content_encoding_over_the_wire(emu: EmulatorHandle) -> None:
    body = gzip.compress(
        orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": "g1"}]})
    )
    sock = _connect(emu)
    sock.sendall(
        f"POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: {PIPE}\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert _read_response(sock)[0] == 200
    assert _event_ids(emu) == ["g1"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"garbage\r\n\r\n", 400),
        (b"GET /x HTTP/9.9\r\n\r\n", 400),
        (b"GET /_shopsim/health HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"POST /v1/track HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
        (b"POST /v1/track HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n", 413),
        (b"POST /v1/track HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST /v1/track HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"GET /_shopsim/health HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (b"GET nopath HTTP/1.1\r\n\r\n", 400),
    ],
)
def test_bad_requests_get_a_4xx_and_the_server_lives_on(emu: EmulatorHandle, raw: bytes, status: int) -> None:
    sock = _connect(emu)
    sock.sendall(raw)
    got, headers, body, _ = _read_response(sock)
    assert got == status and headers["connection"] == "close"
    assert orjson.loads(body)["meta"]["errors"]
    sock.close()
    health = _connect(emu)
    health.sendall(b"GET /_shopsim/health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _read_response(health)[0] == 200


def test_chunked_body_over_the_limit_is_413(emu: EmulatorHandle) -> None:
    sock = _connect(emu)
    sock.sendall(b"POST /v1/track HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"a" * 400_000
    for _ in range(3):
        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    assert _read_response(sock)[0] == 413


def test_http_1_0_closes_and_absolute_form_targets_work(emu: EmulatorHandle) -> None:
    sock = _connect(emu)
    sock.sendall(f"GET http://127.0.0.1:{emu.port}/_shopsim/health HTTP/1.0\r\n\r\n".encode())
    status, headers, body, _ = _read_response(sock)
    assert status == 200 and headers["connection"] == "close" and orjson.loads(body)["status"] == "ok"


def test_export_streams_chunked(emu: EmulatorHandle) -> None:
    sock = _connect(emu)
    sock.sendall(_track("e1"))
    _read_response(sock)
    sock.sendall(b"GET /_shopsim/export HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, _ = _read_response(sock)
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert headers["content-type"] == "application/x-ndjson"
    kinds = [orjson.loads(line)["kind"] for line in body.splitlines()]
    assert kinds == ["profile", "event"]
