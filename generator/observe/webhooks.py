"""Reporting-webhook receiver (reference/customerio.md §9.1) → :class:`~generator.events.Observation`.

Customer.io signs each report: ``X-CIO-Timestamp`` (Unix seconds) and ``X-CIO-Signature`` =
hex HMAC-SHA256(key = signing secret, msg = ``"v0:" + timestamp + ":" + body``). The receiver
rejects a missing, malformed or wrong signature and a timestamp more than ``tolerance_s`` away
from its clock (replays) with ``401`` and a JSON error; it never answers 5xx to bad input.

Accepted reports become observations: metric ``sent`` → SEND, ``dropped`` → DROP (person from
``data.identifiers.id`` or ``data.customer_id``; campaign from ``data.campaign_id``; event_id =
``data.trigger_event_id``; at_ms = ``timestamp`` × 1000); other metrics are counted only. A
signed body that is not a JSON object, or a sent/dropped report whose ``data`` or
``data.identifiers`` is not an object or whose ``timestamp`` is not a plausible Unix time, is
answered ``400`` with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from generator.events import Observation, ObservationKind

DEFAULT_TOLERANCE_S = 300
MAX_BODY = 1 << 20
MAX_TIMESTAMP_S = 2**40
"""A report ``timestamp`` beyond ±this many seconds (year ~36800) is malformed, not a time."""


class SignatureError(ValueError):
    """Why a report was rejected (``missing``, ``malformed``, ``stale``, ``mismatch``)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class ReportError(ValueError):
    """A signed sent/dropped report whose shape cannot be read (answered ``400``)."""


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The signature Customer.io would send for ``body`` at ``timestamp``."""
    message = b"v0:" + str(timestamp).encode() + b":" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now_s: float | None = None,
    tolerance_s: float | None = DEFAULT_TOLERANCE_S,
) -> None:
    """Raise :class:`SignatureError` unless ``headers`` carry a valid, fresh signature of ``body``.

    ``headers`` are looked up case-insensitively. ``tolerance_s=None`` skips the freshness check.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get("x-cio-timestamp")
    signature = lowered.get("x-cio-signature")
    if not timestamp or not signature:
        raise SignatureError("missing", "missing X-CIO-Timestamp or X-CIO-Signature header")
    text = timestamp.strip()
    # ASCII digits, at most 12 (year ~33600): int() alone takes '1_0' and '+1', and a huge value
    # made the freshness check raise OverflowError (a 500)
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise SignatureError("malformed", "X-CIO-Timestamp is not a Unix time in seconds")
    ts = int(text)
    if tolerance_s is not None:
        current = time.time() if now_s is None else now_s
        if abs(current - ts) > tolerance_s:
            raise SignatureError("stale", f"X-CIO-Timestamp is more than {tolerance_s:g} s from now")
    expected = sign(secret, text, body)
    # compare bytes: compare_digest raises TypeError on non-ASCII str (a 500, not a 401)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode("utf-8", "replace")):
        raise SignatureError("mismatch", "X-CIO-Signature does not match the body")


def report_observation(report: Mapping[str, Any], campaigns: Mapping[int, str]) -> Observation | None:
    """A reporting-webhook payload as SEND / DROP; other metrics → ``None``.

    Raises :class:`ReportError` when a SEND / DROP report cannot be read: ``data`` or
    ``data.identifiers`` is not an object, or ``timestamp`` is not a plausible Unix time.
    """
    metric = report.get("metric")
    kinds = {"sent": ObservationKind.SEND, "dropped": ObservationKind.DROP}
    kind = kinds.get(str(metric))
    if kind is None:
        return None
    data = report.get("data") or {}
    if not isinstance(data, dict):
        raise ReportError("'data' is not an object")
    identifiers = data.get("identifiers") or {}
    if not isinstance(identifiers, dict):
        raise ReportError("'data.identifiers' is not an object")
    campaign_id = data.get("campaign_id")
    campaign = ""
    if campaign_id is not None:
        try:
            campaign = campaigns.get(int(campaign_id), str(campaign_id))
        except (TypeError, ValueError, OverflowError):
            campaign = str(campaign_id)
    return Observation(
        kind=kind,
        person=str(identifiers.get("id") or data.get("customer_id") or ""),
        at_ms=_timestamp_ms(report.get("timestamp")),
        campaign=campaign,
        event_id=str(data.get("trigger_event_id") or ""),
        data={
            "delivery_id": data.get("delivery_id"),
            "campaign_id": campaign_id,
            "event_id": report.get("event_id"),
        },
    )


def _timestamp_ms(value: Any) -> int:
    """A report's ``timestamp`` (Unix seconds, a number or numeric string) in ms; 0 when absent."""
    if value is None or value == 0:
        return 0
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    # float() takes 'inf' and 1e308, whose ms are no int (OverflowError, a 500); a huge at_ms
    # would also break the NDJSON writer (orjson refuses ints beyond 64 bits)
    if not -MAX_TIMESTAMP_S < seconds < MAX_TIMESTAMP_S:
        raise ReportError("'timestamp' is not a Unix time in seconds")
    return int(seconds * 1000)


class WebhookReceiver:
    """A WSGI app that verifies and records reports; serve it with :meth:`serve` (gevent)."""

    def __init__(
        self,
        secret: str,
        *,
        campaigns: Mapping[int, str] | None = None,
        tolerance_s: float | None = DEFAULT_TOLERANCE_S,
        on_observation: Callable[[Observation], None] | None = None,
    ) -> None:
        if not secret:
            from generator.errors import TargetError

            raise TargetError("verifying reporting webhooks needs the signing secret: set CIO_WEBHOOK_SECRET")
        self._secret = secret
        self._campaigns = dict(campaigns or {})
        self._tolerance = tolerance_s
        self._on = on_observation
        self.observations: list[Observation] = []
        self.accepted = 0
        self.rejected: dict[str, int] = {}
        self._server: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _reply(start_response, 405, {"error": "POST reports here"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            return _reply(start_response, 413, {"error": "body too large"})
        try:
            body = environ["wsgi.input"].read(length) if length else b""
        except OSError:  # the client hung up inside the body: nobody to answer, but no traceback
            return _reply(start_response, 400, {"error": "incomplete body"})
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        try:
            verify_signature(self._secret, headers, body, tolerance_s=self._tolerance)
        except SignatureError as exc:
            self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
            return _reply(start_response, 401, {"error": str(exc)})
        try:
            report = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.rejected["json"] = self.rejected.get("json", 0) + 1
            return _reply(start_response, 400, {"error": "body is not JSON"})
        if not isinstance(report, dict):
            self.rejected["json"] = self.rejected.get("json", 0) + 1
            return _reply(start_response, 400, {"error": "body is not a JSON object"})
        try:
            obs = report_observation(report, self._campaigns)
        except ReportError as exc:
            # signed but unreadable: 400 like a body that is not JSON (never a 5xx for bad input)
            self.rejected["report"] = self.rejected.get("report", 0) + 1
            return _reply(start_response, 400, {"error": f"unusable report: {exc}"})
        self.accepted += 1
        if obs is not None:
            self.observations.append(obs)
            if self._on is not None:
                self._on(obs)
        return _reply(start_response, 200, {})

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving in the background (gevent); returns the base URL."""
        from gevent import socket
        from gevent.pywsgi import WSGIServer

        # Bound here, not by WSGIServer: when the bind fails (port in use, unknown host) gevent
        # leaves its half-made socket open; this one is closed before the error propagates.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(128)
        except BaseException:
            listener.close()
            raise
        self._server = WSGIServer(listener, self, log=None, error_log=None)
        self._server.start()
        return f"http://{host}:{self._server.server_port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None


def _reply(start_response: Callable[..., Any], status: int, payload: dict[str, Any]) -> list[bytes]:
    reasons = {
        200: "OK",
        400: "Bad Request",
        401: "Unauthorized",
        405: "Method Not Allowed",
        413: "Payload Too Large",
    }
    body = orjson.dumps(payload)
    start_response(
        f"{status} {reasons[status]}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
