"""Evidence from the generating side: truth, delivery plan and both expectation sets, indexed for joins.

:class:`EvidenceBuilder` is fed while the run streams (each :class:`ShopperLife` as it is
simulated, each :class:`Delivery` as it is planned), so the checker never needs the whole
stream in memory: it keeps per-shopper and per-person summaries, the expectations, compact
records of the deliveries that matter for attribution (campaign trigger and exit events,
identifies, anonymous events) and running aggregates (tracking-plan violations, histograms).

Everything is keyed by ids (STYLE.md rule 8): truth ids, delivered ids (new-id double fires map
back to their truth id) and person ids.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np

from generator.events import CallType, Delivery, Event, Expectation, Outcome, ShopperLife
from generator.expect import ExpectationBuilder, campaign_horizon_ms
from generator.scenario.model import PropertySpec, Scenario

HOUR_MS = 3_600_000
_TRACK = CallType.TRACK
_PAGE = CallType.PAGE
_IDENTIFY = CallType.IDENTIFY
# Enum member lookups cost ~90 ns each on CPython 3.11: the hot paths use these constants.
_TIMESTAMP = attrgetter("timestamp_ms")
_USER_ID = attrgetter("user_id")
_NAME = attrgetter("name")
_KIND_NAME = attrgetter("type", "name")
_new_tuple = tuple.__new__
"""Builds a :class:`DeliveryInfo` from a tuple without the named tuple's Python-level ``__new__``."""
MAX_EXAMPLES = 3
_CONFORM_CACHE_MAX = 200_000
"""Distinct (call type, name, property names, value types) signatures whose conformance verdict is
cached; beyond it (a catalog of millions of page names) events are checked in full."""


class DeliveryInfo(NamedTuple):
    """What the checker remembers of one planned delivery (no properties).

    A named tuple, not a dataclass: one is built per anonymous or campaign-relevant delivery on
    the hot path, and tuple construction is several times cheaper than a frozen dataclass.
    """

    event_id: str
    truth_id: str
    shopper: int
    name: str
    type: str
    timestamp_ms: int
    arrival_ms: int
    faults: tuple[str, ...]
    dropped: bool
    oversize: bool
    user_id: str | None
    anonymous_id: str | None

    @property
    def arrived(self) -> bool:
        return not (self.dropped or self.oversize)


class TruthEvent(NamedTuple):
    """A truth event the checks refer to (campaign trigger and exit events)."""

    id: str
    shopper: int
    name: str
    timestamp_ms: int


@dataclass(slots=True)
class ShopperTruth:
    """Per-shopper facts from the truth stream."""

    shopper: int
    user_id: str
    identified_ms: int | None
    anonymous_ids: tuple[str, ...]
    start_ms: int


@dataclass(slots=True)
class Violation:
    """One aggregated tracking-plan violation kind (Segment Protocols' shape)."""

    type: str
    event: str
    field_path: str
    """Segment's ``violationField``, e.g. ``properties.product_id``."""
    description: str
    count: int = 0
    examples: list[tuple[str, int, tuple[str, ...]]] = field(default_factory=list)
    """(event id, shopper, fault tags) of the first few occurrences."""


@dataclass(slots=True)
class Evidence:
    """Everything the checks know about what should have happened (see the module docstring)."""

    scenario: Scenario
    truth: list[Expectation]
    delivered: list[Expectation]
    shoppers: dict[int, ShopperTruth]
    person_shopper: dict[str, int]
    truth_events: dict[str, TruthEvent]
    exits: dict[int, list[TruthEvent]]
    """Truth exit events (any campaign's ``exit_on``) per shopper, in time order."""
    deliveries: dict[str, list[DeliveryInfo]]
    copies: dict[str, str]
    anonymous: list[DeliveryInfo]
    identifies: dict[str, DeliveryInfo]
    identify_infos: dict[int, list[DeliveryInfo]]
    """Every planned identify per shopper (dropped ones too: attribution reads their fault tags)."""
    identified_shoppers: set[int]
    identify_ids: set[str]
    """Delivered ids of identify calls (profile updates, not events: ingestion loss skips them)."""
    violations: dict[tuple[str, str, str], Violation]
    funnel: dict[str, int]
    counts: dict[str, int]
    fault_counts: dict[str, int]
    truth_hourly: dict[int, int]
    """Truth events per epoch hour."""
    arrival_hourly: dict[int, int]
    """Delivered events per epoch hour of arrival."""
    latency_ms: Sequence[int]
    """Arrival minus event time of every delivered event (an ``array('q')``: 8 bytes each)."""
    first_ms: int
    last_arrival_ms: int
    horizon_ms: int

    def truth_id(self, event_id: str) -> str:
        """The truth id of a delivered event id (itself unless it is a new-id double fire)."""
        return self.copies.get(event_id, event_id)

    def deliveries_of(self, truth_id: str) -> list[DeliveryInfo]:
        return self.deliveries.get(truth_id, [])


class EvidenceBuilder:
    """Feed lives and deliveries as they stream; :meth:`finish` returns the :class:`Evidence`."""

    def __init__(self, scenario: Scenario, *, expectations: bool = True) -> None:
        """``expectations=False`` leaves both expectation sets out (the caller computes them
        with :class:`~generator.expect.ExpectationBuilder` and passes them to :meth:`finish`)."""
        self.scenario = scenario
        self._expect = ExpectationBuilder(scenario) if expectations else None
        trigger_names = {c.trigger.event_name for c in scenario.campaigns.values()}
        exit_names = {n for c in scenario.campaigns.values() for n in c.exit_on}
        self._trigger_names = frozenset(trigger_names)
        self._exit_names = frozenset(exit_names)
        self._relevant = frozenset(trigger_names | exit_names)
        plan = scenario.tracking_plan
        self._plan_events = plan.all_events
        self._compiled: dict[str, tuple[frozenset[str], dict[str, tuple[tuple[type, ...], str]]]] = {}
        self._compiled_page = _compile(plan.page_properties)
        self._conform_cache: dict[
            str, list[tuple[bool, tuple[str, ...], tuple[type, ...], tuple[tuple[str, str, str], ...]]]
        ] = {}
        self._conform_cached = 0
        self.shoppers: dict[int, ShopperTruth] = {}
        self.person_shopper: dict[str, int] = {}
        self.truth_events: dict[str, TruthEvent] = {}
        self.exits: dict[int, list[TruthEvent]] = {}
        self.deliveries: dict[str, list[DeliveryInfo]] = {}
        self.copies: dict[str, str] = {}
        self.anonymous: list[DeliveryInfo] = []
        self.identifies: dict[str, DeliveryInfo] = {}
        self.identify_infos: dict[int, list[DeliveryInfo]] = {}
        self.identified_shoppers: set[int] = set()
        self.identify_ids: set[str] = set()
        self.violations: dict[tuple[str, str, str], Violation] = {}
        self._funnel_sets: dict[str, int] = {}
        self.counts: dict[str, int] = {
            "shoppers": 0,
            "truth_events": 0,
            "planned": 0,
            "dropped": 0,
            "oversize": 0,
            "delivered": 0,
            "duplicates": 0,
        }
        self.fault_counts: dict[str, int] = {}
        self._truth_stamps = array("q")
        self._arrivals = array("q")
        self.latency_ms = array("q")
        self._seen: set[str] = set()
        self._planned = 0
        self._first_ms: int | None = None
        self._last_arrival = 0

    # -- truth side

    def add_life(self, life: ShopperLife) -> None:
        """Record one shopper's truth (and their truth expectations)."""
        # Once per shopper; the per-event work is done by C-level passes (map, filter, compress)
        # because a Python loop over every truth event was most of the truth side's cost.
        events = life.events
        counts = self.counts
        counts["shoppers"] += 1
        counts["truth_events"] += len(events)
        if self._first_ms is None or life.start_ms < self._first_ms:
            self._first_ms = life.start_ms
        shopper = life.person.shopper
        self._truth_stamps.extend(map(_TIMESTAMP, events))
        first_known = next(filter(_USER_ID, events), None)
        user_id = (first_known.user_id or "") if first_known is not None else ""
        identified_ms = first_known.timestamp_ms if first_known is not None else None
        kinds_names = set(map(_KIND_NAME, events))
        names = {name for kind, name in kinds_names if kind is _TRACK}
        has_track = bool(names)
        if any(kind is _IDENTIFY for kind, _ in kinds_names):
            names.add("identified")
        relevant = self._relevant.intersection(names)
        if relevant:
            exit_names = self._exit_names
            truth_events = self.truth_events
            for event in compress(events, map(relevant.__contains__, map(_NAME, events))):
                if event.type is not _TRACK:
                    continue
                truth_event = TruthEvent(event.id, shopper, event.name, event.timestamp_ms)
                truth_events[event.id] = truth_event
                if event.name in exit_names:
                    self.exits.setdefault(shopper, []).append(truth_event)
        if has_track and self._expect is not None:
            self._expect.add_life(life)
        self.person_shopper[life.person.user_id] = shopper
        if user_id:
            self.person_shopper[user_id] = shopper
        self.shoppers[shopper] = ShopperTruth(
            shopper=shopper,
            user_id=user_id,
            identified_ms=identified_ms,
            anonymous_ids=life.person.anonymous_ids,
            start_ms=life.start_ms,
        )
        funnel = self._funnel_sets
        for name in names:
            funnel[name] = funnel.get(name, 0) + 1

    def tap_lives(self, lives: Iterable[ShopperLife]) -> Iterator[ShopperLife]:
        """Pass lives through, recording each (for the fault stage to consume downstream)."""
        for life in lives:
            self.add_life(life)
            yield life

    # -- delivery side

    def add_delivery(self, delivery: Delivery) -> None:
        """Record one planned delivery (and advance the delivered-basis expectations)."""
        # The hot path of big runs (once per planned delivery): locals, module constants for
        # enum members, one id set shared with the delivered-basis engine.
        event = delivery.event
        self._planned += 1
        faults = delivery.faults
        kind = event.type
        is_identify = kind is _IDENTIFY
        relevant = is_identify or event.name in self._relevant
        if faults and self._count_faults(faults):
            relevant = True
        event_id = event.id
        truth_id = delivery.truth_id
        if event_id != truth_id:
            self.copies[event_id] = truth_id
        user_id = event.user_id
        info: DeliveryInfo | None = None
        if relevant or not (is_identify or user_id):
            info = _new_tuple(
                DeliveryInfo,
                (
                    event_id,
                    truth_id,
                    event.shopper,
                    event.name,
                    kind,
                    event.timestamp_ms,
                    delivery.arrival_ms,
                    faults,
                    delivery.dropped,
                    delivery.oversize,
                    user_id,
                    event.anonymous_id,
                ),
            )
            if relevant:
                self.deliveries.setdefault(truth_id, []).append(info)
                if is_identify:
                    self.identify_infos.setdefault(event.shopper, []).append(info)
                    self.identify_ids.add(event_id)
        if delivery.dropped:
            self.counts["dropped"] += 1
            return
        if delivery.oversize:
            self.counts["oversize"] += 1
            return
        seen = self._seen
        if event_id in seen:
            self.counts["duplicates"] += 1
            return
        seen.add(event_id)
        arrival = delivery.arrival_ms
        if self._expect is not None:
            self._expect.arrive(event, arrival)
        if arrival > self._last_arrival:
            self._last_arrival = arrival
        self._arrivals.append(arrival)
        self.latency_ms.append(arrival - event.timestamp_ms)
        if is_identify:
            if user_id:
                self.identified_shoppers.add(event.shopper)
                if event.anonymous_id and info is not None:
                    self.identifies[event.anonymous_id] = info
            return
        if user_id:
            self.identified_shoppers.add(event.shopper)
        elif info is not None and event.anonymous_id:
            self.anonymous.append(info)
        if kind is _TRACK or kind is _PAGE:
            self._conform(event, faults)

    def _count_faults(self, faults: tuple[str, ...]) -> bool:
        """Count a delivery's fault tags; whether one makes it matter for attribution (a renamed
        event is looked up under its truth id whatever its new name)."""
        fault_counts = self.fault_counts
        renamed = False
        for tag in faults:
            key = tag.split(":", 1)[0]
            fault_counts[key] = fault_counts.get(key, 0) + 1
            if key == "name_drift":
                renamed = True
        return renamed

    def tap_plan(self, plan: Iterable[Delivery]) -> Iterator[Delivery]:
        """Pass deliveries through, recording each (for the sender to consume downstream)."""
        for delivery in plan:
            self.add_delivery(delivery)
            yield delivery

    def _conform(self, event: Event, faults: tuple[str, ...]) -> None:
        # Tracking-plan conformance of what was delivered (Segment Protocols' violation kinds).
        # The verdict depends only on the event's kind and name, its property names (in order)
        # and the python types of their values, so it is computed once per such signature.
        # Signatures are kept per name and compared with ``==`` rather than hashed: the tuples
        # hold the very same string and type objects each time, so equality is a pointer walk,
        # while hashing a nested key cost more than the rest of the check. The one
        # value-dependent rule (a float that is a whole number passes an integer property) makes
        # a signature uncacheable; those events take the full path every time.
        props = event.properties
        keys = tuple(props)
        types = tuple(map(type, props.values()))
        name = event.name
        known = self._conform_cache.get(name)
        found: tuple[tuple[str, str, str], ...] | None = None
        if known is not None:
            is_track = event.type is _TRACK
            for signature in known:
                if signature[1] == keys and signature[2] == types and signature[0] is is_track:
                    found = signature[3]
                    break
        if found is None:
            found, cacheable = self._conform_slow(event)
            if cacheable and self._conform_cached < _CONFORM_CACHE_MAX:
                self._conform_cached += 1
                self._conform_cache.setdefault(name, []).append((event.type is _TRACK, keys, types, found))
        if found:
            for kind_name, field_path, description in found:
                self._violate(kind_name, event, field_path, description, faults)

    def _conform_slow(self, event: Event) -> tuple[tuple[tuple[str, str, str], ...], bool]:
        """(violations as (kind, field path, description), whether they depend only on the
        event's signature) of one track or page event against the plan compiled per event name
        into (required names, property → (allowed python types, type name))."""
        found: list[tuple[str, str, str]] = []
        cacheable = True
        if event.type is CallType.TRACK:
            compiled = self._compiled.get(event.name)
            if compiled is None:
                if event.name not in self._plan_events:
                    found.append(
                        ("Unplanned-Event", "event", f"event {event.name!r} is not in the tracking plan")
                    )
                    return tuple(found), cacheable
                compiled = self._compiled[event.name] = _compile(self._plan_events[event.name].properties)
        else:
            compiled = self._compiled_page
        required, types = compiled
        props = event.properties
        missing = required - props.keys()
        for prop, value in props.items():
            spec = types.get(prop)
            if spec is None:
                found.append(
                    (
                        "Unplanned-Property",
                        f"properties.{prop}",
                        f"property {prop!r} is not planned for {event.name!r}",
                    )
                )
            elif type(value) not in spec[0]:
                if value is None:
                    if prop in required:
                        missing = missing | {prop}
                elif spec[1] == "integer" and type(value) is float:
                    cacheable = False
                    if not value.is_integer():
                        found.append(
                            (
                                "Datatype",
                                f"properties.{prop}",
                                f"{prop!r} must be {spec[1]}, got {_json_type(value)}",
                            )
                        )
                else:
                    found.append(
                        (
                            "Datatype",
                            f"properties.{prop}",
                            f"{prop!r} must be {spec[1]}, got {_json_type(value)}",
                        )
                    )
        for prop in missing:
            found.append(("Required", f"properties.{prop}", f"required property {prop!r} is missing"))
        return tuple(found), cacheable

    def _violate(
        self, kind: str, event: Event, field_name: str, description: str, faults: tuple[str, ...]
    ) -> None:
        key = (kind, event.name, field_name)
        violation = self.violations.get(key)
        if violation is None:
            violation = self.violations[key] = Violation(kind, event.name, field_name, description)
        violation.count += 1
        if len(violation.examples) < MAX_EXAMPLES:
            violation.examples.append((event.id, event.shopper, faults))

    def finish(self, expectations: tuple[list[Expectation], list[Expectation]] | None = None) -> Evidence:
        """Close both expectation sets and return the evidence (``expectations`` = the
        ``(truth, delivered)`` computed elsewhere, for a builder made with ``expectations=False``)."""
        if self._expect is not None:
            truth, delivered = self._expect.finish()
        else:
            truth, delivered = expectations if expectations is not None else ([], [])
        self.counts["planned"] = self._planned
        self.counts["delivered"] = len(self._seen)
        funnel = dict(self._funnel_sets)
        funnel["shoppers"] = self.counts["shoppers"]
        return Evidence(
            scenario=self.scenario,
            truth=truth,
            delivered=delivered,
            shoppers=self.shoppers,
            person_shopper=self.person_shopper,
            truth_events=self.truth_events,
            exits=self.exits,
            deliveries=self.deliveries,
            copies=self.copies,
            anonymous=self.anonymous,
            identifies=self.identifies,
            identify_infos=self.identify_infos,
            identified_shoppers=self.identified_shoppers,
            identify_ids=self.identify_ids,
            violations=self.violations,
            funnel=funnel,
            counts=self.counts,
            fault_counts=self.fault_counts,
            truth_hourly=_hourly(self._truth_stamps),
            arrival_hourly=_hourly(self._arrivals),
            latency_ms=self.latency_ms,
            first_ms=self._first_ms if self._first_ms is not None else self.scenario.start_ms,
            last_arrival_ms=self._last_arrival,
            horizon_ms=campaign_horizon_ms(self.scenario),
        )


_ALLOWED: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}


def _compile(
    planned: dict[str, PropertySpec],
) -> tuple[frozenset[str], dict[str, tuple[tuple[type, ...], str]]]:
    """(required property names, {property: (allowed python types, type name)}) for one event."""
    required = frozenset(prop for prop, spec in planned.items() if spec.required)
    types = {prop: (_ALLOWED[spec.type], str(spec.type)) for prop, spec in planned.items()}
    return required, types


def _hourly(stamps: array[int]) -> dict[int, int]:
    """Counts per epoch hour of epoch-ms stamps (numpy: one pass over millions of events)."""
    if not stamps:
        return {}
    hours, counts = np.unique(np.frombuffer(stamps, dtype=np.int64) // HOUR_MS, return_counts=True)
    return dict(zip(hours.tolist(), counts.tolist(), strict=True))


def _tag_kind(tag: str) -> str:
    """The category of a fault tag (``schema_drift:rename:a>b`` → ``schema_drift``)."""
    return tag.split(":", 1)[0]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def _type_ok(value: Any, spec: PropertySpec) -> bool:
    actual = _json_type(value)
    if spec.type == "number":
        return actual in ("number", "integer")
    if spec.type == "integer":
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    return actual == spec.type


def expected_sends(expectations: Iterable[Expectation]) -> Iterator[Expectation]:
    """The SEND expectations of a list."""
    return (e for e in expectations if e.outcome is Outcome.SEND)
