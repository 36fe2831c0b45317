"""The HTTP sender: a delivery plan → requests to a target, with batching, retries and a ledger.

Data flow (DESIGN.md): ``plan_deliveries`` yields :class:`~generator.events.Delivery` records in
arrival order; :func:`send_plan` groups them into requests with the API's encoder, sends them
through a :class:`~generator.deliver.transport.Transport` and settles every planned delivery in
the :class:`~generator.deliver.ledger.Ledger` exactly once.

Grouping. Batching APIs (``encoder.batching``) take up to ``batch_size`` deliveries whose
schedule times lie within ``batch_window_ms`` of the group's first one (default: 60 s of arrival
time on the virtual clock, 1 s of due time on the wall clock); ``encoder.batches`` then cuts by
bytes (and isolates oversize items). ``batch_size <= 1`` or a non-batching API sends one request
per event through ``encoder.encode`` (the single-call endpoints).

Clocks (DESIGN.md, "Two clocks"):

- ``virtual``: requests go out one at a time, in arrival order, as fast as the target answers;
  each carries ``X-Shopsim-Clock: <epoch ms>`` = the ``arrival_ms`` of its first delivery, and a
  batch request also ``X-Shopsim-Arrivals: <offset>,<offset>,...`` = every item's ``arrival_ms``
  minus that clock, in body order. The emulator processes each item at its own arrival time, so
  it sees exactly the planned arrival order and times however many events share a request; the
  batch window (arrival time) only bounds how far one request reaches, to keep progress and
  retries granular. Timestamps are sent as planned.
- ``wall``: up to ``concurrency`` requests in flight on a keep-alive pool. With ``speed`` a
  delivery is due at ``start + (arrival_ms - origin) / speed`` (origin = the first planned
  arrival) and timestamps become ``start + (timestamp_ms - origin) / speed``: the simulated
  timeline replayed ``speed`` times faster, every offset from the run start preserved (scaled).
  Without ``speed`` everything is due at once and each event keeps its original lateness
  relative to the moment its request is built (``now - (arrival_ms - timestamp_ms)``), so no
  timestamp lies in the future. ``keep_timestamps`` sends the original timestamps (backfill).
  Only timestamps change: event ids are never re-derived. Requests carrying the same shopper
  are still sent in plan order (a later one waits for the earlier one to finish), so one
  shopper's identify is never overtaken by their own later events.

Retries (reference/customerio.md §10: the official clients retry 408/429/5xx and network
errors with jittered exponential backoff and honour ``Retry-After``): up to
``RetryPolicy.max_attempts`` attempts; the wait is ``Retry-After`` (seconds or HTTP date,
capped) when the answer has one, else full jitter ``uniform(0, min(cap, base * 2**(n-1)))``.
Retries carry ``X-Retry-Count: n``. Any other 4xx (and 3xx) is final: its items are rejected
with the status and the response body. A 207 rejects only the items its body names
(``{"errors": [{"batch_index": i, ...}]}``, Track v2); other 2xx acknowledge everything
(Pipelines answers 200 even for what it drops in permissive mode: there is nothing to read).
Oversize requests are rejected unsent unless ``send_oversize``.
"""

from __future__ import annotations

import email.utils
import math
import operator
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import gevent
import numpy as np
import orjson
from gevent.event import Event as Flag
from gevent.pool import Pool

from generator.credentials import Credentials
from generator.deliver.ledger import Ledger, LedgerCounts, State
from generator.deliver.transport import GeventTransport, Transport, TransportError
from generator.errors import DeliveryError, ShopsimError
from generator.events import Delivery, Event
from generator.simulate.seeding import Global, global_rng
from generator.wire import ITEM_LIMIT_BYTES, Encoder, WireRequest
from generator.wire.track_v1 import EVENT_NAME_LIMIT_BYTES, PAGE_NAME_LIMIT_BYTES

__all__ = [
    "ARRIVALS_HEADER",
    "CLOCK_HEADER",
    "RateLimiter",
    "RetryPolicy",
    "parse_retry_after",
    "send_plan",
]

CLOCK_HEADER = "X-Shopsim-Clock"
ARRIVALS_HEADER = "X-Shopsim-Arrivals"
RETRY_HEADER = "X-Retry-Count"

# Default batch windows: on the virtual clock every item carries its own arrival time, so the
# window only bounds a request's reach (progress, retry granularity); on the wall clock with
# --speed it bounds how long the first event of a batch waits for the last one to be due.
VIRTUAL_BATCH_WINDOW_MS = 60_000
WALL_BATCH_WINDOW_MS = 1_000
# X-Shopsim-Arrivals stays well under an HTTP server's header limit (the emulator's is 16 KB):
# a virtual-clock batch is cut before its offsets would need more bytes than this.
_ARRIVALS_BUDGET_BYTES = 8_000

# The documented limit behind an encoder's ``oversize`` flag; used only to word the rejection.
_OVERSIZE_LIMITS = {
    "track-v1": "a Track v1 limit (name 100 B, data 100,000 B, attribute value 1,000 B, 300 attributes)",
    "track-v2": f"{ITEM_LIMIT_BYTES} byte item limit",
    "pipelines": f"{ITEM_LIMIT_BYTES} byte item limit",
    "browser": f"{ITEM_LIMIT_BYTES} byte item limit",
}

DEFAULT_LIMIT = "the API's size limits"
NAME_LIMITS = f"event names {EVENT_NAME_LIMIT_BYTES} B, page and screen names {PAGE_NAME_LIMIT_BYTES:,} B"

# How often the progress callback is called at most (seconds); the final counts always are.
_PROGRESS_EVERY_S = 0.1

# Re-stamping runs once per event in wall-clock mode, so it copies the slots directly: a frozen
# dataclass __init__ pays an object.__setattr__ per field, dataclasses.replace() more (~4x here).
# Iterating __slots__ keeps this right when Event gains a field.
_OTHER_SLOTS = tuple(name for name in Event.__slots__ if name != "timestamp_ms")
_read_others = operator.attrgetter(*_OTHER_SLOTS)
_set_others = tuple(Event.__dict__[name].__set__ for name in _OTHER_SLOTS)
_set_timestamp = Event.__dict__["timestamp_ms"].__set__
_new_event = object.__new__


def restamp(event: Event, timestamp_ms: int) -> Event:
    """A copy of ``event`` with another timestamp; the id (and everything else) is unchanged."""
    stamped: Event = _new_event(Event)
    for set_slot, value in zip(_set_others, _read_others(event), strict=True):
        set_slot(stamped, value)
    _set_timestamp(stamped, timestamp_ms)
    return stamped


Clock = Literal["virtual", "wall"]
Item = tuple[int, Delivery]  # (ledger token, delivery)


# --------------------------------------------------------------------------- retry policy


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When and how long to retry (defaults follow customerio-node: 200 ms base, 5 s cap)."""

    max_attempts: int = 5
    base_s: float = 0.2
    max_backoff_s: float = 5.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    @staticmethod
    def retryable(status: int) -> bool:
        """408, 429 and every 5xx are retried; everything else is final."""
        return status in (408, 429) or 500 <= status <= 599

    def backoff(self, attempt: int, rng: np.random.Generator) -> float:
        """Full-jitter exponential backoff before attempt ``attempt + 1`` (``attempt`` >= 1)."""
        ceiling = min(self.max_backoff_s, self.base_s * (2 ** (attempt - 1)))
        return float(rng.uniform(0.0, ceiling))

    def delay(self, attempt: int, retry_after: float | None, rng: np.random.Generator) -> float:
        """The wait before the next attempt: the server's ``Retry-After`` (capped) or backoff."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        return self.backoff(attempt, rng)


def parse_retry_after(value: str | None, *, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date; ``None`` if absent/bad."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # pragma: no cover - older Pythons returned None
            return None
        return max(0.0, when.timestamp() - now_s)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


# --------------------------------------------------------------------------- rate limit


class RateLimiter:
    """A token bucket capping requests per second across all workers (gevent-cooperative).

    The bucket holds at most ``burst`` tokens (default: a tenth of a second's worth, at least
    one), so a quiet spell does not allow a long burst above the cap afterwards.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._now = now
        self._sleep = sleep or _gevent_sleep
        self._tokens = self.burst
        self._stamp = now()

    def acquire(self) -> None:
        """Take one token, sleeping until one is available."""
        while True:
            now = self._now()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            # The epsilon absorbs float rounding in `elapsed * rate`; without it a wait of
            # ~1e-15 s can be lost in the clock's resolution and the loop never ends.
            if self._tokens >= 1.0 - 1e-9:
                self._tokens = max(0.0, self._tokens - 1.0)
                return
            self._sleep((1.0 - self._tokens) / self.rate)


def _gevent_sleep(seconds: float) -> None:
    gevent.sleep(seconds)


# --------------------------------------------------------------------------- one request


class _Sender:
    """Sends one wire request with retries and settles its items in the ledger."""

    def __init__(
        self,
        *,
        transport: Transport,
        ledger: Ledger,
        base_headers: Mapping[str, str],
        policy: RetryPolicy,
        rng: np.random.Generator,
        sleep: Callable[[float], None],
        wall_s: Callable[[], float],
        limiter: RateLimiter | None,
    ) -> None:
        self.transport = transport
        self.ledger = ledger
        self.base_headers = dict(base_headers)
        self.policy = policy
        self.rng = rng
        self.sleep = sleep
        self.wall_s = wall_s
        self.limiter = limiter

    def send(
        self, wreq: WireRequest, items: Sequence[Item], clock_ms: int | None, arrivals: str | None = None
    ) -> None:
        """Deliver ``wreq`` (carrying ``items`` in body order) and settle every item.

        ``clock_ms`` and ``arrivals`` are the virtual-clock headers (see :func:`arrival_offsets`).
        """
        headers = dict(self.base_headers)
        headers["Content-Type"] = wreq.content_type
        if clock_ms is not None:
            headers[CLOCK_HEADER] = str(clock_ms)
        if arrivals is not None:
            headers[ARRIVALS_HEADER] = arrivals
        ledger = self.ledger
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1:
                headers[RETRY_HEADER] = str(attempt - 1)
            if self.limiter is not None:
                self.limiter.acquire()
            try:
                resp = self.transport.request(wreq.method, wreq.path, headers, wreq.body)
            except TransportError as exc:
                ledger.count_attempt(retry=attempt > 1, connection_error=True)
                if attempt >= self.policy.max_attempts:
                    self._settle(
                        items, State.GIVEN_UP, None, f"no response after {attempt} attempts: {exc}", attempt
                    )
                    return
                self.sleep(self.policy.delay(attempt, None, self.rng))
                continue
            status = resp.status
            ok = 200 <= status < 300
            ledger.count_attempt(retry=attempt > 1, http_error=not ok)
            if ok:
                self._acknowledge(items, status, resp.body, attempt)
                return
            if self.policy.retryable(status):
                if attempt >= self.policy.max_attempts:
                    reason = f"HTTP {status} after {attempt} attempts" + _body_suffix(resp.body)
                    self._settle(items, State.GIVEN_UP, status, reason, attempt)
                    return
                retry_after = parse_retry_after(resp.header("retry-after"), now_s=self.wall_s())
                self.sleep(self.policy.delay(attempt, retry_after, self.rng))
                continue
            self._settle(items, State.REJECTED, status, _body_text(resp.body) or f"HTTP {status}", attempt)
            return

    def _acknowledge(self, items: Sequence[Item], status: int, body: bytes, attempts: int) -> None:
        failed = _partial_failures(body, len(items)) if status == 207 else {}
        settle = self.ledger.settle
        for index, (token, _) in enumerate(items):
            reason = failed.get(index)
            if reason is None:
                settle(token, State.ACKNOWLEDGED, status=status, attempts=attempts)
            else:
                settle(token, State.REJECTED, status=status, reason=reason, attempts=attempts)
        self.ledger.flush_due()

    def _settle(
        self, items: Sequence[Item], state: State, status: int | None, reason: str, attempts: int
    ) -> None:
        for token, _ in items:
            self.ledger.settle(token, state, status=status, reason=reason, attempts=attempts)
        self.ledger.flush_due()


def _body_text(body: bytes) -> str:
    return body[:500].decode("utf-8", "replace").strip()


def _body_suffix(body: bytes) -> str:
    text = _body_text(body)
    return f": {text}" if text else ""


def _partial_failures(body: bytes, count: int) -> dict[int, str]:
    """Item index → reason from a Track v2 207 body ``{"errors":[{"batch_index":i,...}]}``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return {}
    out: dict[int, str] = {}
    for err in errors:
        if not isinstance(err, dict):
            continue
        index = err.get("batch_index")
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count:
            parts = [str(err[k]) for k in ("reason", "field", "message") if err.get(k)]
            out[index] = "207: " + (" / ".join(parts) or "rejected in batch")
    return out


# --------------------------------------------------------------------------- grouping


def arrival_offsets(items: Sequence[Item]) -> tuple[int, str]:
    """The virtual-clock headers of a request: (``X-Shopsim-Clock``, ``X-Shopsim-Arrivals``).

    The clock is the first item's arrival; the offsets are each item's arrival minus it, in body
    order. Groups are cut where arrivals decrease, so offsets never do; should an encoder ever
    reorder a batch, an item is held at its predecessor's time (the target processes items in
    body order and its clock never goes backwards).
    """
    clock = items[0][1].arrival_ms
    parts: list[str] = []
    previous = 0
    for _, delivery in items:
        offset = max(previous, delivery.arrival_ms - clock)
        parts.append(str(offset))
        previous = offset
    return clock, ",".join(parts)


def _wire_requests(
    encoder: Encoder, items: Sequence[Item], events: Sequence[Event], *, per_call: bool, batch_size: int
) -> tuple[list[tuple[WireRequest, list[Item]]], list[tuple[Item, str]]]:
    """Encode a group; returns (request, its items in body order) pairs and unencodable items."""
    if per_call:
        out: list[tuple[WireRequest, list[Item]]] = []
        bad: list[tuple[Item, str]] = []
        for item, event in zip(items, events, strict=True):
            try:
                out.append((encoder.encode(event), [item]))
            except ShopsimError as exc:
                bad.append((item, f"not encodable: {exc}"))
        return out, bad
    try:
        wreqs = encoder.batches(events, max_items=batch_size)
    except ShopsimError:
        # One bad event must not take its neighbours down: encode one by one to isolate it.
        out, bad = [], []
        for item, event in zip(items, events, strict=True):
            try:
                single = encoder.batches([event], max_items=1)
            except ShopsimError as exc:
                bad.append((item, f"not encodable: {exc}"))
                continue
            out.extend(_match(single, [item]))
        return out, bad
    return _match(wreqs, items), []


def _match(wreqs: Sequence[WireRequest], items: Sequence[Item]) -> list[tuple[WireRequest, list[Item]]]:
    """Pair each request with its items by ``event_ids`` (repeated ids are matched in order)."""
    # Fast path: encoders keep the group's order, so the requests are consecutive slices of it.
    out: list[tuple[WireRequest, list[Item]]] = []
    start = 0
    for wreq in wreqs:
        end = start + len(wreq.event_ids)
        chunk = list(items[start:end])
        if tuple(d.event.id for _, d in chunk) != wreq.event_ids:
            break
        out.append((wreq, chunk))
        start = end
    else:
        if start == len(items):
            return out
    by_id: dict[str, deque[Item]] = {}
    for item in items:
        by_id.setdefault(item[1].event.id, deque()).append(item)
    out = []
    for wreq in wreqs:
        carried: list[Item] = []
        for event_id in wreq.event_ids:
            queue = by_id.get(event_id)
            if not queue:
                raise RuntimeError(f"encoder returned event id {event_id} that was not in the batch")
            carried.append(queue.popleft())
        out.append((wreq, carried))
    missing = sum(len(q) for q in by_id.values())
    if missing:
        raise RuntimeError(f"encoder dropped {missing} event(s) from a batch")
    return out


# --------------------------------------------------------------------------- the plan


def send_plan(
    plan: Iterable[Delivery],
    *,
    target: str,
    encoder: Encoder,
    creds: Credentials,
    clock: Clock = "wall",
    speed: float | None = None,
    keep_timestamps: bool = False,
    concurrency: int = 10,
    batch_size: int = 100,
    batch_window_ms: int | None = None,
    rps: float | None = None,
    ledger: Ledger,
    send_oversize: bool = False,
    progress: Callable[[LedgerCounts], None] | None = None,
    transport: Transport | None = None,
    retry: RetryPolicy | None = None,
    jitter_seed: int = 0,
    sleep: Callable[[float], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    wall_s: Callable[[], float] = time.time,
    user_agent: str = "shopsim",
) -> LedgerCounts:
    """Deliver ``plan`` to ``target`` and return the final ledger counts (see the module docstring).

    ``target`` must already have passed :func:`generator.targets.check_target`. The caller owns
    ``ledger`` (and closes it); a transport given by the caller is not closed here. ``sleep``,
    ``monotonic`` and ``wall_s`` are injectable so tests never wait; ``jitter_seed`` seeds the
    retry jitter (which never changes what is sent). ``batch_window_ms`` None picks the clock's
    default (:data:`VIRTUAL_BATCH_WINDOW_MS`, :data:`WALL_BATCH_WINDOW_MS`). Returns after every
    planned delivery is settled; raises only for bad arguments or an internal error (the ledger
    is balanced first).
    """
    if clock not in ("virtual", "wall"):
        raise DeliveryError(f"--clock must be 'virtual' or 'wall', got {clock!r}")
    if concurrency < 1:
        raise DeliveryError(f"--concurrency must be at least 1, got {concurrency}")
    if batch_size < 1:
        raise DeliveryError(f"--batch-size must be at least 1, got {batch_size}")
    if batch_window_ms is None:
        batch_window_ms = VIRTUAL_BATCH_WINDOW_MS if clock == "virtual" else WALL_BATCH_WINDOW_MS
    if batch_window_ms < 0:
        raise DeliveryError(f"--batch-window must not be negative, got {batch_window_ms} ms")
    if speed is not None and not speed > 0:
        raise DeliveryError(f"--speed must be positive, got {speed}")
    if rps is not None and not rps > 0:
        raise DeliveryError(f"--rps must be positive, got {rps}")

    virtual = clock == "virtual"
    do_sleep = sleep or _gevent_sleep
    own_transport = transport is None
    if transport is None:
        transport = GeventTransport(target, concurrency=1 if virtual else concurrency, user_agent=user_agent)
    sender = _Sender(
        transport=transport,
        ledger=ledger,
        base_headers={"User-Agent": user_agent, **encoder.auth_headers(creds)},
        policy=retry or RetryPolicy(),
        rng=global_rng(jitter_seed, Global.DELIVERY),
        sleep=do_sleep,
        wall_s=wall_s,
        limiter=RateLimiter(rps, now=monotonic, sleep=do_sleep) if rps else None,
    )
    run = _Run(
        sender=sender,
        encoder=encoder,
        ledger=ledger,
        virtual=virtual,
        speed=None if virtual else speed,
        keep_timestamps=keep_timestamps or virtual,
        concurrency=concurrency,
        per_call=(not encoder.batching) or batch_size <= 1,
        batch_size=batch_size,
        batch_window_ms=batch_window_ms,
        send_oversize=send_oversize,
        progress=progress,
        sleep=do_sleep,
        monotonic=monotonic,
        wall_s=wall_s,
    )
    try:
        run.execute(plan)
    finally:
        if own_transport:
            transport.close()
    counts = ledger.counts
    if progress is not None:
        progress(counts)
    counts.check()
    return counts


class _Run:
    """One ``send_plan`` call: pulls the plan, groups, schedules and dispatches requests."""

    def __init__(
        self,
        *,
        sender: _Sender,
        encoder: Encoder,
        ledger: Ledger,
        virtual: bool,
        speed: float | None,
        keep_timestamps: bool,
        concurrency: int,
        per_call: bool,
        batch_size: int,
        batch_window_ms: int,
        send_oversize: bool,
        progress: Callable[[LedgerCounts], None] | None,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        wall_s: Callable[[], float],
    ) -> None:
        self.sender = sender
        self.encoder = encoder
        self.ledger = ledger
        self.virtual = virtual
        self.speed = speed
        self.keep_timestamps = keep_timestamps
        self.concurrency = concurrency
        self.per_call = per_call
        self.group_cap = 1 if per_call else batch_size
        self.batch_size = batch_size
        self.batch_window_ms = batch_window_ms
        self.send_oversize = send_oversize
        self.progress = progress
        self.sleep = sleep
        self.monotonic = monotonic
        self.wall_s = wall_s
        self.limit = _OVERSIZE_LIMITS.get(encoder.api)
        self._last_progress = -math.inf
        self._failure: BaseException | None = None
        # wall clock: the run starts when the first delivery is pulled.
        self._origin_ms: int | None = None
        self._start_mono = 0.0
        self._start_wall_ms = 0
        # wall clock: shopper -> completion flag of the last request that carried them.
        self._last_for_shopper: dict[int, Flag] = {}

    # ---------------------------------------------------------------- scheduling

    def _schedule_key(self, delivery: Delivery) -> float:
        """The axis the batch window is measured on: arrival ms (virtual), due ms (speed), none."""
        if self.virtual:
            return float(delivery.arrival_ms)
        if self.speed is None:
            return 0.0
        assert self._origin_ms is not None
        return (delivery.arrival_ms - self._origin_ms) / self.speed

    def _groups(self, plan: Iterable[Delivery]) -> Iterator[list[Item]]:
        """Settle dropped deliveries; yield groups of sendable ones (count and window cut)."""
        ledger = self.ledger
        cap = self.group_cap
        window = float(self.batch_window_ms) if (self.virtual or self.speed is not None) else math.inf
        # Virtual clock: X-Shopsim-Arrivals needs non-decreasing offsets that fit the header budget.
        budget = _ARRIVALS_BUDGET_BYTES if self.virtual and not self.per_call else math.inf
        group: list[Item] = []
        first_key = 0.0
        last_key = 0.0
        header_bytes = 0
        for delivery in plan:
            if self._origin_ms is None:
                self._origin_ms = delivery.arrival_ms
                self._start_mono = self.monotonic()
                self._start_wall_ms = int(self.wall_s() * 1000)
            token = ledger.plan(delivery)
            if delivery.dropped:
                ledger.settle(token, State.DROPPED_BY_FAULT, reason="dropped by fault plan")
                continue
            key = self._schedule_key(delivery)
            if group:
                header_bytes += len(str(int(key - first_key))) + 1
                if (
                    len(group) >= cap
                    or key - first_key > window
                    or header_bytes > budget
                    or (self.virtual and key < last_key)
                ):
                    yield group
                    group = []
            if not group:
                first_key = key
                header_bytes = 2  # "0,"
            last_key = key
            group.append((token, delivery))
        ledger.flush()
        if group:
            yield group

    def _wait_until_due(self, delivery: Delivery) -> None:
        """Wall clock with ``speed``: sleep until ``delivery`` is due (never for virtual/ASAP)."""
        if self.virtual or self.speed is None:
            return
        delay = self._schedule_key(delivery) / 1000.0 - (self.monotonic() - self._start_mono)
        if delay > 0:
            self.sleep(delay)

    def _events_for(self, items: Sequence[Item]) -> list[Event]:
        """The events as they go on the wire (timestamps shifted in wall mode; ids unchanged)."""
        if self.keep_timestamps:
            return [d.event for _, d in items]
        assert self._origin_ms is not None
        out: list[Event] = []
        if self.speed is None:
            now_ms = int(self.wall_s() * 1000)
            for _, d in items:
                # Lateness (arrival - timestamp) is kept, including a skewed clock's negative one.
                ts = now_ms - (d.arrival_ms - d.event.timestamp_ms)
                out.append(restamp(d.event, ts))
        else:
            base, origin, speed = self._start_wall_ms, self._origin_ms, self.speed
            for _, d in items:
                ts = base + round((d.event.timestamp_ms - origin) / speed)
                out.append(restamp(d.event, ts))
        return out

    # ---------------------------------------------------------------- dispatch

    def execute(self, plan: Iterable[Delivery]) -> None:
        """Send the whole plan; on any exit every planned delivery is settled."""
        # One request at a time (virtual clock, or --concurrency 1) needs no pool: sending inline
        # keeps plan order trivially and saves a greenlet switch per request.
        pool = None if self.virtual or self.concurrency == 1 else Pool(self.concurrency)
        try:
            for group in self._groups(plan):
                self._wait_until_due(group[-1][1])
                events = self._events_for(group)
                requests, bad = _wire_requests(
                    self.encoder, group, events, per_call=self.per_call, batch_size=self.batch_size
                )
                for (token, _), reason in bad:
                    self.ledger.settle(token, State.REJECTED, reason=reason)
                for wreq, items in requests:
                    if wreq.oversize and not self.send_oversize:
                        self._reject_oversize(wreq, items)
                    elif pool is None:
                        if self.virtual and not self.per_call:
                            clock_ms, arrivals = arrival_offsets(items)
                            self.sender.send(wreq, items, clock_ms, arrivals)
                        else:
                            self.sender.send(wreq, items, items[0][1].arrival_ms if self.virtual else None)
                        self._report()
                    else:
                        self._spawn(pool, wreq, items)
                if self._failure is not None:
                    break
            if pool is not None:
                pool.join()
        except BaseException:
            if pool is not None:
                pool.kill()
            self.ledger.settle_unsettled(State.GIVEN_UP, reason="interrupted before an answer")
            raise
        if self._failure is not None:
            self.ledger.settle_unsettled(State.GIVEN_UP, reason=f"internal error: {self._failure!r}")
            raise self._failure

    def _reject_oversize(self, wreq: WireRequest, items: Sequence[Item]) -> None:
        size = len(wreq.body)
        if self.encoder.api != "track-v1" and size <= ITEM_LIMIT_BYTES:
            # Within the byte limit: the encoder flagged a name over its length limit.
            what = f"a name over the API's limit ({NAME_LIMITS})"
        else:
            what = f"{size} bytes > {self.limit or DEFAULT_LIMIT}"
        reason = f"oversize: {what} (use --send-oversize to send it anyway)"
        for token, _ in items:
            self.ledger.settle(token, State.REJECTED, reason=reason)
        self.ledger.flush_due()

    def _spawn(self, pool: Pool, wreq: WireRequest, items: list[Item]) -> None:
        """Start a worker for one request after the earlier requests of the same shoppers."""
        shoppers = {d.event.shopper for _, d in items}
        waits = {id(f): f for s in shoppers if (f := self._last_for_shopper.get(s)) is not None}
        done = Flag()
        for s in shoppers:
            self._last_for_shopper[s] = done
        pool.spawn(self._work, wreq, items, list(waits.values()), done, shoppers)

    def _work(
        self, wreq: WireRequest, items: list[Item], waits: list[Flag], done: Flag, shoppers: set[int]
    ) -> None:
        # Runs in a pool greenlet; waits for earlier requests of the same shoppers (plan order).
        try:
            for flag in waits:
                flag.wait()
            self.sender.send(wreq, items, None)
            self._report()
        except Exception as exc:  # a bug: remember it, settle what this request carried
            if self._failure is None:
                self._failure = exc
        finally:
            done.set()
            for s in shoppers:
                if self._last_for_shopper.get(s) is done:
                    del self._last_for_shopper[s]

    def _report(self) -> None:
        if self.progress is None:
            return
        now = self.monotonic()
        if now - self._last_progress >= _PROGRESS_EVERY_S:
            self._last_progress = now
            self.progress(self.ledger.counts)
