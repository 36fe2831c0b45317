"""The one-method network seam of the HTTP sender.

``Transport.request(method, path, headers, body) -> Response`` is all the sender knows about
the network (the ``httpx`` ``BaseTransport`` idea, without httpx: one concurrency model,
gevent). Two implementations:

- :class:`GeventTransport` — geventhttpclient ``HTTPClient`` with a keep-alive connection pool
  of ``concurrency`` sockets; what ``shopsim send`` uses.
- :class:`FunctionTransport` — any plain ``fn(Request) -> Response`` becomes a transport; unit
  tests script status codes, headers and connection failures with it and read back what was
  sent from ``.requests``.

A failure below HTTP (refused, reset, timeout, a response that cannot be parsed) is raised as
:class:`TransportError`; the sender treats it as retryable. An HTTP status is never an
exception here: classifying 2xx/4xx/5xx is the sender's job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

__all__ = [
    "FunctionTransport",
    "GeventTransport",
    "Request",
    "Response",
    "Transport",
    "TransportError",
]


class TransportError(Exception):
    """The request got no HTTP response: connection refused/reset, timeout, unparsable reply.

    ``kind`` is a short stable tag (``"reset"``, ``"refused"``, ``"timeout"``, ``"closed"``,
    ``"protocol"``, ``"network"``) used in ledger reasons; the message never carries headers.
    """

    def __init__(self, kind: str, message: str = "") -> None:
        self.kind = kind
        super().__init__(f"{kind}: {message}" if message else kind)


@dataclass(frozen=True, slots=True)
class Request:
    """What a :class:`FunctionTransport` handler receives (and what it records)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP response: status, headers with lower-cased names, and the whole body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The value of a header, looked up case-insensitively."""
        key = name.lower()
        value = self.headers.get(key)
        if value is None:  # a hand-built Response (tests) may not lower-case its names
            value = next((v for k, v in self.headers.items() if k.lower() == key), None)
        return value


class Transport(Protocol):
    """Sends one HTTP request and returns its response (or raises :class:`TransportError`)."""

    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Send ``method path`` with ``headers`` and ``body``; ``path`` starts with ``/``."""
        ...

    def close(self) -> None:
        """Release connections; the transport is not used afterwards."""
        ...


class FunctionTransport:
    """A transport built from a plain function, for tests (no sockets).

    The handler may return a :class:`Response` or raise :class:`TransportError` to simulate a
    reset or timeout. Every call is appended to ``requests`` before the handler runs, so a test
    sees attempts that "failed on the wire" too.
    """

    def __init__(self, handler: Callable[[Request], Response]) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self.closed = False

    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Record the request and answer it with the handler."""
        req = Request(method=method, path=path, headers=dict(headers), body=body)
        self.requests.append(req)
        return self.handler(req)

    def close(self) -> None:
        """Mark the transport closed (tests assert the sender closes what it opened)."""
        self.closed = True


class GeventTransport:
    """geventhttpclient keep-alive transport to one base URL (``http(s)://host[:port][/prefix]``).

    ``concurrency`` is the size of the connection pool; the sender never has more requests in
    flight than that, so a request never waits for a socket. Connections are reused across
    requests (HTTP/1.1 keep-alive); a connection the server closed is detected by the pool
    before reuse. geventhttpclient never re-sends a POST on its own after the request went out
    (RFC 9110 §9.2.2), so every retry is the sender's, visible in the ledger's attempt count.
    """

    def __init__(
        self,
        base_url: str,
        *,
        concurrency: int = 10,
        connection_timeout: float = 10.0,
        network_timeout: float = 30.0,
        user_agent: str = "shopsim",
    ) -> None:
        from geventhttpclient import HTTPClient

        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        # A base path (e.g. a collector mounted under /ingest) prefixes every request path.
        self._prefix = parts.path.rstrip("/")
        self._client = HTTPClient.from_url(
            f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/",
            concurrency=max(1, concurrency),
            connection_timeout=connection_timeout,
            network_timeout=network_timeout,
            headers={"User-Agent": user_agent},
        )

    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Send one request on a pooled keep-alive connection and read the whole response."""
        import gevent
        from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError

        try:
            resp = self._client.request(method, self._prefix + path, body=body, headers=headers)
            try:
                data = resp.read()
            finally:
                resp.release()
            out = {name.lower(): value for name, value in resp.items()}
            return Response(status=int(resp.status_code), headers=out, body=data)
        except HTTPConnectionClosed as exc:
            raise TransportError("closed", str(exc)) from None
        except HTTPParseError as exc:
            raise TransportError("protocol", str(exc)) from None
        except (TimeoutError, gevent.Timeout) as exc:
            raise TransportError("timeout", str(exc) or "no response in time") from None
        except ConnectionResetError as exc:
            raise TransportError("reset", str(exc)) from None
        except ConnectionRefusedError as exc:
            raise TransportError("refused", str(exc)) from None
        except OSError as exc:
            raise TransportError("network", str(exc)) from None

    def close(self) -> None:
        """Close every pooled connection."""
        self._client.close()
