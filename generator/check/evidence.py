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
from dataclasses import dataclass
from functools import partial
from itertools import compress, repeat
from operator import attrgetter, is_, sub
from typing import NamedTuple

import numpy as np

from generator.check.conformance import TrackingPlanConformance, Violation
from generator.events import CallType, Delivery, Event, Expectation, ShopperLife
from generator.expect import ExpectationBuilder, campaign_horizon_ms
from generator.scenario.model import Scenario

HOUR_MS = 3_600_000
_TRACK = CallType.TRACK
_IDENTIFY = CallType.IDENTIFY
# Enum member lookups cost ~90 ns each on CPython 3.11: the hot paths use these constants.
_TIMESTAMP = attrgetter("timestamp_ms")
_USER_ID = attrgetter("user_id")
_NAME = attrgetter("name")
_SHOPPER = attrgetter("shopper")
_ID = attrgetter("id")
_ANONYMOUS_ID = attrgetter("anonymous_id")
_EVENT = attrgetter("event")
_ARRIVAL = attrgetter("arrival_ms")
_KIND = attrgetter("type")
CHUNK = 4096
"""Deliveries recorded per chunk by :meth:`EvidenceBuilder.add_deliveries` and ``tap_plan``."""


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


_new_info = partial(tuple.__new__, DeliveryInfo)
"""``_new_info(fields)``: a DeliveryInfo from a tuple of its fields, C-level (for map)."""


class AnonymousEvents:
    """The delivered anonymous events (no user id) that could merge, kept as columns.

    Merge completeness reads anonymous events whose anonymous id a delivered identify names, and
    identifies come only from shoppers who identify in truth: :class:`EvidenceBuilder` keeps just
    those shoppers' anonymous events (a third of them in the cart-recovery benchmark). Most events
    of a big run are anonymous (eight in nine there): a :class:`DeliveryInfo` each would be a
    million small records for the collector to scan again and again. A row of a plain delivery
    (no fault tags, its own truth id) is rebuilt on demand by :meth:`info`; the few others keep
    their whole record.
    """

    __slots__ = (
        "_infos",
        "anonymous_id",
        "arrival_ms",
        "event_id",
        "name",
        "shopper",
        "timestamp_ms",
        "type",
        "user_id",
    )

    def __init__(self) -> None:
        self.event_id: list[str] = []
        self.anonymous_id: list[str] = []
        self.timestamp_ms = array("q")
        self.arrival_ms = array("q")
        self.shopper = array("q")
        self.name: list[str] = []
        self.type: list[str] = []
        self.user_id: list[str | None] = []
        self._infos: dict[int, DeliveryInfo] = {}
        """Row → the whole record, for rows a plain row's constants do not describe."""

    def __len__(self) -> int:
        return len(self.event_id)

    def append(self, info: DeliveryInfo) -> None:
        """Add one anonymous event's record."""
        if info.faults or info.truth_id != info.event_id or info.dropped or info.oversize:
            self._infos[len(self.event_id)] = info
        self.event_id.append(info.event_id)
        self.anonymous_id.append(info.anonymous_id or "")
        self.timestamp_ms.append(info.timestamp_ms)
        self.arrival_ms.append(info.arrival_ms)
        self.shopper.append(info.shopper)
        self.name.append(info.name)
        self.type.append(info.type)
        self.user_id.append(info.user_id)

    def extend_plain(self, events: Sequence[Event], arrivals: Iterable[int]) -> None:
        """Add plain deliveries' anonymous events (C-level passes over the columns)."""
        self.event_id.extend(map(_ID, events))
        self.anonymous_id.extend(map(_ANONYMOUS_ID, events))
        self.timestamp_ms.extend(map(_TIMESTAMP, events))
        self.arrival_ms.extend(arrivals)
        self.shopper.extend(map(_SHOPPER, events))
        self.name.extend(map(_NAME, events))
        self.type.extend(map(_KIND, events))
        self.user_id.extend(map(_USER_ID, events))

    def info(self, row: int) -> DeliveryInfo:
        """The record of one row (as :class:`EvidenceBuilder` would have built it)."""
        found = self._infos.get(row)
        if found is not None:
            return found
        event_id = self.event_id[row]
        return DeliveryInfo(
            event_id,
            event_id,
            self.shopper[row],
            self.name[row],
            self.type[row],
            self.timestamp_ms[row],
            self.arrival_ms[row],
            (),
            False,
            False,
            self.user_id[row],
            self.anonymous_id[row],
        )

    def __iter__(self) -> Iterator[DeliveryInfo]:
        return map(self.info, range(len(self.event_id)))


class TruthEvent(NamedTuple):
    """A truth exit event (of a name some campaign exits on), as the checks refer to it."""

    id: str
    shopper: int
    name: str
    timestamp_ms: int


class ShopperTruth(NamedTuple):
    """Per-shopper facts from the truth stream (a named tuple: one is built per shopper)."""

    shopper: int
    user_id: str
    identified_ms: int | None
    anonymous_ids: tuple[str, ...]
    start_ms: int


@dataclass(slots=True)
class Evidence:
    """Everything the checks know about what should have happened (see the module docstring)."""

    scenario: Scenario
    truth: list[Expectation]
    delivered: list[Expectation]
    shoppers: dict[int, ShopperTruth]
    person_shopper: dict[str, int]
    truth_ms: dict[str, int]
    """Truth id → event time of the truth track events of a name a campaign triggers or exits on,
    of shoppers with an exit event (the suppression check's trigger times; a plain int per id:
    a third of a cart-recovery run's events are product views)."""
    exit_events: dict[str, TruthEvent]
    """Truth id → truth exit event (any campaign's ``exit_on``)."""
    exits: dict[int, list[TruthEvent]]
    """Truth exit events per shopper, in time order."""
    deliveries: dict[str, DeliveryInfo | list[DeliveryInfo]]
    """Truth id → its deliveries in arrival order: the record itself while there is one (most
    ids: no list per id for the collector to scan), a list once there are more."""
    copies: dict[str, str]
    anonymous: AnonymousEvents
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
        """A truth id's recorded deliveries (campaign-relevant names and identifies), in arrival order."""
        found = self.deliveries.get(truth_id)
        if found is None:
            return []
        return found if isinstance(found, list) else [found]


class EvidenceBuilder:
    """Feed lives and deliveries as they stream; :meth:`finish` returns the :class:`Evidence`."""

    def __init__(self, scenario: Scenario, *, expectations: bool = True) -> None:
        """``expectations=False`` leaves both expectation sets out (the caller computes them
        with :class:`~generator.expect.ExpectationBuilder` and passes them to :meth:`finish`)."""
        self.scenario = scenario
        self._expect = ExpectationBuilder(scenario) if expectations else None
        trigger_names = {c.trigger.event_name for c in scenario.campaigns.values()}
        exit_names = {n for c in scenario.campaigns.values() for n in c.exit_on}
        self._exit_names = frozenset(exit_names)
        self._relevant = frozenset(trigger_names | exit_names)
        """Names whose deliveries attribution looks up (campaign triggers and exits)."""
        self._rule_names = self._expect.names if self._expect is not None else frozenset()
        """Names the campaign rules read (triggers, exits, behaviour history)."""
        self._conformance = TrackingPlanConformance(scenario.tracking_plan)
        self.shoppers: dict[int, ShopperTruth] = {}
        self.person_shopper: dict[str, int] = {}
        self.truth_ms: dict[str, int] = {}
        self.exit_events: dict[str, TruthEvent] = {}
        self.exits: dict[int, list[TruthEvent]] = {}
        self.deliveries: dict[str, DeliveryInfo | list[DeliveryInfo]] = {}
        self.copies: dict[str, str] = {}
        self.anonymous = AnonymousEvents()
        self.identifies: dict[str, DeliveryInfo] = {}
        self.identify_infos: dict[int, list[DeliveryInfo]] = {}
        self.identified_shoppers: set[int] = set()
        self.identify_ids: set[str] = set()
        self._identifying: set[int] = set()
        """Shoppers with a user id in truth: only their anonymous events can merge (see
        :class:`AnonymousEvents`); a shopper's life is added before their deliveries."""
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
        kinds = list(map(_KIND, events))
        names = set(compress(map(_NAME, events), map(is_, kinds, repeat(_TRACK))))
        has_track = bool(names)
        if _IDENTIFY in kinds:
            names.add("identified")
        exit_names = self._exit_names
        if not exit_names.isdisjoint(names):
            # Only a shopper with an exit event can be sent a message after exiting, so only
            # such a shopper's trigger times are kept (fewer than half the shoppers of a
            # cart-recovery run).
            relevant = self._relevant.intersection(names)
            tracked = [
                event
                for event in compress(events, map(relevant.__contains__, map(_NAME, events)))
                if event.type is _TRACK
            ]
            # Times only, indexed in C: no record per product view.
            self.truth_ms.update(zip(map(_ID, tracked), map(_TIMESTAMP, tracked), strict=True))
            for event in tracked:
                if event.name in exit_names:
                    truth_event = TruthEvent(event.id, shopper, event.name, event.timestamp_ms)
                    self.exit_events[event.id] = truth_event
                    self.exits.setdefault(shopper, []).append(truth_event)
        if has_track and self._expect is not None:
            self._expect.add_life(life)
        self.person_shopper[life.person.user_id] = shopper
        if user_id:
            self.person_shopper[user_id] = shopper
            self._identifying.add(shopper)
        self.shoppers[shopper] = ShopperTruth(
            shopper, user_id, identified_ms, life.person.anonymous_ids, life.start_ms
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
            info = _new_info(
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
                self._record(truth_id, info)
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
        size = len(seen)
        seen.add(event_id)
        if len(seen) == size:
            self.counts["duplicates"] += 1
            return
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
        elif info is not None and event.anonymous_id and event.shopper in self._identifying:
            self.anonymous.append(info)
        self._conformance.check(event, faults)

    def _record(self, truth_id: str, info: DeliveryInfo) -> None:
        """Append ``info`` to a truth id's deliveries."""
        found = self.deliveries.setdefault(truth_id, info)
        if found is not info:
            self._record_more(truth_id, found, info)

    def _record_more(
        self, truth_id: str, found: DeliveryInfo | list[DeliveryInfo], info: DeliveryInfo
    ) -> None:
        """Append ``info`` to a truth id that has deliveries already (``found``)."""
        if isinstance(found, list):
            found.append(info)
        else:
            self.deliveries[truth_id] = [found, info]

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
        """Pass deliveries through, recording them in chunks of :data:`CHUNK` (for the sender to
        consume downstream); the last chunk is recorded when ``plan`` ends."""
        chunk: list[Delivery] = []
        for delivery in plan:
            chunk.append(delivery)
            if len(chunk) >= CHUNK:
                self.add_deliveries(chunk)
                chunk = []
            yield delivery
        self.add_deliveries(chunk)

    def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Record planned deliveries in arrival order — the same as :meth:`add_delivery` for each,
        in a fraction of the time.

        Most deliveries of a big run are *plain*: no fault tag, their own truth id, not an
        identify. Those are deduplicated, fed to the campaign rules (names the rules read) and
        indexed for attribution (campaign trigger and exit names) one by one, in arrival order,
        as :meth:`add_delivery` does; their aggregates — arrival hours, latencies, known people,
        merge-completeness records of anonymous events, tracking-plan conformance — are
        taken a chunk at a time with C-level passes (map, zip, set and array operations). Every
        other delivery takes the full :meth:`add_delivery` path in its turn. Known people reach
        the rules at the end of the chunk: only a later merge reads them.
        """
        for start in range(0, len(deliveries), CHUNK):
            self._add_chunk(deliveries[start : start + CHUNK])

    def _add_chunk(self, chunk: Sequence[Delivery]) -> None:
        seen = self._seen
        deliveries = self.deliveries
        relevant = self._relevant
        rule_names = self._rule_names
        expect = self._expect
        plain: list[Delivery] = []
        duplicates = 0
        for delivery in chunk:
            event = delivery.event
            if (
                delivery.faults
                or delivery.dropped
                or delivery.oversize
                or event.type is _IDENTIFY
                or event.id != delivery.truth_id
            ):
                self.add_delivery(delivery)
                continue
            event_id = event.id
            size = len(seen)
            seen.add(event_id)  # one probe of a set of every id, not two (``in`` then ``add``)
            if len(seen) == size:
                duplicates += 1
                continue
            plain.append(delivery)
            if expect is not None and event.name in rule_names:
                # The campaign rules run in arrival order, delivery by delivery.
                expect.arrive(event, delivery.arrival_ms)
            if event.name in relevant:
                # Attribution reads a truth id's deliveries in arrival order: recorded one by one.
                info = _new_info(
                    (
                        event_id,
                        event_id,
                        event.shopper,
                        event.name,
                        event.type,
                        event.timestamp_ms,
                        delivery.arrival_ms,
                        (),
                        False,
                        False,
                        event.user_id,
                        event.anonymous_id,
                    )
                )
                found = deliveries.setdefault(event_id, info)
                if found is not info:
                    self._record_more(event_id, found, info)
        self._planned += len(plain) + duplicates  # add_delivery counted the others
        self.counts["duplicates"] += duplicates
        if plain:
            self._add_plain(plain)

    def _add_plain(self, plain: list[Delivery]) -> None:
        """The records of plain deliveries (first of their id, no faults, their own truth id, not
        an identify), taken with C-level passes over the chunk."""
        events = list(map(_EVENT, plain))
        arrivals = list(map(_ARRIVAL, plain))
        self._arrivals.extend(arrivals)
        self.latency_ms.extend(map(sub, arrivals, map(_TIMESTAMP, events)))
        last = max(arrivals)
        if last > self._last_arrival:
            self._last_arrival = last
        known = list(filter(_USER_ID, events))
        if known:
            self.identified_shoppers.update(map(_SHOPPER, known))
            if self._expect is not None:
                self._expect.know(map(_USER_ID, known))
        # Merge completeness keeps the anonymous events that could merge.
        identifying = self._identifying
        kept = [
            delivery
            for delivery, event in zip(plain, events, strict=True)
            if not event.user_id and event.anonymous_id and event.shopper in identifying
        ]
        if kept:
            self.anonymous.extend_plain(list(map(_EVENT, kept)), map(_ARRIVAL, kept))
        self._conformance.check_plain(events)

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
            truth_ms=self.truth_ms,
            exit_events=self.exit_events,
            exits=self.exits,
            deliveries=self.deliveries,
            copies=self.copies,
            anonymous=self.anonymous,
            identifies=self.identifies,
            identify_infos=self.identify_infos,
            identified_shoppers=self.identified_shoppers,
            identify_ids=self.identify_ids,
            violations=self._conformance.violations,
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


def _hourly(stamps: array[int]) -> dict[int, int]:
    """Counts per epoch hour of epoch-ms stamps (numpy: one pass over millions of events)."""
    if not stamps:
        return {}
    hours, counts = np.unique(np.frombuffer(stamps, dtype=np.int64) // HOUR_MS, return_counts=True)
    return dict(zip(hours.tolist(), counts.tolist(), strict=True))
