"""The benchmark sink as the benchmark runs it: a subprocess on a loopback port, real sockets."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fast_sink import MAX_BODY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    port_file = tmp_path_factory.mktemp("sink") / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fast_sink", "--port-file", str(port_file)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):  # bounded: 30 s
            if port_file.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert port_file.exists(), proc.stderr.read().decode() if proc.stderr else "sink did not start"
        yield "127.0.0.1", int(port_file.read_text())
        assert proc.poll() is None, "the sink died during the tests"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def connect(sink: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(sink, timeout=10)
    sock.settimeout(10)
    return sock


def request(body: bytes, *, extra: str = "") -> bytes:
    head = f"POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


class Reader:
    """Reads whole responses (status, headers, body) off a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buf += data

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buf) < length:
            self._more()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def closed(self) -> bool:
        """True when the server closed the connection (after any pending bytes)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def test_keep_alive_answers_every_request_200_json(sink: tuple[str, int]) -> None:
    with connect(sink) as sock:
        reader = Reader(sock)
        for i in range(5):
            sock.sendall(request(b'{"n":%d}' % i))
            status, headers, body = reader.response()
            assert (status, body) == (200, b"{}")
            assert headers["content-type"] == "application/json"


def test_pipelined_requests_get_all_their_answers(sink: tuple[str, int]) -> None:
    with connect(sink) as sock:
        reader = Reader(sock)
        sock.sendall(b"".join(request(b"x" * i) for i in range(50)))
        assert [reader.response()[0] for _ in range(50)] == [200] * 50
        sock.sendall(request(b"{}"))  # still alive afterwards
        assert reader.response()[2] == b"{}"


def test_header_and_body_split_across_reads(sink: tuple[str, int]) -> None:
    data = request(b'{"type":"track","event":"Added to Cart"}')
    with connect(sink) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = Reader(sock)
        for cut in (10, len(data) - 5):
            sock.sendall(data[:cut])
            time.sleep(0.02)  # let the sink read the first part on its own
            sock.sendall(data[cut:])
            assert reader.response()[:1] == (200,)


def test_large_body_in_many_reads(sink: tuple[str, int]) -> None:
    body = b"a" * (3 * 1024 * 1024)
    with connect(sink) as sock:
        reader = Reader(sock)
        sock.sendall(request(body) + request(b"{}"))
        assert [reader.response()[0] for _ in range(2)] == [200, 200]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"HELLO\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
        (f"POST / HTTP/1.1\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode(), 413),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000, 431),
    ],
)
def test_bad_request_gets_4xx_then_close_and_the_sink_lives_on(
    sink: tuple[str, int], data: bytes, status: int
) -> None:
    with connect(sink) as sock:
        reader = Reader(sock)
        sock.sendall(request(b"{}") + data)
        assert reader.response()[0] == 200  # the good request before it is still answered
        assert reader.response()[0] == status
        assert reader.closed()
    with connect(sink) as sock:
        sock.sendall(request(b"{}"))
        assert Reader(sock).response()[0] == 200


def test_connection_close_is_honoured(sink: tuple[str, int]) -> None:
    with connect(sink) as sock:
        reader = Reader(sock)
        sock.sendall(request(b"{}", extra="Connection: close\r\n") + request(b"{}"))
        assert reader.response()[0] == 200
        assert reader.closed()


def test_client_that_vanishes_mid_request_does_not_hurt(sink: tuple[str, int]) -> None:
    for _ in range(20):
        with connect(sink) as sock:
            sock.sendall(request(b"x" * 100)[:-50])
    with connect(sink) as sock:
        sock.sendall(request(b"{}"))
        assert Reader(sock).response()[0] == 200
