"""Truth stream → delivery plan: the data faults that break retention programs, injected on purpose.

:func:`plan_deliveries` turns shopper lives (the truth, never modified) into
:class:`~generator.events.Delivery` records ordered by arrival time. Every delivery carries the
tags of the faults applied to it (the checker attributes misfires to them):

==============================  ============================================================
tag                             fault (scenario ``faults:`` key) and what it does
==============================  ============================================================
``latency``                     ``latency``: arrival = true time + a draw from ``dist`` (> 0)
``retry_duplicate``             ``retry_duplicates``: the same event (same id, same payload)
                                again, ``copies`` times, each ``after`` the previous arrival
``double_fire``                 ``double_fires``: ``copies`` extra events with *new* ids
                                (ULID of the copy's time + fresh bits), ``within`` ms later
``drop``                        ``drops``: planned but never delivered (``dropped=True``)
``schema_drift:rename:<a>><b>`` ``schema_drift``: top-level property ``a`` renamed to ``b``
``schema_drift:retype:<p>:<t>`` ``schema_drift``: property ``p`` sent as ``t`` (number/string)
``schema_drift:noise``          ``schema_drift``: ``noise`` extra properties ``noise_0``, ...
``name_drift:<a>><b>``          ``name_drift``: track event ``a`` sent as ``b``
``clock_skew``                  ``clock_skew``: timestamp += ``offset`` ± ``jitter`` (the
                                arrival still follows the *true* time)
``out_of_order``                ``out_of_order``: held back 1..``max_delay`` ms more
``never_identified``            ``never_identified``: on every delivery of such a shopper; their
                                identify deliveries are dropped and their client-side (web/app)
                                events lose ``user_id`` (the client never learnt who they are);
                                server events keep it
``oversize``                    ``oversize``: a ``shopsim_padding`` property makes the
                                serialized properties exceed ``bytes`` (``oversize=True``)
==============================  ============================================================

Scopes: each entry applies to events matching its ``events`` (track event names; empty = all
calls) and ``source`` (``web``, ``app``, ``server``, or ``client`` = web or app). Within one
fault list the *first* matching entry wins, so put specific entries before catch-alls.
A dropped event gets no copies; copies inherit the original's payload faults and tags.

Determinism: shopper k's faults come only from ``shopper_rng(seed, k, Stream.FAULTS)`` and their
own events, so shopper k's deliveries are the same for any shopper count or shard.

Ordering: deliveries leave in ``(arrival_ms, shopper, n)`` order, ``n`` being the position in
the shopper's own plan. Shoppers arrive in ``start_ms`` order and nothing arrives before its
event's true time (≥ the shopper's ``start_ms``), so when shopper k starts, every buffered
delivery arriving at or before that instant is final: the reorder buffer only holds deliveries
still in flight (bounded by the longest delay, not by the run).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from generator.events import CallType, Delivery, Event, ShopperLife
from generator.ids import ulid
from generator.scenario.model import (
    ClockSkewFault,
    Distribution,
    DoubleFireFault,
    DropFault,
    Faults,
    LatencyFault,
    NameDriftFault,
    OutOfOrderFault,
    OversizeFault,
    RetryDuplicateFault,
    Scenario,
    SchemaDriftFault,
    Scope,
)
from generator.simulate.seeding import Stream, shopper_rng
from generator.wire.base import dumps

PADDING_PROPERTY = "shopsim_padding"
_CLIENT = frozenset({"web", "app"})
_INT64 = 2**63


def sample_ms(dist: Distribution, rng: np.random.Generator) -> int:
    """One non-negative duration in integer ms from a scenario distribution."""
    if dist.fixed is not None:
        return dist.fixed
    if dist.exponential is not None:
        return round(rng.exponential(dist.exponential.mean))
    if dist.uniform is not None:
        return round(rng.uniform(dist.uniform.min, dist.uniform.max))
    assert dist.lognormal is not None
    return round(dist.lognormal.median * math.exp(dist.lognormal.shape * rng.standard_normal()))


def _in_scope(scope: Scope, event: Event) -> bool:
    if scope.source is not None:
        source = event.source.value
        if scope.source == "client":
            if source not in _CLIENT:
                return False
        elif scope.source != source:
            return False
    # Scoped names are tracking-plan event names: they select track calls only.
    return not scope.events or (event.type is CallType.TRACK and event.name in scope.events)


@dataclass(frozen=True, slots=True)
class _Rules:
    """The first matching entry of each fault list for one kind of event."""

    latency: LatencyFault | None
    retry: RetryDuplicateFault | None
    double: DoubleFireFault | None
    drop: DropFault | None
    drift: SchemaDriftFault | None
    name_drift: NameDriftFault | None
    skew: ClockSkewFault | None
    hold: OutOfOrderFault | None
    oversize: OversizeFault | None


class _Compiled:
    """Fault entries resolved per ``(type, name, source)`` once, then looked up per event."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.never_identified = faults.never_identified.p if faults.never_identified else 0.0
        self.active = bool(
            self.never_identified
            or faults.latency
            or faults.retry_duplicates
            or faults.double_fires
            or faults.drops
            or faults.schema_drift
            or faults.name_drift
            or faults.clock_skew
            or faults.out_of_order
            or faults.oversize
        )
        self._cache: dict[tuple[CallType, str, str], _Rules] = {}

    def rules(self, event: Event) -> _Rules:
        key = (event.type, event.name, event.source.value)
        rules = self._cache.get(key)
        if rules is None:
            f = self.faults

            def first(entries: Iterable[Any]) -> Any:
                return next((e for e in entries if _in_scope(e, event)), None)

            rules = _Rules(
                latency=first(f.latency),
                retry=first(f.retry_duplicates),
                double=first(f.double_fires),
                drop=first(f.drops),
                drift=first(f.schema_drift) if event.type is not CallType.IDENTIFY else None,
                name_drift=(
                    first(e for e in f.name_drift if event.name in e.rename)
                    if event.type is CallType.TRACK
                    else None
                ),
                skew=first(f.clock_skew),
                hold=first(f.out_of_order),
                oversize=first(f.oversize),
            )
            self._cache[key] = rules
        return rules


def plan_deliveries(scenario: Scenario, lives: Iterable[ShopperLife], *, seed: int) -> Iterator[Delivery]:
    """The delivery plan for ``lives`` (in ``start_ms`` order), ordered by arrival time.

    Dropped deliveries are yielded too (``dropped=True``). The truth events are never modified.
    """
    compiled = _Compiled(scenario.faults)
    heap: list[tuple[int, int, int, Delivery]] = []
    last_start: int | None = None
    for life in lives:
        if last_start is not None and life.start_ms < last_start:
            raise ValueError(
                f"shopper {life.person.shopper} starts at {life.start_ms}, before the previous shopper "
                f"({last_start}): plan_deliveries needs lives in start order"
            )
        last_start = life.start_ms
        # Everything arriving at or before this shopper's start is final (see module docstring).
        while heap and heap[0][0] <= life.start_ms:
            yield heapq.heappop(heap)[3]
        shopper = life.person.shopper
        for n, delivery in enumerate(_shopper_deliveries(compiled, life, seed)):
            heapq.heappush(heap, (delivery.arrival_ms, shopper, n, delivery))
    while heap:
        yield heapq.heappop(heap)[3]


def shopper_deliveries(scenario: Scenario, life: ShopperLife, *, seed: int) -> list[Delivery]:
    """One shopper's deliveries in the order their faults were drawn (not arrival order)."""
    return list(_shopper_deliveries(_Compiled(scenario.faults), life, seed))


def _shopper_deliveries(compiled: _Compiled, life: ShopperLife, seed: int) -> Iterator[Delivery]:
    if not compiled.active:
        for event in life.events:
            yield Delivery(event=event, truth_id=event.id, arrival_ms=event.timestamp_ms)
        return
    rng = shopper_rng(seed, life.person.shopper, Stream.FAULTS)
    # Drawn first and always, so adding per-event faults never flips who is never identified.
    never_identified = bool(compiled.never_identified) and rng.random() < compiled.never_identified
    for event in life.events:
        yield from _event_deliveries(compiled.rules(event), event, rng, never_identified)


def _event_deliveries(
    rules: _Rules, truth: Event, rng: np.random.Generator, never_identified: bool
) -> Iterator[Delivery]:
    tags: list[str] = []
    event = truth
    if never_identified:
        tags.append("never_identified")
        if truth.type is CallType.IDENTIFY:
            yield Delivery(
                event=truth,
                truth_id=truth.id,
                arrival_ms=truth.timestamp_ms,
                faults=tuple(tags),
                dropped=True,
            )
            return
        if truth.user_id is not None and truth.anonymous_id is not None and truth.source.value in _CLIENT:
            event = _altered(event, user_id=None)

    if rules.drop is not None and rng.random() < rules.drop.p:
        tags.append("drop")
        yield Delivery(
            event=event, truth_id=truth.id, arrival_ms=truth.timestamp_ms, faults=tuple(tags), dropped=True
        )
        return

    name = truth.name
    properties: Mapping[str, Any] = truth.properties
    if rules.name_drift is not None and rng.random() < rules.name_drift.p:
        name = rules.name_drift.rename[truth.name]
        tags.append(f"name_drift:{truth.name}>{name}")
    if rules.drift is not None and rng.random() < rules.drift.p:
        properties = _drift(rules.drift, dict(properties), rng, tags)
    oversize = False
    if rules.oversize is not None and rng.random() < rules.oversize.p:
        properties = _pad(properties, rules.oversize.bytes)
        tags.append("oversize")
        oversize = True
    timestamp = truth.timestamp_ms
    if rules.skew is not None:
        jitter = rules.skew.jitter
        timestamp += rules.skew.offset + (int(rng.integers(-jitter, jitter + 1)) if jitter else 0)
        tags.append("clock_skew")

    arrival = truth.timestamp_ms
    if rules.latency is not None:
        delay = sample_ms(rules.latency.dist, rng)
        if delay > 0:
            arrival += delay
            tags.append("latency")
    if rules.hold is not None and rng.random() < rules.hold.p:
        arrival += int(rng.integers(1, rules.hold.max_delay + 1)) if rules.hold.max_delay > 0 else 0
        tags.append("out_of_order")

    if name != truth.name or properties is not truth.properties or timestamp != truth.timestamp_ms:
        event = _altered(event, name=name, properties=properties, timestamp_ms=timestamp)
    faults = tuple(tags)
    yield Delivery(event=event, truth_id=truth.id, arrival_ms=arrival, faults=faults, oversize=oversize)

    if rules.retry is not None and rng.random() < rules.retry.p:
        at = arrival
        retry_tags = (*faults, "retry_duplicate")
        for _ in range(rules.retry.copies):
            at += sample_ms(rules.retry.after, rng)
            yield Delivery(
                event=event, truth_id=truth.id, arrival_ms=at, faults=retry_tags, oversize=oversize
            )

    if rules.double is not None and rng.random() < rules.double.p:
        transit = arrival - truth.timestamp_ms
        double_tags = (*faults, "double_fire")
        for _ in range(rules.double.copies):
            offset = int(rng.integers(0, rules.double.within + 1))
            stamped = timestamp + offset
            copy_id = ulid(stamped, int.from_bytes(rng.bytes(10), "big"))
            copy = _altered(event, id=copy_id, timestamp_ms=stamped)
            yield Delivery(
                event=copy,
                truth_id=truth.id,
                arrival_ms=truth.timestamp_ms + offset + transit,
                faults=double_tags,
                oversize=oversize,
            )


_KEEP: Any = object()
_EVENT_FIELDS = (
    "id", "shopper", "seq", "type", "name", "timestamp_ms", "user_id", "anonymous_id",
    "properties", "context", "source", "journey", "state",
)  # fmt: skip
# If Event grows a field, fall back to dataclasses.replace rather than silently drop it.
_FAST_ALTER = tuple(f.name for f in fields(Event)) == _EVENT_FIELDS


def _altered(
    event: Event,
    *,
    id: str = _KEEP,
    name: str = _KEEP,
    timestamp_ms: int = _KEEP,
    user_id: str | None = _KEEP,
    properties: Mapping[str, Any] = _KEEP,
) -> Event:
    """``event`` with some fields changed (``dataclasses.replace`` costs ~5x more per call)."""
    if not _FAST_ALTER:
        changes: dict[str, Any] = {
            "id": id,
            "name": name,
            "timestamp_ms": timestamp_ms,
            "user_id": user_id,
            "properties": properties,
        }
        kept: dict[str, Any] = {k: v for k, v in changes.items() if v is not _KEEP}
        return replace(event, **kept)
    return Event(
        id=event.id if id is _KEEP else id,
        shopper=event.shopper,
        seq=event.seq,
        type=event.type,
        name=event.name if name is _KEEP else name,
        timestamp_ms=event.timestamp_ms if timestamp_ms is _KEEP else timestamp_ms,
        user_id=event.user_id if user_id is _KEEP else user_id,
        anonymous_id=event.anonymous_id,
        properties=event.properties if properties is _KEEP else properties,
        context=event.context,
        source=event.source,
        journey=event.journey,
        state=event.state,
    )


def _drift(
    fault: SchemaDriftFault, props: dict[str, Any], rng: np.random.Generator, tags: list[str]
) -> dict[str, Any]:
    for old, new in fault.rename.items():
        if old in props and new not in props:
            # Rebuild to keep the key's position: drifted payloads look like the original otherwise.
            props = {(new if k == old else k): v for k, v in props.items()}
            tags.append(f"schema_drift:rename:{old}>{new}")
    for prop, kind in fault.retype.items():
        if prop in props:
            value = _retype(props[prop], kind)
            if value is not None:
                props[prop] = value
                tags.append(f"schema_drift:retype:{prop}:{kind}")
    if fault.noise:
        for i, value in enumerate(rng.integers(0, 1_000_000, size=fault.noise).tolist()):
            props[f"noise_{i}"] = value
        tags.append("schema_drift:noise")
    return props


def _retype(value: Any, kind: str) -> Any:
    """``value`` as ``kind`` ("number" | "string"); ``None`` when it already is or cannot be."""
    if isinstance(value, bool) or value is None:
        return None
    if kind == "string":
        return None if isinstance(value, str) else str(value)
    if isinstance(value, int | float) or not isinstance(value, str):
        return None
    try:
        number: int | float = int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            digits = "".join(ch for ch in value if ch.isdigit())
            if not digits:
                return None
            number = int(digits)
    if isinstance(number, float) and not math.isfinite(number):
        return None
    if isinstance(number, int) and abs(number) >= _INT64:
        number = float(number)  # JSON encoders refuse integers beyond 64 bits
    return number


def _pad(props: Mapping[str, Any], size: int) -> dict[str, Any]:
    props = dict(props)
    current = len(dumps(props))
    props[PADDING_PROPERTY] = "x" * max(1, size - current + 1)
    return props
