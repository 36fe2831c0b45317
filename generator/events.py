"""Boundary records that flow between the stages (see DESIGN.md, "Data flow").

All are frozen, slotted, keyword-only dataclasses; they are built on the hot path, so no
validation happens here (the scenario model is validated once, at load time). Times are
integer epoch milliseconds (UTC) throughout.

- :class:`Event` — one canonical call in the *truth stream*: what really happened, in event time.
- :class:`Delivery` — one event *as delivered* (the delivery plan), tagged with the faults applied.
- :class:`Person` — the identity behind shopper k.
- :class:`Expectation` — what a campaign should (or must not) do for a person.
- :class:`Observation` — what the system under test was seen doing.

This module imports nothing from shopsim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

JSON = Mapping[str, Any]


class CallType(StrEnum):
    """The Segment-spec call an event is (Track API maps page/screen onto event ``type``)."""

    IDENTIFY = "identify"
    TRACK = "track"
    PAGE = "page"
    SCREEN = "screen"


class Source(StrEnum):
    """Where an event is emitted from; faults are scoped by it."""

    WEB = "web"
    APP = "app"
    SERVER = "server"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One call in the truth stream.

    ``id`` is a ULID built from ``timestamp_ms`` and shopper-rng bits, so it is deterministic,
    sortable and usable as Track ``id`` / Pipelines ``messageId``. ``name`` is the event name
    (track), the page name (page), the screen name (screen) or ``""`` (identify).
    ``properties`` holds track/page/screen properties, or the traits of an identify.
    ``context`` holds Segment ``context`` fields (page, campaign, device, userAgent, ...).
    """

    id: str
    shopper: int
    seq: int
    type: CallType
    name: str
    timestamp_ms: int
    user_id: str | None
    anonymous_id: str | None
    properties: JSON
    context: JSON
    source: Source
    journey: str = ""
    state: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One event as it is delivered: possibly altered, duplicated, delayed or dropped by faults.

    ``event`` is the event as sent (its id is the truth id, except for new-id double fires),
    ``truth_id`` the id of the truth event it derives from, ``arrival_ms`` when it reaches the
    target in simulated time. ``faults`` are tags such as ``"latency"``, ``"retry_duplicate"``,
    ``"double_fire"``, ``"drop"``, ``"schema_drift:rename:product_id>productId"``; the checker
    attributes misfires to them. A delivery with ``dropped=True`` is planned but never sent
    (it ends in the ledger as dropped-by-fault).
    """

    event: Event
    truth_id: str
    arrival_ms: int
    faults: tuple[str, ...] = ()
    dropped: bool = False
    oversize: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """The identity behind shopper k. ``anonymous_ids`` lists one id per device used."""

    shopper: int
    user_id: str
    email: str
    first_name: str
    last_name: str
    phone: str
    created_ms: int
    returning: bool
    anonymous_ids: tuple[str, ...] = ()
    attributes: JSON = field(default_factory=dict)


class Outcome(StrEnum):
    """What an expectation says a campaign should do for one (person, trigger)."""

    SEND = "send"
    NO_SEND = "no_send"


class Expectation(NamedTuple):
    """What a correct campaign does for one person and one trigger.

    ``basis`` is ``"truth"`` (campaign rules over the truth stream in event time: what the
    marketer wants) or ``"delivered"`` (platform rules over the delivery plan in arrival time:
    what a correct platform must do with what it received). ``reason`` explains a NO_SEND
    (``"purchased"``, ``"exited"``, ``"unaddressable"``, ``"frequency"``, ``"stale"``, ...).

    A named tuple, unlike the other records here: big runs build one per trigger event in each
    basis (about one per event), and a frozen slotted dataclass took 2.4 µs to build, four
    times a tuple. It is just as immutable; build it with keywords.
    """

    basis: str
    campaign: str
    person: str
    shopper: int
    outcome: Outcome
    trigger_event_id: str
    trigger_ms: int
    send_ms: int | None = None
    reason: str = ""
    exit_event_id: str | None = None


class ObservationKind(StrEnum):
    """What was observed on the target."""

    PROFILE = "profile"
    EVENT = "event"
    ENTRY = "entry"
    EXIT = "exit"
    SEND = "send"
    DROP = "drop"
    SKIP = "skip"


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """One fact read back from the target (emulator export, App API or reporting webhook).

    ``person`` is the person's ``id`` identifier when known (else email or cio_id).
    ``event_id`` is the ingested event's id for EVENT, the trigger event for ENTRY/SEND/DROP.
    ``data`` carries source-specific extras (merged anonymous ids, dedupe outcome, reason).
    """

    kind: ObservationKind
    person: str
    at_ms: int
    campaign: str = ""
    event_id: str = ""
    name: str = ""
    reason: str = ""
    data: JSON = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShopperLife:
    """Everything simulated for shopper k: who they are, how they arrived, what they did.

    ``events`` are in non-decreasing ``timestamp_ms`` order. ``start_ms`` is the arrival time
    of the shopper (their first event is at or after it); shoppers are yielded in ``start_ms``
    order, which is what lets the fault stage merge arrivals with a bounded reorder buffer.
    """

    person: Person
    start_ms: int
    journey: str
    device: str
    traffic_source: str
    events: tuple[Event, ...]
