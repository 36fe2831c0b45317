"""A minimal, cheap HTTP/1.1 benchmark sink on loopback: every request gets ``200 {}``.

The load benchmark compares HTTP clients against a target on the same 2-core VM, so every
microsecond the target spends per request is taken from the clients. The fault-injecting
test server (:mod:`tests.support.faulty_server`, gevent, ~100 µs CPU per request) made the
target a third of the machine's work. This sink is one process, one ``epoll`` loop, no
greenlets, no per-request objects beyond the bytes themselves:

- HTTP/1.1 keep-alive; pipelined requests (several in one read) are answered in one ``send``;
- a request is a header block (up to ``MAX_HEADER`` bytes, ``CRLF CRLF``) plus a
  ``Content-Length`` body (up to ``MAX_BODY``), each possibly split across reads;
- every well-formed request: ``200``, ``Content-Type: application/json``, body ``{}``;
- a malformed request line, a bad or repeated ``Content-Length``: ``400``; a
  ``Transfer-Encoding`` body: ``411`` (it only takes ``Content-Length``); a header block above
  ``MAX_HEADER``: ``431``; a body above ``MAX_BODY``: ``413`` — then the connection is closed
  (the stream can no longer be framed). Never a 5xx, never a crash;
- ``Connection: close`` (or HTTP/1.0 without ``keep-alive``): answer, then close;
- records nothing; binds 127.0.0.1 only.

Run it (the benchmark does; the bound port is written atomically to ``--port-file``)::

    python -m tests.support.fast_sink --port-file PATH [--port 0]

:func:`frame` is the pure parser (tests drive it directly); :func:`serve` is the loop.
"""

from __future__ import annotations

import argparse
import errno
import re
import select
import signal
import socket
import sys
from pathlib import Path

__all__ = ["MAX_BODY", "MAX_HEADER", "OK", "Frame", "frame", "main", "serve"]

MAX_HEADER = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
READ_SIZE = 16 * 1024

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def _error(status: int, reason: str) -> bytes:
    body = reason.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


BAD_REQUEST = _error(400, "Bad Request")
LENGTH_REQUIRED = _error(411, "Length Required")
TOO_LARGE = _error(413, "Content Too Large")
HEADERS_TOO_LARGE = _error(431, "Request Header Fields Too Large")

# A request line (lower-cased): method token, target, HTTP/1.0 or 1.1; group 1 is the minor version.
_REQUEST_LINE = re.compile(rb"[a-z]+ [^ \r\n]+ http/1\.([01])\r\n")
_CONTENT_LENGTH = b"\r\ncontent-length:"
_TRANSFER_ENCODING = b"\r\ntransfer-encoding:"
_CONNECTION = b"\r\nconnection:"


Frame = tuple[int, int, bytes | None, bool, int]
"""``(answered, consumed, error, close, need)`` — see :func:`frame`."""


def _header(head: bytes | bytearray, at: int, name: bytes) -> bytes | bytearray:
    """The stripped value of the header ``name`` found at ``at`` in a lower-cased header block."""
    start = at + len(name)
    end = head.find(b"\r\n", start)
    return (head[start:] if end < 0 else head[start:end]).strip()


def frame(buf: bytes | bytearray, pos: int = 0) -> Frame:
    """Frame the complete requests in ``buf[pos:]``.

    Returns ``(answered, consumed, error, close, need)``: ``answered`` well-formed requests end
    at ``consumed``; ``error`` is the 4xx response to send after their answers (then close),
    else None; ``close`` is True when the last answered request asked to close the connection;
    ``need`` is how many bytes the next, incomplete request needs at least (0: unknown, wait
    for its header block).
    """
    n = len(buf)
    answered = 0
    while pos < n:
        if buf[pos] == 13 and buf.startswith(b"\r\n", pos):  # RFC 9112 §2.2: skip empty lines first
            pos += 2
            continue
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0 or end - pos > MAX_HEADER:
            return (answered, pos, HEADERS_TOO_LARGE if n - pos > MAX_HEADER else None, False, 0)
        # The block plus its first CRLF, so every header line starts with CRLF (also the last).
        head = buf[pos : end + 2].lower()
        line = _REQUEST_LINE.match(head)
        if line is None:
            return (answered, pos, BAD_REQUEST, False, 0)
        length = 0
        at = head.find(_CONTENT_LENGTH)
        if at >= 0:
            value = _header(head, at, _CONTENT_LENGTH)
            if not value.isdigit() or head.find(_CONTENT_LENGTH, at + 1) >= 0:
                return (answered, pos, BAD_REQUEST, False, 0)
            length = int(value)
            if length > MAX_BODY:
                return (answered, pos, TOO_LARGE, False, 0)
        if _TRANSFER_ENCODING in head:
            return (answered, pos, LENGTH_REQUIRED, False, 0)
        total = end + 4 - pos + length
        if pos + total > n:
            return (answered, pos, None, False, total)
        pos += total
        answered += 1
        at = head.find(_CONNECTION)
        if line.group(1) == b"0":  # HTTP/1.0: close unless asked to keep alive
            if at < 0 or b"keep-alive" not in _header(head, at, _CONNECTION):
                return (answered, pos, None, True, 0)
        elif at >= 0 and b"close" in _header(head, at, _CONNECTION):
            return (answered, pos, None, True, 0)
    return (answered, pos, None, False, 0)


class _Conn:
    """One client connection: unparsed input, unsent output, whether to close once sent."""

    __slots__ = ("buf", "closing", "need", "out", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.need = 0
        self.out = b""
        self.closing = False


def serve(listener: socket.socket) -> None:
    """Answer every request on ``listener`` (non-blocking, listening) until the process ends.

    Level-triggered ``epoll``: one ``recv`` per readable connection per wake-up, the answers
    to everything it completed sent at once. A connection whose answers do not fit the socket
    buffer stops being read until they are sent (back-pressure, bounded memory).
    """
    ep = select.epoll()
    lfd = listener.fileno()
    ep.register(lfd, select.EPOLLIN)
    conns: dict[int, _Conn] = {}
    readable = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
    writable = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR

    def close(fd: int, conn: _Conn) -> None:
        del conns[fd]
        ep.unregister(fd)
        conn.sock.close()

    def send(fd: int, conn: _Conn, data: bytes) -> None:
        """Send ``data`` (after anything still unsent); close once drained if ``closing``."""
        if conn.out:
            data = conn.out + data
        try:
            sent = conn.sock.send(data) if data else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            close(fd, conn)
            return
        was_waiting = bool(conn.out)
        conn.out = data[sent:]
        if conn.out:
            if not was_waiting:
                ep.modify(fd, writable)
        elif conn.closing:
            close(fd, conn)
        elif was_waiting:
            ep.modify(fd, select.EPOLLIN)

    def receive(fd: int, conn: _Conn, data: bytes) -> None:
        """Frame ``data`` after what ``conn`` buffered; answer what it completed."""
        buf: bytes | bytearray
        if conn.buf:
            conn.buf += data
            if len(conn.buf) < conn.need:  # a long body arriving: nothing to frame yet
                return
            buf = conn.buf
        else:
            buf = data
        answered, consumed, error, closing, need = frame(buf)
        if consumed == len(buf):
            conn.buf = bytearray()
        elif buf is conn.buf:
            del conn.buf[:consumed]
        else:
            conn.buf = bytearray(buf[consumed:])
        conn.need = need
        reply = OK * answered
        if error is not None or closing:
            conn.closing = True
            conn.buf = bytearray()
            if error is not None:
                reply += error
        send(fd, conn, reply)

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # e.g. EMFILE: leave it queued, try on the next wake-up
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conns[sock.fileno()] = _Conn(sock)
            ep.register(sock.fileno(), select.EPOLLIN)

    while True:
        try:
            events = ep.poll()
        except InterruptedError:
            continue
        for fd, mask in events:
            conn = conns.get(fd)
            if conn is None:
                if fd == lfd:
                    accept()
                continue
            if conn.out:
                if mask & writable:
                    send(fd, conn, b"")
                continue
            if conn.closing:
                close(fd, conn)
                continue
            if not mask & readable:
                continue
            try:
                data = conn.sock.recv(READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                close(fd, conn)
                continue
            if not data:
                close(fd, conn)
                continue
            if conn.buf:
                receive(fd, conn, data)
                continue
            # The common case, inline: whole requests in one read, nothing buffered or owed.
            answered, consumed, error, closing, _need = frame(data)
            if error is not None or closing or consumed != len(data):
                receive(fd, conn, data)
                continue
            if answered:
                reply = OK if answered == 1 else OK * answered
                try:
                    sent = conn.sock.send(reply)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    close(fd, conn)
                    continue
                if sent < len(reply):
                    conn.out = reply[sent:]
                    ep.modify(fd, writable)


def listen(port: int = 0) -> socket.socket:
    """A non-blocking listening socket on 127.0.0.1 (``port`` 0: any free port)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    return listener


def main(argv: list[str] | None = None) -> int:
    """Run the sink until SIGTERM/SIGINT; write the bound port to ``--port-file``."""
    parser = argparse.ArgumentParser(description="minimal HTTP/1.1 sink: 200 {} to every request")
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    listener = listen(args.port)
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(listener.getsockname()[1]))
    tmp.replace(args.port_file)

    def stop(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        serve(listener)
    except (KeyboardInterrupt, SystemExit):
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
