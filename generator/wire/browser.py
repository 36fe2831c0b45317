"""The browser (JS) Pipelines SDK's wire style (reference/customerio.md §4.5).

The browser SDK posts to ``/v1/<first letter of the call type>`` (``/v1/t``, ``/v1/i``,
``/v1/p``, ``/v1/s``) or, batched, to ``/v1/b`` with ``{"batch": [...], "writeKey": key}``.
The body is sent as ``Content-Type: text/plain`` (a CORS "simple request") and carries the
source key as ``writeKey`` in the body: there is no Authorization header. Messages are the
same Segment-spec messages as :mod:`generator.wire.pipelines`, with the same limits.

Because the key travels in the body, the encoder is built with it
(``encoder_for("browser", creds=...)``); :meth:`BrowserEncoder.auth_headers` returns ``{}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from generator.credentials import LOCAL_DEFAULTS, Credentials
from generator.events import CallType, Event
from generator.wire.base import (
    BATCH_LIMIT_BYTES,
    ITEM_LIMIT_BYTES,
    TEXT_CONTENT,
    WireRequest,
    cut_batches,
    dumps,
)
from generator.wire.pipelines import message, name_over_limit

BATCH_PATH = "/v1/b"
CALL_PATHS = {
    CallType.IDENTIFY: "/v1/i",
    CallType.TRACK: "/v1/t",
    CallType.PAGE: "/v1/p",
    CallType.SCREEN: "/v1/s",
}


class BrowserEncoder:
    """Browser-style Pipelines: ``text/plain`` bodies with ``writeKey``; no auth header."""

    api: str = "browser"
    batching: bool = True

    def __init__(self, write_key: str | None = None) -> None:
        """``write_key`` defaults to the local emulator's Pipelines key."""
        key = write_key or LOCAL_DEFAULTS.pipelines_key
        assert key is not None
        self._key_json = dumps(key)

    def __repr__(self) -> str:
        return "BrowserEncoder(write_key=<set>)"

    def encode(self, event: Event) -> WireRequest:
        body = dumps(message(event))
        # Splice the key in before the closing brace instead of copying the message dict.
        body = body[:-1] + b',"writeKey":' + self._key_json + b"}"
        oversize = len(body) > ITEM_LIMIT_BYTES or name_over_limit(event)
        return WireRequest("POST", CALL_PATHS[event.type], body, TEXT_CONTENT, (event.id,), oversize)

    def batches(self, events: Sequence[Event], *, max_items: int = 100) -> list[WireRequest]:
        items = [(event.id, dumps(message(event))) for event in events]
        return cut_batches(
            items,
            prefix=b'{"batch":[',
            suffix=b'],"writeKey":' + self._key_json + b"}",
            max_items=max_items,
            item_limit=ITEM_LIMIT_BYTES,
            batch_limit=BATCH_LIMIT_BYTES,
            make=lambda body, ids, oversize: WireRequest(
                "POST", BATCH_PATH, body, TEXT_CONTENT, ids, oversize
            ),
            isolate={event.id for event in events if name_over_limit(event)},
        )

    def auth_headers(self, creds: Credentials) -> dict[str, str]:
        return {}
