"""Hand-built scenarios, events and deliveries for expectation and check tests."""

from __future__ import annotations

from typing import Any

from generator.events import CallType, Delivery, Event, Source
from generator.scenario.model import Scenario

T0 = 1_793_620_800_000  # 2026-11-02T12:00:00Z
MIN = 60_000
HOUR = 3_600_000

CART = {
    "cart_recovery": {
        "trigger": {"event": "Added to Cart", "where": ["cart_total >= 20"]},
        "delay": "1h",
        "exit_on": ["Order Completed"],
    }
}


PLAN = {
    "extends": "none",
    "events": {
        "Added to Cart": {"properties": {"cart_total": "number", "product_id": "string"}},
        "Order Completed": {"properties": {"order_id": "string"}, "source": "server"},
        "Product Viewed": {"properties": {}},
    },
}
"""A tracking plan matching the hand-built events below."""


def scenario(campaigns: dict[str, Any] | None = None, **extra: Any) -> Scenario:
    """A minimal valid scenario carrying ``campaigns``."""
    doc: dict[str, Any] = {
        "name": "unit",
        "shoppers": 10,
        "population": {"arrivals": {"rate_per_hour": 60}},
        "journeys": {"j": {"start": "s", "states": {"s": {"emit": [{"track": "Product Viewed"}]}}}},
        "campaigns": CART if campaigns is None else campaigns,
        "tracking_plan": PLAN,
    }
    doc.update(extra)
    return Scenario.model_validate(doc)


_seq = [0]


def event(
    name: str,
    at: int,
    *,
    shopper: int = 0,
    user: str | None = None,
    anon: str | None = None,
    id: str | None = None,
    props: dict[str, Any] | None = None,
    kind: CallType = CallType.TRACK,
) -> Event:
    """An event at T0 + ``at`` ms."""
    _seq[0] += 1
    return Event(
        id=id or f"E{_seq[0]}",
        shopper=shopper,
        seq=_seq[0],
        type=kind,
        name=name,
        timestamp_ms=T0 + at,
        user_id=user,
        anonymous_id=anon,
        properties=props or {},
        context={},
        source=Source.WEB,
    )


def identify(
    at: int,
    user: str,
    anon: str | None = None,
    *,
    shopper: int = 0,
    email: bool = True,
    id: str | None = None,
) -> Event:
    traits = {"email": f"{user}@example.com"} if email else {}
    return event("", at, shopper=shopper, user=user, anon=anon, id=id, props=traits, kind=CallType.IDENTIFY)


def cart(at: int, total: float = 30, **kw: Any) -> Event:
    return event("Added to Cart", at, props={"cart_total": total, "product_id": "p1"}, **kw)


def order(at: int, **kw: Any) -> Event:
    return event("Order Completed", at, props={"order_id": "o1"}, **kw)


def delivered(
    ev: Event,
    arrival: int | None = None,
    *,
    faults: tuple[str, ...] = (),
    dropped: bool = False,
    truth_id: str | None = None,
) -> Delivery:
    """``ev`` delivered at T0 + ``arrival`` ms (default: at its timestamp)."""
    return Delivery(
        event=ev,
        truth_id=truth_id or ev.id,
        arrival_ms=ev.timestamp_ms if arrival is None else T0 + arrival,
        faults=faults,
        dropped=dropped,
    )
