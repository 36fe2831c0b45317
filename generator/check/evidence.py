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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from generator.events import CallType, Delivery, Event, Expectation, Outcome, ShopperLife
from generator.expect import DeliveredEngine, TruthEngine, campaign_horizon_ms
from generator.scenario.model import PropertySpec, Scenario

HOUR_MS = 3_600_000
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
    arrival_hourly: dict[int, int]
    latency_ms: list[int]
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

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._truth_engine = TruthEngine(scenario)
        self._delivered_engine = DeliveredEngine(scenario)
        self._truth: list[Expectation] = []
        self._delivered: list[Expectation] = []
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
            tuple[bool, str, tuple[str, ...], tuple[type, ...]], tuple[tuple[str, str, str], ...]
        ] = {}
        self._campaigns = bool(scenario.campaigns)
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
        self.truth_hourly: dict[int, int] = {}
        self.arrival_hourly: dict[int, int] = {}
        self.latency_ms: list[int] = []
        self._seen: set[str] = set()
        self._planned = 0
        self._arrival_hour = -1
        self._arrival_run = 0
        self._first_ms: int | None = None
        self._last_arrival = 0

    # -- truth side

    def add_life(self, life: ShopperLife) -> None:
        """Record one shopper's truth (and their truth expectations)."""
        events = life.events
        counts = self.counts
        counts["shoppers"] += 1
        counts["truth_events"] += len(events)
        if self._first_ms is None or life.start_ms < self._first_ms:
            self._first_ms = life.start_ms
        shopper = life.person.shopper
        user_id = ""
        identified_ms: int | None = None
        names: set[str] = set()
        hourly = self.truth_hourly
        relevant_names = self._relevant
        exit_names = self._exit_names
        track = CallType.TRACK
        has_track = False
        run_hour = -1
        run = 0
        for event in events:
            if identified_ms is None and event.user_id:
                identified_ms = event.timestamp_ms
                user_id = event.user_id
            hour = event.timestamp_ms // HOUR_MS
            if hour == run_hour:
                run += 1
            else:
                if run:
                    hourly[run_hour] = hourly.get(run_hour, 0) + run
                run_hour, run = hour, 1
            kind = event.type
            if kind is not track:
                if kind is CallType.IDENTIFY:
                    names.add("identified")
                continue
            has_track = True
            name = event.name
            names.add(name)
            if name in relevant_names:
                truth_event = TruthEvent(event.id, shopper, name, event.timestamp_ms)
                self.truth_events[event.id] = truth_event
                if name in exit_names:
                    self.exits.setdefault(shopper, []).append(truth_event)
        if run:
            hourly[run_hour] = hourly.get(run_hour, 0) + run
        if has_track and self._campaigns:
            self._truth.extend(self._truth_engine.shopper(events, presorted=True))
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
        if self._campaigns:
            produced = self._delivered_engine.feed(delivery)
            if produced:
                self._delivered.extend(produced)
        event = delivery.event
        self._planned += 1
        faults = delivery.faults
        kind = event.type
        is_identify = kind is CallType.IDENTIFY
        relevant = is_identify or event.name in self._relevant
        if faults:
            fault_counts = self.fault_counts
            for tag in faults:
                key = tag.split(":", 1)[0]
                fault_counts[key] = fault_counts.get(key, 0) + 1
                if key == "name_drift":
                    relevant = True
        event_id = event.id
        if event_id != delivery.truth_id:
            self.copies[event_id] = delivery.truth_id
        anonymous_only = not is_identify and not event.user_id
        info: DeliveryInfo | None = None
        if relevant or anonymous_only:
            info = DeliveryInfo(
                event_id,
                delivery.truth_id,
                event.shopper,
                event.name,
                kind,
                event.timestamp_ms,
                delivery.arrival_ms,
                faults,
                delivery.dropped,
                delivery.oversize,
                event.user_id,
                event.anonymous_id,
            )
            if relevant:
                self.deliveries.setdefault(delivery.truth_id, []).append(info)
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
        if arrival > self._last_arrival:
            self._last_arrival = arrival
        # Arrivals come in order: count runs of the same hour, touching the dict once per hour.
        hour = arrival // HOUR_MS
        if hour == self._arrival_hour:
            self._arrival_run += 1
        else:
            self._flush_arrival_hour()
            self._arrival_hour = hour
            self._arrival_run = 1
        self.latency_ms.append(arrival - event.timestamp_ms)
        if is_identify:
            if event.user_id:
                self.identified_shoppers.add(event.shopper)
                if event.anonymous_id and info is not None:
                    self.identifies[event.anonymous_id] = info
            return
        if event.user_id:
            self.identified_shoppers.add(event.shopper)
        elif info is not None and event.anonymous_id:
            self.anonymous.append(info)
        self._conform(event, faults)

    def _flush_arrival_hour(self) -> None:
        if self._arrival_run:
            hourly = self.arrival_hourly
            hourly[self._arrival_hour] = hourly.get(self._arrival_hour, 0) + self._arrival_run
            self._arrival_run = 0

    def tap_plan(self, plan: Iterable[Delivery]) -> Iterator[Delivery]:
        """Pass deliveries through, recording each (for the sender to consume downstream)."""
        for delivery in plan:
            self.add_delivery(delivery)
            yield delivery

    def _conform(self, event: Event, faults: tuple[str, ...]) -> None:
        # Tracking-plan conformance of what was delivered (Segment Protocols' violation kinds).
        # The verdict depends only on the event's name, its property names (in order) and the
        # python types of their values, so it is computed once per such signature and cached:
        # a delivered event then costs two C-level tuple builds and one dict lookup. The one
        # value-dependent rule (a float that is a whole number passes an integer property) makes
        # a signature uncacheable; those events take the full path every time.
        kind = event.type
        if kind is not CallType.TRACK and kind is not CallType.PAGE:
            return
        props = event.properties
        signature = (kind is CallType.TRACK, event.name, tuple(props), tuple(map(type, props.values())))
        found = self._conform_cache.get(signature)
        if found is None:
            found, cacheable = self._conform_slow(event)
            if cacheable and len(self._conform_cache) < _CONFORM_CACHE_MAX:
                self._conform_cache[signature] = found
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

    def finish(self) -> Evidence:
        """Close both expectation engines and return the evidence."""
        self._delivered.extend(self._delivered_engine.finish())
        self._flush_arrival_hour()
        self.counts["planned"] = self._planned
        self.counts["delivered"] = len(self._seen)
        funnel = dict(self._funnel_sets)
        funnel["shoppers"] = self.counts["shoppers"]
        return Evidence(
            scenario=self.scenario,
            truth=self._truth,
            delivered=self._delivered,
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
            truth_hourly=self.truth_hourly,
            arrival_hourly=self.arrival_hourly,
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
