"""Hand-built events and delivery plans for the sender's tests (no simulator needed)."""

from __future__ import annotations

from collections.abc import Sequence

from generator.events import CallType, Delivery, Event, Source
from generator.ids import ulid

T0 = 1_793_620_800_000  # 2026-11-02T12:00:00Z


def make_event(
    n: int,
    *,
    shopper: int = 0,
    type: CallType = CallType.TRACK,
    name: str = "Added to Cart",
    timestamp_ms: int | None = None,
    user_id: str | None = "u0",
    anonymous_id: str | None = "a0",
    properties: dict | None = None,
) -> Event:
    """Event number ``n`` (its id is a ULID from its timestamp and ``n``)."""
    ts = T0 + n * 1000 if timestamp_ms is None else timestamp_ms
    return Event(
        id=ulid(ts, n + 1),
        shopper=shopper,
        seq=n,
        type=type,
        name="" if type is CallType.IDENTIFY else name,
        timestamp_ms=ts,
        user_id=user_id,
        anonymous_id=anonymous_id,
        properties=properties if properties is not None else {"cart_total": 30, "n": n},
        context={},
        source=Source.WEB,
    )


def make_plan(
    count: int,
    *,
    shoppers: int = 4,
    step_ms: int = 1000,
    latency_ms: int = 0,
    dropped: Sequence[int] = (),
    retry_duplicates: Sequence[int] = (),
) -> list[Delivery]:
    """``count`` deliveries in arrival order, shopper ``n % shoppers``, one every ``step_ms``.

    Indices in ``dropped`` are planned but dropped by a fault; each index in
    ``retry_duplicates`` is followed by a same-id copy tagged ``retry_duplicate``.
    """
    plan: list[Delivery] = []
    for n in range(count):
        shopper = n % shoppers
        event = make_event(
            n,
            shopper=shopper,
            user_id=f"u{shopper}",
            anonymous_id=f"a{shopper}",
            timestamp_ms=T0 + n * step_ms,
        )
        arrival = event.timestamp_ms + latency_ms
        drop = n in dropped
        plan.append(
            Delivery(
                event=event,
                truth_id=event.id,
                arrival_ms=arrival,
                faults=("drop",) if drop else (),
                dropped=drop,
            )
        )
        if n in retry_duplicates:
            plan.append(
                Delivery(event=event, truth_id=event.id, arrival_ms=arrival + 1, faults=("retry_duplicate",))
            )
    return plan
