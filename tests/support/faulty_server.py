"""A small gevent HTTP/1.1 test server on loopback that can misbehave on purpose.

It speaks just enough HTTP/1.1 for the sender (Content-Length bodies, keep-alive) and, per
request, does what a *policy* says: answer with any status, headers and body (optionally after
a delay), reset the connection (RST, no answer) or close it (FIN, no answer). Every request is
recorded with what was done to it, so a test can prove from the server's side which event ids
were acknowledged and how often.

In process (integration tests)::

    with FaultyServer(policy) as server:          # binds 127.0.0.1 port 0
        send_plan(..., target=server.url, ...)
        server.received   # [Received(seq, method, path, headers, body, action, status)]

As a subprocess (benchmark sink: a separate core for the server)::

    python -m tests.support.faulty_server --port-file PATH   # answers 200 {} to everything, records nothing
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import gevent
from gevent.server import StreamServer


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer with ``status``/``body``/``headers`` after ``delay`` seconds."""

    status: int = 200
    body: bytes = b"{}"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Reset:
    """Abort the connection with a TCP RST before answering (the request is *not* processed)."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection cleanly before answering (the request is *not* processed)."""


Action = Respond | Reset | Close
OK = Respond()


@dataclass(frozen=True, slots=True)
class Incoming:
    """A request as the policy sees it (``seq`` counts every request the server read, from 0)."""

    seq: int
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Received:
    """A recorded request and what the server did: ``status`` is ``None`` for a reset/close."""

    seq: int
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    action: str
    status: int | None


Policy = Callable[[Incoming], Action]


def always_ok(_: Incoming) -> Action:
    """The default policy: ``200 {}`` to everything."""
    return OK


def scripted(*actions: Action, then: Action = OK) -> Policy:
    """Answer the first requests with ``actions`` in order, every later one with ``then``."""
    queue = list(actions)

    def policy(incoming: Incoming) -> Action:
        return queue.pop(0) if queue else then

    return policy


class FaultyServer:
    """The misbehaving loopback server (see the module docstring)."""

    def __init__(
        self, policy: Policy = always_ok, *, host: str = "127.0.0.1", port: int = 0, record: bool = True
    ):
        self.policy = policy
        self.record = record
        self.received: list[Received] = []
        self.connections = 0
        self._seq = 0
        self._server = StreamServer((host, port), self._handle)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultyServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(timeout=1)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP

    def _handle(self, sock: socket.socket, _address: object) -> None:
        self.connections += 1
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    chunk = sock.recv(max(65536, length - len(buffer)))
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                incoming = Incoming(seq=self._seq, method=method, path=path, headers=headers, body=body)
                self._seq += 1
                action = self.policy(incoming)
                if isinstance(action, Reset):
                    self._log(incoming, "reset", None)
                    # SO_LINGER with a zero timeout turns close() into a RST.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if isinstance(action, Close):
                    self._log(incoming, "close", None)
                    return
                if action.delay:
                    gevent.sleep(action.delay)
                self._log(incoming, "respond", action.status)
                extra = "".join(f"{k}: {v}\r\n" for k, v in action.headers.items())
                sock.sendall(
                    (
                        f"HTTP/1.1 {action.status} X\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(action.body)}\r\n{extra}\r\n"
                    ).encode("latin-1")
                    + action.body
                )
                if headers.get("connection", "").lower() == "close":
                    return
        except OSError:
            return
        finally:
            sock.close()

    def _log(self, incoming: Incoming, action: str, status: int | None) -> None:
        if self.record:
            self.received.append(
                Received(
                    seq=incoming.seq,
                    method=incoming.method,
                    path=incoming.path,
                    headers=incoming.headers,
                    body=incoming.body,
                    action=action,
                    status=status,
                )
            )


def main(argv: list[str] | None = None) -> int:
    """Run a plain ``200 {}`` sink until killed; write the bound port to ``--port-file``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    server = FaultyServer(record=False).start()
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.port))
    tmp.replace(args.port_file)
    try:
        while True:
            gevent.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
