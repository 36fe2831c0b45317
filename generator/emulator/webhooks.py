"""Signed reporting webhooks for sent and dropped messages (reference/customerio.md §9.1).

Payload: ``{"event_id", "object_type": "email", "metric": "sent" | "dropped", "timestamp" (unix s),
"data": {"action_id", "campaign_id", "customer_id", "delivery_id", "identifiers", "journey_id",
"recipient", "subject", "trigger_event_id", "failure_message" (dropped)}}``.

Headers: ``X-CIO-Timestamp: <unix s>`` and ``X-CIO-Signature`` = hex HMAC-SHA256, keyed by the
webhook signing secret, of ``"v0:" + timestamp + ":" + body``.

Delivery is asynchronous and at-least-once while the process lives: a sender greenlet posts
each report only after the store committed it, retries failures with capped exponential
backoff (like the real service, though in seconds rather than hours) and gives up on a report
after :data:`MAX_ATTEMPTS`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import gevent
import orjson
from gevent.event import Event

from generator.emulator.campaigns import Delivery

MAX_ATTEMPTS = 8
_log = logging.getLogger("shopsim.emulator.webhooks")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``v0:<timestamp>:<body>`` keyed by ``secret``."""
    message = b"v0:" + str(timestamp).encode() + b":" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is valid for ``body`` sent at ``timestamp``."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def payload(delivery: Delivery) -> dict[str, Any]:
    """The reporting-webhook JSON for a sent/dropped email."""
    data: dict[str, Any] = {
        "action_id": 1,
        "campaign_id": delivery.campaign_id,
        "customer_id": delivery.identifiers.get("id"),
        "delivery_id": delivery.delivery_id,
        "identifiers": dict(delivery.identifiers),
        "journey_id": f"jny{delivery.journey_seq:012x}",
        "recipient": delivery.recipient or "",
        "subject": delivery.message,
        "trigger_event_id": delivery.trigger_event_id,
    }
    if delivery.metric == "dropped":
        data["failure_message"] = delivery.reason
    return {
        "event_id": f"whk{delivery.journey_seq:012x}",
        "object_type": "email",
        "metric": delivery.metric,
        "timestamp": delivery.at_ms // 1000,
        "data": data,
    }


class WebhookSender:
    """Posts signed reports to one URL from a background greenlet."""

    def __init__(
        self, url: str, secret: str | None, *, before_send: Callable[[], None] | None = None
    ) -> None:
        from geventhttpclient import HTTPClient

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook URL must be http(s)://host[:port]/path, got {url!r}")
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._client = HTTPClient.from_url(url, concurrency=1, connection_timeout=4, network_timeout=4)
        self._secret = secret or ""
        self._before_send = before_send
        self._queue: deque[tuple[bytes, int]] = deque()
        self._wake = Event()
        self.sent = 0
        self.failed = 0
        self._stopped = False
        self._greenlet = gevent.spawn(self._run)

    def enqueue(self, delivery: Delivery) -> None:
        """Queue the report of one delivery."""
        self._queue.append((orjson.dumps(payload(delivery)), 0))
        self._wake.set()

    def pending(self) -> int:
        return len(self._queue)

    def _run(self) -> None:
        while not self._stopped:
            if not self._queue:
                self._wake.clear()
                self._wake.wait()
                continue
            if self._before_send is not None:
                try:
                    self._before_send()  # never report what is not committed
                except Exception:
                    gevent.sleep(1.0)
                    continue
            body, attempts = self._queue.popleft()
            if self._post(body):
                self.sent += 1
                continue
            if attempts + 1 >= MAX_ATTEMPTS:
                self.failed += 1
                _log.warning("giving up on a reporting webhook after %d attempts", attempts + 1)
                continue
            self._queue.appendleft((body, attempts + 1))
            gevent.sleep(min(30.0, 0.25 * 2**attempts))

    def _post(self, body: bytes) -> bool:
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-CIO-Timestamp": stamp,
            "X-CIO-Signature": sign(self._secret, stamp, body),
            "User-Agent": "shopsim-emulator",
        }
        try:
            response = self._client.post(self._path, body=body, headers=headers)
            response.read()
            status = int(response.status_code)
        except Exception as exc:  # connection refused, timeout: retried
            _log.debug("reporting webhook failed: %s", exc)
            return False
        return 200 <= status < 300

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            gevent.sleep(0.01)
        return not self._queue

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        self._greenlet.kill(block=False)
        self._client.close()
