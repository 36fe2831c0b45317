"""Reader of Customer.io's App API (reference/customerio.md §9.2) → :class:`~generator.events.Observation`.

The same reader serves a real workspace and the emulator's App-API-shaped endpoints:

- ``GET /v1/messages?limit=1000[&start=NEXT]`` — deliveries; each message with ``metrics.sent``
  becomes SEND (at = that Unix-seconds time), ``metrics.dropped`` DROP; ``campaign_id`` is mapped
  back to the scenario's campaign name, ``trigger_event_id`` joins it to our event ids.
- ``GET /v1/customers/{id}/activities?limit=100[&start=NEXT]`` (only for the people asked for)
  — ``event``/``page``/``screen`` activities become EVENT, ``anon_merge`` is kept in data.

Auth is ``Authorization: Bearer <app key>`` (env ``CIO_APP_KEY``); at most 10 requests/s (the
documented limit, §9.2) — requests are spaced, and a ``429`` waits for ``Retry-After``. Paging
follows ``next`` until it is empty. The key never appears in errors or results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from generator.errors import TargetError
from generator.events import Observation, ObservationKind

MAX_RPS = 10.0
MAX_PAGES = 100_000

Fetch = Callable[[str, Mapping[str, str]], tuple[int, dict[str, str], bytes]]
"""``fetch(path_with_query, headers) -> (status, headers, body)``: the network seam (tests pass a fake)."""


class AppApiReader:
    """Rate-limited, paging App API client for observations."""

    def __init__(
        self,
        base_url: str,
        app_key: str,
        *,
        campaigns: Mapping[int, str],
        rps: float = MAX_RPS,
        fetch: Fetch | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not app_key:
            raise TargetError("reading the App API needs an App API key: set CIO_APP_KEY")
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {app_key}", "Accept": "application/json"}
        self._campaigns = dict(campaigns)
        self._interval = 1.0 / min(max(rps, 0.1), MAX_RPS)
        self._fetch = fetch or self._http_fetch
        self._sleep = sleep or _gevent_sleep
        self._clock = clock
        self._last = -1e18
        self.requests = 0

    def _http_fetch(self, path: str, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        from generator.observe.http import request

        return request(self._base, "GET", path, headers=headers)

    def _get(self, path: str, query: Mapping[str, Any]) -> dict[str, Any]:
        full = path + ("?" + urlencode({k: v for k, v in query.items() if v is not None}) if query else "")
        for _attempt in range(8):
            wait = self._last + self._interval - self._clock()
            if wait > 0:
                self._sleep(wait)
            self._last = self._clock()
            self.requests += 1
            status, headers, body = self._fetch(full, self._headers)
            if status == 429:
                retry_after = headers.get("retry-after", "1")
                try:
                    delay = min(float(retry_after), 60.0)
                except ValueError:
                    delay = 1.0
                self._sleep(max(delay, self._interval))
                continue
            if status == 401 or status == 403:
                raise TargetError(f"the App API refused the key ({status}) for GET {path}; check CIO_APP_KEY")
            if status != 200:
                raise TargetError(f"GET {path} answered {status}: {body[:200]!r}")
            data = orjson.loads(body) if body else {}
            if not isinstance(data, dict):
                raise TargetError(f"GET {path} did not answer a JSON object")
            return data
        raise TargetError(f"GET {path} still rate-limited (429) after 8 attempts")

    def _pages(self, path: str, query: Mapping[str, Any], key: str) -> Iterator[dict[str, Any]]:
        start: str | None = None
        for _ in range(MAX_PAGES):
            data = self._get(path, {**query, "start": start})
            items = data.get(key) or []
            yield from (i for i in items if isinstance(i, dict))
            nxt = data.get("next")
            if not nxt or not items:
                return
            start = str(nxt)

    def messages(self) -> Iterator[Observation]:
        """SEND / DROP observations from ``/v1/messages``."""
        for message in self._pages("/v1/messages", {"limit": 1000}, "messages"):
            obs = message_observation(message, self._campaigns)
            if obs is not None:
                yield obs

    def activities(self, people: Iterable[str]) -> Iterator[Observation]:
        """EVENT observations from each person's ``/v1/customers/{id}/activities``."""
        for person in people:
            path = f"/v1/customers/{quote(person, safe='')}/activities"
            for activity in self._pages(path, {"limit": 100, "id_type": "id"}, "activities"):
                obs = activity_observation(person, activity)
                if obs is not None:
                    yield obs

    def observations(self, people: Iterable[str] = ()) -> Iterator[Observation]:
        """Messages first, then the activities of ``people``."""
        yield from self.messages()
        yield from self.activities(people)


def message_observation(message: Mapping[str, Any], campaigns: Mapping[int, str]) -> Observation | None:
    """One ``/v1/messages`` item as SEND (sent) or DROP (dropped); anything else is ignored."""
    metrics = message.get("metrics") or {}
    campaign_id = message.get("campaign_id")
    campaign = campaigns.get(int(campaign_id), str(campaign_id)) if campaign_id is not None else ""
    identifiers = message.get("customer_identifiers") or {}
    person = str(identifiers.get("id") or message.get("customer_id") or "")
    trigger = str(message.get("trigger_event_id") or "")
    if metrics.get("sent") is not None:
        kind, at = ObservationKind.SEND, metrics["sent"]
    elif metrics.get("dropped") is not None:
        kind, at = ObservationKind.DROP, metrics["dropped"]
    else:
        return None
    return Observation(
        kind=kind,
        person=person,
        at_ms=_ms(at),
        campaign=campaign,
        event_id=trigger,
        data={"message_id": message.get("id"), "campaign_id": campaign_id},
    )


def activity_observation(person: str, activity: Mapping[str, Any]) -> Observation | None:
    """One activity as EVENT (event / page / screen); other activity types are ignored."""
    kind = activity.get("type")
    if kind not in ("event", "page", "screen"):
        return None
    data = activity.get("data") or {}
    event_id = str((data.get("id") if isinstance(data, dict) else None) or activity.get("event_id") or "")
    return Observation(
        kind=ObservationKind.EVENT,
        person=person,
        at_ms=_ms(activity.get("timestamp") or 0),
        event_id=event_id,
        name=str(activity.get("name") or ""),
        reason="accepted",
        data={"activity_id": activity.get("id"), "type": kind},
    )


def _ms(seconds: Any) -> int:
    value = float(seconds)
    # Unix seconds in the API; tolerate milliseconds from a tool that already converted.
    return int(value if value > 1e11 else value * 1000)


def _gevent_sleep(seconds: float) -> None:
    import gevent

    gevent.sleep(seconds)
