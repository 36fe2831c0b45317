"""Small gevent-friendly HTTP helpers for the readers (geventhttpclient, like the sender).

The embedded emulator runs on gevent in the same process, so every read here must yield to
the gevent hub: a blocking stdlib client would deadlock against it when the process is not
monkey-patched. Credentials are passed in headers and never appear in errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

from generator.errors import TargetError


def _client(base_url: str, timeout: float) -> tuple[object, str]:
    from geventhttpclient import HTTPClient

    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"not an http(s) URL: {base_url!r}")
    client = HTTPClient.from_url(
        f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/",
        concurrency=1,
        connection_timeout=10.0,
        network_timeout=timeout,
        headers={"User-Agent": "shopsim-observe"},
    )
    return client, parts.path.rstrip("/")


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request; returns (status, lower-cased headers, body). Network failures → TargetError."""
    client, prefix = _client(base_url, timeout)
    try:
        resp = client.request(method, prefix + path, body=body, headers=dict(headers or {}))  # type: ignore[attr-defined]
        try:
            data = resp.read()
        finally:
            resp.release()
        return int(resp.status_code), {k.lower(): v for k, v in resp.items()}, data
    except OSError as exc:
        raise TargetError(f"cannot reach {_safe(base_url)}{path}: {type(exc).__name__}: {exc}") from None
    finally:
        client.close()  # type: ignore[attr-defined]


def stream_lines(
    base_url: str, path: str, *, headers: Mapping[str, str] | None = None, timeout: float = 300.0
) -> Iterator[bytes]:
    """GET ``path`` and yield its body line by line without holding it all in memory."""
    client, prefix = _client(base_url, timeout)
    try:
        try:
            resp = client.request("GET", prefix + path, headers=dict(headers or {}))  # type: ignore[attr-defined]
        except OSError as exc:
            raise TargetError(f"cannot reach {_safe(base_url)}{path}: {type(exc).__name__}: {exc}") from None
        try:
            if int(resp.status_code) != 200:
                raise TargetError(f"GET {path} answered {resp.status_code}: {resp.read()[:200]!r}")
            rest = b""
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                yield from lines
            if rest:
                yield rest
        finally:
            resp.release()
    finally:
        client.close()  # type: ignore[attr-defined]


def _safe(url: str) -> str:
    from generator.runs import redact_url

    return redact_url(url) or ""
