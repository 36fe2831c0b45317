"""What an ingestion response means for the events it carried (pure; no Locust).

HTTP status alone is not enough: the Pipelines API answers ``200`` even when it drops a
request, Track v2 answers ``207`` with per-item errors, and collectors often answer
``200 {"errors": [...]}``. :func:`classify` turns ``(status, body, items)`` into:

- ``ok``: whether Locust should count the request as a success (``catch_response``);
- ``retry``: the answer is transient (no answer, ``429``, ``5xx``): try again, then give up;
- ``rejected``: item index → reason for items the target refused (all items for a 4xx or an
  error body, the listed ``batch_index`` items for a ``207``); everything else is acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Verdict", "classify"]

_REASON_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one HTTP answer settles the items of the request."""

    ok: bool
    status: int = 0
    retry: bool = False
    message: str = ""
    rejected: Mapping[int, str] = field(default_factory=dict)


def _parse(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _error_text(value: Any) -> str:
    if isinstance(value, Mapping):
        for key in ("message", "reason", "error", "detail"):
            if value.get(key):
                return str(value[key])[:_REASON_LIMIT]
    return str(value)[:_REASON_LIMIT]


def _body_error(parsed: Any) -> str | None:
    """The error carried by a 2xx JSON body, if any."""
    if not isinstance(parsed, Mapping):
        return None
    errors = parsed.get("errors")
    if isinstance(errors, list) and errors:
        return _error_text(errors[0])
    if parsed.get("error"):
        return _error_text(parsed["error"])
    meta = parsed.get("meta")
    if isinstance(meta, Mapping) and meta.get("error"):
        return _error_text(meta["error"])
    if parsed.get("success") is False:
        return "success: false"
    return None


# The common answers, shared: a fresh Verdict (and its empty ``rejected`` dict) per request
# would be allocated and thrown away on the hot path.
_OK_EMPTY = {200: Verdict(ok=True, status=200), 202: Verdict(ok=True, status=202)}
_EMPTY_BODIES = (b"", b"{}", None)


def classify(status: int, body: bytes | None, items: int, *, error: str = "") -> Verdict:
    """Settle a request carrying ``items`` events that got ``status`` (0 = no answer) and ``body``."""
    if (status == 200 or status == 202) and body in _EMPTY_BODIES:
        return _OK_EMPTY[status]  # the common answer, without a JSON parse
    if status == 0:
        return Verdict(ok=False, retry=True, message=f"no response: {error or 'connection failed'}")
    if status == 429 or status >= 500:
        return Verdict(ok=False, status=status, retry=True, message=f"HTTP {status}")
    text = (body or b"")[:_REASON_LIMIT].decode("utf-8", "replace")
    if status == 207:
        parsed = _parse(body)
        errors = parsed.get("errors") if isinstance(parsed, Mapping) else None
        rejected: dict[int, str] = {}
        if isinstance(errors, list):
            for err in errors:
                index = err.get("batch_index") if isinstance(err, Mapping) else None
                if isinstance(index, int) and 0 <= index < items:
                    rejected[index] = _error_text(err)
        if not rejected:
            # A 207 that names no item we can place: count the whole request as refused,
            # never as silently accepted.
            rejected = {i: f"207 without item errors: {text}" for i in range(items)}
        return Verdict(
            ok=False,
            status=status,
            message=f"207 partial: {len(rejected)} of {items} items rejected",
            rejected=rejected,
        )
    if 200 <= status < 300:
        problem = _body_error(_parse(body))
        if problem is None:
            return Verdict(ok=True, status=status)
        reason = f"{status} with error body: {problem}"
        return Verdict(ok=False, status=status, message=reason, rejected=dict.fromkeys(range(items), reason))
    reason = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    return Verdict(ok=False, status=status, message=reason, rejected=dict.fromkeys(range(items), reason))
