"""A lean HTTP/1.1 server on ``gevent.server.StreamServer``.

Why not ``gevent.pywsgi``: the emulator must ingest thousands of requests per second on one
core, and pywsgi spends most of that budget building WSGI environs and file objects (measured
in ``tests/bench/bench_emulator.py``). This server parses only what the emulator needs:

- request line + headers (limit :data:`MAX_HEADER_BYTES`, else ``431``), keep-alive
  (HTTP/1.1 default; ``Connection: close`` honoured; HTTP/1.0 closes unless keep-alive),
  pipelined requests on one connection;
- bodies by ``Content-Length`` or ``Transfer-Encoding: chunked`` (limit ``max_body``, else
  ``413`` and the connection closes), ``Expect: 100-continue``;
- garbage (bad request line, bad header, bad length, bad chunk) → ``400`` and close.

The handler is a plain function ``(Request) -> Response``; a response body is ``bytes`` or an
iterator of ``bytes`` (sent chunked, for streaming exports). Each connection is one greenlet.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import gevent
from gevent.server import StreamServer

MAX_HEADER_BYTES = 16 * 1024
"""Request line + headers; more answers ``431``."""

DEFAULT_MAX_BODY = 8 * 1024 * 1024
"""Raw (possibly gzip) body bytes accepted; more answers ``413``."""

_REASONS = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    207: "Multi-Status",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


@dataclass(slots=True)
class Request:
    """One parsed request. Header names are lower-case; ``path`` is percent-decoded per segment
    by :meth:`segments`, kept raw here."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    peer: str = ""
    version: str = "HTTP/1.1"

    def segments(self) -> list[str]:
        """The path split on ``/`` with each segment percent-decoded (``%2F`` stays inside)."""
        parts = self.path.split("/")[1:]
        return [unquote(part) for part in parts] if "%" in self.path else parts


@dataclass(slots=True)
class Response:
    """What a handler returns. ``body`` bytes are sent with Content-Length; an iterator is sent chunked."""

    status: int
    body: bytes | Iterable[bytes] = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


Handler = Callable[[Request], Response]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpServer:
    """Serve ``handler`` on ``(host, port)``; ``port=0`` picks a free port (read :attr:`port`)."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body: int = DEFAULT_MAX_BODY,
        certfile: str | None = None,
        keyfile: str | None = None,
        backlog: int = 1024,
    ) -> None:
        self._handler = handler
        self._max_body = max_body
        self._ssl: ssl.SSLContext | None = None
        if certfile:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certfile, keyfile)
            self._ssl = context
        self._server = StreamServer((host, port), self._serve_connection, backlog=backlog)
        self._server.init_socket()
        self.connections = 0

    @property
    def port(self) -> int:
        """The bound port."""
        port: int = self._server.server_port
        return port

    @property
    def scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    def start(self) -> None:
        """Start accepting in the background (gevent)."""
        self._server.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop accepting and close open connections."""
        self._server.stop(timeout=timeout)

    # ------------------------------------------------------------------ connection loop

    def _serve_connection(self, sock: socket.socket, address: Any) -> None:
        self.connections += 1
        if self._ssl is not None:
            try:
                sock = self._ssl.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                sock.close()
                return
        # No per-socket timeout: gevent arms a timer on every recv/send of a socket with one,
        # which costs more than the request itself; idle keep-alive connections are closed by
        # the client (or when the server stops).
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        buf = b""
        try:
            while True:
                try:
                    request, buf, keep_alive = self._read_request(sock, buf, peer)
                except _BadRequest as bad:
                    self._send(sock, _error_response(bad.status, bad.message), keep_alive=False)
                    return
                if request is None:
                    return  # clean EOF between requests
                response = self._call(request)
                keep_alive = keep_alive and not response.close
                if request.method == "HEAD":
                    response = _headless(response)
                if request.version == "HTTP/1.0" and not isinstance(response.body, bytes | bytearray):
                    # HTTP/1.0 has no chunked encoding: stream the body raw and end it by closing
                    keep_alive = False
                    self._send(sock, response, keep_alive=False, raw_stream=True)
                    return
                self._send(sock, response, keep_alive=keep_alive)
                if not keep_alive:
                    return
        except (OSError, TimeoutError, ssl.SSLError):
            return  # peer went away or idled out
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def _call(self, request: Request) -> Response:
        try:
            return self._handler(request)
        except gevent.GreenletExit:
            raise
        except Exception as exc:  # a handler bug must not kill the connection loop silently
            import logging

            logging.getLogger("shopsim.emulator").exception(
                "handler error on %s %s", request.method, request.path
            )
            return _error_response(500, f"internal error: {type(exc).__name__}")

    def _read_request(self, sock: socket.socket, buf: bytes, peer: str) -> tuple[Request | None, bytes, bool]:
        # --- headers
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise _BadRequest(431, "request headers too large")
            chunk = sock.recv(65536)
            if not chunk:
                if buf.strip():
                    raise _BadRequest(400, "incomplete request")
                return None, b"", False
            buf += chunk
            end = buf.find(b"\r\n\r\n")
        if end > MAX_HEADER_BYTES:
            raise _BadRequest(431, "request headers too large")
        head = buf[:end]
        buf = buf[end + 4 :]
        # tolerate leading empty lines (RFC 9112 §2.2)
        head = head.lstrip(b"\r\n")
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise _BadRequest(400, "undecodable request head") from None
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
            raise _BadRequest(400, "malformed request line")
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            # 400 rather than 505: bad input never gets a 5xx from the emulator
            raise _BadRequest(400, "malformed request line (only HTTP/1.0 and HTTP/1.1 are supported)")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
                raise _BadRequest(400, "malformed header line")
            key = name.lower()
            value = value.strip()
            if key in headers:
                if key in ("content-length", "host"):
                    if headers[key] != value:
                        raise _BadRequest(400, f"conflicting {key} headers")
                    continue
                headers[key] = headers[key] + ", " + value
            else:
                headers[key] = value
        conn = headers.get("connection", "").lower()
        keep_alive = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
        path, _, query = target.partition("?")
        if target.startswith(("http://", "https://")):  # absolute-form
            rest = target.split("://", 1)[1]
            slash = rest.find("/")
            path_query = rest[slash:] if slash >= 0 else "/"
            path, _, query = path_query.partition("?")
        if not path.startswith("/"):
            raise _BadRequest(400, "request target must be a path")

        # --- body
        transfer = headers.get("transfer-encoding", "").lower()
        expect_continue = headers.get("expect", "").lower() == "100-continue"
        if transfer:
            if transfer != "chunked":
                raise _BadRequest(400, f"unsupported transfer-encoding {transfer[:40]!r}; use chunked")
            if "content-length" in headers:
                raise _BadRequest(400, "both content-length and transfer-encoding given")
            if expect_continue:
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body, buf = self._read_chunked(sock, buf)
        else:
            raw_length = headers.get("content-length")
            if raw_length is None:
                length = 0
            else:
                # ASCII only: str.isdigit() is True for '²' (b"\xb2"), which int() rejects
                if not (raw_length.isascii() and raw_length.isdigit()) or len(raw_length) > 18:
                    raise _BadRequest(400, "invalid content-length")
                length = int(raw_length)
            if length > self._max_body:
                raise _BadRequest(413, f"request body larger than {self._max_body} bytes")
            if expect_continue and length > len(buf):
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            while len(buf) < length:
                chunk = sock.recv(max(65536, min(length - len(buf), 1 << 20)))
                if not chunk:
                    raise OSError("connection closed inside a body")
                buf += chunk
            body = buf[:length]
            buf = buf[length:]
        request = Request(
            method=method, path=path, query=query, headers=headers, body=body, peer=peer, version=version
        )
        return request, buf, keep_alive

    def _read_chunked(self, sock: socket.socket, buf: bytes) -> tuple[bytes, bytes]:
        out: list[bytes] = []
        total = 0
        while True:
            line_end = buf.find(b"\r\n")
            while line_end < 0:
                if len(buf) > 1024:
                    raise _BadRequest(400, "malformed chunk size line")
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError("connection closed inside a chunked body")
                buf += chunk
                line_end = buf.find(b"\r\n")
            size_text = buf[:line_end].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequest(400, "malformed chunk size") from None
            if size < 0:
                raise _BadRequest(400, "malformed chunk size")
            buf = buf[line_end + 2 :]
            if size == 0:
                # trailers end with an empty line
                while True:
                    end = buf.find(b"\r\n")
                    while end < 0:
                        if len(buf) > MAX_HEADER_BYTES:
                            raise _BadRequest(431, "chunked trailers too large")
                        chunk = sock.recv(65536)
                        if not chunk:
                            raise OSError("connection closed inside chunked trailers")
                        buf += chunk
                        end = buf.find(b"\r\n")
                    line = buf[:end]
                    buf = buf[end + 2 :]
                    if not line:
                        return b"".join(out), buf
            total += size
            if total > self._max_body:
                raise _BadRequest(413, f"request body larger than {self._max_body} bytes")
            while len(buf) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError("connection closed inside a chunk")
                buf += chunk
            if buf[size : size + 2] != b"\r\n":
                raise _BadRequest(400, "chunk not terminated by CRLF")
            out.append(buf[:size])
            buf = buf[size + 2 :]

    def _send(
        self, sock: socket.socket, response: Response, *, keep_alive: bool, raw_stream: bool = False
    ) -> None:
        status = response.status
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"]
        for name, value in response.headers.items():
            head.append(f"{name}: {value}\r\n")
        if response.content_type:
            head.append(f"Content-Type: {response.content_type}\r\n")
        if not keep_alive:
            head.append("Connection: close\r\n")
        body = response.body
        if isinstance(body, bytes | bytearray):
            head.append(f"Content-Length: {len(body)}\r\n\r\n")
            data = "".join(head).encode("latin-1") + body
            sent = sock.send(data)  # one syscall in the common case (a small response)
            if sent < len(data):
                sock.sendall(data[sent:])
            return
        if raw_stream:
            sock.sendall(("".join(head) + "\r\n").encode("latin-1"))
            for piece in _iterate(body):
                sock.sendall(piece)
            return
        head.append("Transfer-Encoding: chunked\r\n\r\n")
        sock.sendall("".join(head).encode("latin-1"))
        pending: list[bytes] = []
        size = 0
        for piece in _iterate(body):
            if not piece:
                continue
            pending.append(piece)
            size += len(piece)
            if size >= 65536:
                data = b"".join(pending)
                sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
                pending, size = [], 0
        if pending:
            data = b"".join(pending)
            sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
        sock.sendall(b"0\r\n\r\n")


def _iterate(body: Iterable[bytes]) -> Iterator[bytes]:
    yield from body


def _headless(response: Response) -> Response:
    """A HEAD answer: the same status and headers, no body."""
    return Response(
        response.status,
        b"",
        content_type=response.content_type,
        headers=response.headers,
        close=response.close,
    )


def _error_response(status: int, message: str) -> Response:
    import orjson

    return Response(status, orjson.dumps({"meta": {"errors": [message]}}), close=True)
