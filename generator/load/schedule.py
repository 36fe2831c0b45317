"""The open-model arrival schedule: when each shopper is due, and what it sends when.

Locust is a closed model (N users loop task → wait → task), so a slow target quietly lowers
the offered load and hides the stall ("coordinated omission", anchors.md §e). shopsim instead
replays the scenario's own arrival process: shopper k is *due* at its simulated start time
compressed by ``--speed``, independently of how the target answers. The Locust users are only
a pool of workers that take due shoppers from a queue; when every user is busy, a due shopper
waits and starts late, and the lag between the intended and the actual start is recorded
(:mod:`generator.load.lag`) instead of being hidden.

Times here are seconds of wall clock (floats) measured from a schedule *origin* (the moment the
test starts on this process), derived from simulated epoch milliseconds::

    due_s      = (shopper.start_ms - origin_ms) / speed / 1000
    offset_s   = (delivery.arrival_ms - shopper.start_ms) / speed / 1000   # within the shopper

``origin_ms`` is the simulated start of shopper 0 (the same on every worker, so shards stay on
one timeline). Within a shopper, sends keep the planned *arrival* gaps (think times and fault
latencies alike) divided by ``--speed``.

This module is pure: no Locust, no gevent, no wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from generator.events import CallType, Delivery, Event

if TYPE_CHECKING:  # prepared.py builds on this module
    from generator.load.prepared import PreparedRequest

__all__ = [
    "ENDED_REASON",
    "PlannedSend",
    "ShopperJob",
    "build_job",
    "plan_sends",
    "request_name",
    "wall_event",
]


ENDED_REASON = "load test ended before this send was due"
"""Ledger reason of a delivery given up only because the load test stopped first."""


@dataclass(frozen=True, slots=True)
class PlannedSend:
    """One HTTP call a shopper makes (one event, or one batch of events).

    ``offset_s`` is when it is due after the shopper's actual start (wall seconds, already
    divided by ``--speed``). ``deliveries`` are the planned deliveries it carries, in body order.
    ``name`` is the bounded Locust request name (call type and event name, never an id).
    ``prepared`` holds its requests encoded ahead (:mod:`generator.load.prepared`); empty: the
    send encodes them itself.
    """

    offset_s: float
    name: str
    deliveries: tuple[Delivery, ...]
    prepared: tuple[PreparedRequest, ...] = ()


@dataclass(frozen=True, slots=True)
class ShopperJob:
    """Everything the user pool needs to replay shopper k.

    ``due_s`` is the intended start after the schedule origin; ``sends`` are in due order;
    ``dropped`` are deliveries a fault dropped (planned, never sent: ledger ``dropped_by_fault``).
    """

    shopper: int
    start_ms: int
    due_s: float
    sends: tuple[PlannedSend, ...]
    dropped: tuple[Delivery, ...] = ()

    @property
    def planned(self) -> int:
        """Deliveries this shopper accounts for in the ledger (sent or dropped)."""
        return sum(len(s.deliveries) for s in self.sends) + len(self.dropped)


def request_name(event: Event) -> str:
    """The Locust request name for one event: bounded by call type and event name.

    ``track: Added to Cart``, ``screen: Cart``, ``identify``, ``page``. Page names are page
    titles (one per product), so pages are grouped under ``page`` alone: Locust keeps one
    statistics row per name, and per-id or per-product names would make thousands of rows.
    """
    kind = event.type
    if kind == CallType.TRACK:
        return f"track: {event.name}"
    if kind == CallType.SCREEN:
        return f"screen: {event.name}"
    return kind.value


def plan_sends(
    deliveries: Sequence[Delivery],
    *,
    start_ms: int,
    speed: float,
    batch_size: int = 1,
    batch_window_ms: int = 1000,
) -> tuple[PlannedSend, ...]:
    """Group one shopper's (non-dropped) deliveries into timed sends.

    ``deliveries`` must be in arrival order. With ``batch_size`` 1 every delivery is its own
    send. Otherwise consecutive deliveries whose planned arrivals lie within ``batch_window_ms``
    of the first one in the group, up to ``batch_size`` of them, share one send (a batching
    client flushes on count or on time, like the Pipelines SDKs). A send is due when its first
    delivery was planned to arrive.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    sends: list[PlannedSend] = []
    group: list[Delivery] = []

    def close() -> None:
        first = group[0]
        offset = max(0, first.arrival_ms - start_ms) / speed / 1000.0
        name = request_name(first.event) if len(group) == 1 else "batch"
        sends.append(PlannedSend(offset_s=offset, name=name, deliveries=tuple(group)))
        group.clear()

    for delivery in deliveries:
        if group and (
            batch_size <= 1
            or len(group) >= batch_size
            or delivery.arrival_ms - group[0].arrival_ms > batch_window_ms
        ):
            close()
        group.append(delivery)
    if group:
        close()
    return tuple(sends)


def build_job(
    shopper: int,
    start_ms: int,
    deliveries: Iterable[Delivery],
    *,
    origin_ms: int,
    speed: float,
    batch_size: int = 1,
    batch_window_ms: int = 1000,
) -> ShopperJob:
    """The replayable job for one shopper from its planned deliveries (any order)."""
    ordered = sorted(deliveries, key=lambda d: d.arrival_ms)  # stable: keeps the plan's tie order
    sent = [d for d in ordered if not d.dropped]
    dropped = tuple(d for d in ordered if d.dropped)
    return ShopperJob(
        shopper=shopper,
        start_ms=start_ms,
        due_s=max(0, start_ms - origin_ms) / speed / 1000.0,
        sends=plan_sends(
            sent, start_ms=start_ms, speed=speed, batch_size=batch_size, batch_window_ms=batch_window_ms
        ),
        dropped=dropped,
    )


def wall_event(delivery: Delivery, *, wall_origin_ms: int, origin_ms: int, speed: float) -> Event:
    """The event re-stamped for a wall-clock target, on the compressed timeline.

    In wall mode the target's "now" is its real clock, so simulated timestamps (in the
    scenario's calendar) would all look stale. Like ``shopsim send --clock wall --speed``
    (generator/deliver/http.py), the simulated timeline is replayed ``speed`` times faster from
    the moment the test started: ``wall_origin_ms + (timestamp_ms - origin_ms) / speed``. A
    shopper that starts late therefore sends events that look as old as they really are late.
    Event ids are never re-derived.
    """
    event = delivery.event
    # The constructor, not dataclasses.replace: this runs once per event sent and replace costs
    # several times more (it introspects the fields on every call). A test checks that every
    # field is carried over, so a field added to Event cannot be dropped here unnoticed.
    return Event(
        id=event.id,
        shopper=event.shopper,
        seq=event.seq,
        type=event.type,
        name=event.name,
        timestamp_ms=wall_origin_ms + round((event.timestamp_ms - origin_ms) / speed),
        user_id=event.user_id,
        anonymous_id=event.anonymous_id,
        properties=event.properties,
        context=event.context,
        source=event.source,
        journey=event.journey,
        state=event.state,
    )
