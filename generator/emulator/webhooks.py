"""Signed reporting webhooks for sent and dropped messages (reference/customerio.md §9.1).

Payload: ``{"event_id", "object_type": "email", "metric": "sent" | "dropped", "timestamp" (unix s),
"data": {"action_id", "campaign_id", "customer_id", "delivery_id", "identifiers", "journey_id",
"recipient", "subject", "trigger_event_id", "failure_message" (dropped)}}``.

Headers: ``X-CIO-Timestamp: <unix s>`` and ``X-CIO-Signature`` = hex HMAC-SHA256, keyed by the
webhook signing secret, of ``"v0:" + timestamp + ":" + body``.

Delivery is asynchronous and at-least-once across restarts of a ``--db`` emulator, through a
transactional outbox (:class:`Outbox`, the store's ``webhook_outbox`` table):

- a report is written in the same transaction as the journey outcome that produces it, so it
  exists exactly when that outcome is committed (a crash loses both or neither);
- a sender greenlet posts it only after that commit, retries failures with capped exponential
  backoff (like the real service, though in seconds rather than hours) and counts attempts in
  the row; a 2xx deletes the row; after :data:`MAX_ATTEMPTS` the row stays as ``given_up``;
- on start, pending rows are loaded and delivered first, with their attempt counts.

A report can therefore be posted twice around a crash (the 2xx arrived, its delete was not yet
committed) but never zero times while attempts remain; receivers dedupe by ``delivery_id``. The
body is stored, so a retry or a resend after restart carries the very same JSON; only the
signature timestamp is fresh on each attempt. Without ``--db`` the outbox lives in the
in-memory database and the guarantee holds while the process lives.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import gevent
import orjson
from gevent.event import Event

from generator.emulator.campaigns import Delivery
from generator.emulator.store import Store

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


@dataclass(slots=True, frozen=True)
class Report:
    """One queued report: its outbox key (the journey seq), exact body and attempts so far."""

    seq: int
    body: bytes
    attempts: int


class Outbox:
    """The durable queue of reports, kept in the store's ``webhook_outbox`` table.

    Every write goes through the store's current transaction: :meth:`add` is called by the
    campaign engine right after it wrote the journey outcome, with no greenlet switch in
    between (gevent is cooperative and sqlite3 calls never yield), so both commit together.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, delivery: Delivery) -> Report:
        """Write the report of ``delivery`` (state ``pending``) into the open transaction."""
        body = orjson.dumps(payload(delivery))
        self._store.execute(
            "INSERT INTO webhook_outbox(seq, delivery_id, metric, body, state, attempts)"
            " VALUES (?, ?, ?, ?, 'pending', 0)",
            (delivery.journey_seq, delivery.delivery_id, delivery.metric, body),
        )
        return Report(delivery.journey_seq, body, 0)

    def pending(self) -> list[Report]:
        """Every report not yet delivered nor given up, oldest journey first."""
        rows = self._store.query(
            "SELECT seq, body, attempts FROM webhook_outbox WHERE state = 'pending' ORDER BY seq"
        )
        return [Report(int(seq), bytes(body), int(attempts)) for seq, body, attempts in rows]

    def wait_committed(self) -> None:
        """Block until everything written so far (the reports included) is committed."""
        self._store.barrier()

    def delivered(self, report: Report) -> None:
        """The receiver answered 2xx: the report leaves the outbox."""
        self._store.execute("DELETE FROM webhook_outbox WHERE seq = ?", (report.seq,))

    def failed(self, report: Report, attempts: int, error: str, *, give_up: bool) -> None:
        """Record a failed attempt (``attempts`` in all); ``give_up`` keeps it as ``given_up``."""
        self._store.execute(
            "UPDATE webhook_outbox SET attempts = ?, last_error = ?, state = ? WHERE seq = ?",
            (attempts, error, "given_up" if give_up else "pending", report.seq),
        )

    def counts(self) -> dict[str, int]:
        """Rows by state (``pending``, ``given_up``); delivered reports are gone."""
        rows = self._store.query("SELECT state, COUNT(*) FROM webhook_outbox GROUP BY state")
        return {str(state): int(count) for state, count in rows}


class WebhookSender:
    """Posts the outbox's signed reports to one URL from a background greenlet.

    ``max_attempts`` and ``backoff_s`` (the first retry delay, doubled per attempt up to 30 s)
    exist for tests; the emulator uses :data:`MAX_ATTEMPTS` and 0.25 s.
    """

    def __init__(
        self,
        url: str,
        secret: str | None,
        outbox: Outbox,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_s: float = 0.25,
    ) -> None:
        from geventhttpclient import HTTPClient

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook URL must be http(s)://host[:port]/path, got {url!r}")
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._client = HTTPClient.from_url(url, concurrency=1, connection_timeout=4, network_timeout=4)
        self._secret = secret or ""
        self._outbox = outbox
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        # reports left by an earlier process (committed, so sendable at once) go first
        self._queue: deque[Report] = deque(outbox.pending())
        self.resumed = len(self._queue)
        """How many pending reports were loaded from the outbox at start."""
        self._wake = Event()
        self.sent = 0
        self.failed = 0
        self._stopped = False
        self._greenlet = gevent.spawn(self._run)

    def enqueue(self, delivery: Delivery) -> None:
        """Write the report of one delivery into the outbox (the caller's transaction) and queue it."""
        self._queue.append(self._outbox.add(delivery))
        self._wake.set()

    def pending(self) -> int:
        """Reports not yet delivered nor given up (the one in flight included)."""
        return len(self._queue)

    def _run(self) -> None:
        while not self._stopped:
            if not self._queue:
                self._wake.clear()
                self._wake.wait()
                continue
            try:
                self._outbox.wait_committed()  # never report what is not committed
            except Exception:
                gevent.sleep(1.0)
                continue
            # the head stays queued while in flight, so flush() waits for its answer
            report = self._queue[0]
            error = self._post(report.body)
            self._queue.popleft()
            if error is None:
                self.sent += 1
                self._record(self._outbox.delivered, report)
                continue
            attempts = report.attempts + 1
            give_up = attempts >= self._max_attempts
            self._record(self._outbox.failed, report, attempts, error, give_up=give_up)
            if give_up:
                self.failed += 1
                _log.warning(
                    "giving up on reporting webhook %d after %d attempts (%s)", report.seq, attempts, error
                )
                continue
            self._queue.appendleft(Report(report.seq, report.body, attempts))
            gevent.sleep(min(30.0, self._backoff_s * 2**report.attempts))

    @staticmethod
    def _record(write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """Write an outcome to the outbox; a failing store must not kill the sender.

        Why it may be lost: the row then stays as it was, so a delivered report is sent again
        after a restart and a failed attempt goes uncounted: at-least-once still holds.
        """
        try:
            write(*args, **kwargs)
        except Exception as exc:
            _log.warning("could not record a reporting webhook outcome: %s", exc)

    def _post(self, body: bytes) -> str | None:
        """Post one report; None on 2xx, else why it failed (kept in the outbox row)."""
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
            return type(exc).__name__
        return None if 200 <= status < 300 else f"HTTP {status}"

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            gevent.sleep(0.01)
        return not self._queue

    def stop(self) -> None:
        """Stop sending; what is still pending stays in the outbox for the next start."""
        self._stopped = True
        self._wake.set()
        self._greenlet.kill(block=False)
        self._client.close()
