"""Campaign rules over a stream → Expectation records (DESIGN.md, "Two expectation sets").

:func:`expectations` is a pure function of the scenario's ``campaigns:`` and a stream. It never
looks at the system under test; the emulator implements the same rules independently and the
golden cases in ``tests/golden/campaign_cases/`` pin the two together.

Two bases:

``truth`` — the marketer's ideal, over truth :class:`~generator.events.Event` s in event time
    (grouped by shopper, as :func:`generator.simulate.simulate` yields them). Every shopper's
    events count the moment they happen, whatever device or identity they were sent under. An
    entry happens at the trigger's timestamp; the message is due ``delay`` later; an ``exit_on``
    event stamped after the trigger and before the send suppresses it (``purchased`` for a
    purchase, else ``exited``). A shopper not identified by the send time cannot be messaged
    (``unaddressable``); such non-entries do not count towards ``frequency``.

``delivered`` — what a correct platform must do with what it received, over
    :class:`~generator.events.Delivery` records in arrival order, with the platform rules of
    reference/customerio.md §6–8: dropped and oversize deliveries never arrive; a repeated event
    id is ignored; only identified people enter (an anonymous event is associated on an identify
    carrying its anonymous id, or when it arrives up to 5 minutes after that identify); an event
    triggers only if associated within 72 h of its timestamp (``stale``); ``frequency`` limits
    entries; an ``exit_on`` event processed after the entry and before the send exits; the
    send is due ``delay`` after the entry (= association time) and goes out only to a person with
    an email who is not unsubscribed (else ``no_email`` / ``unsubscribed``: the platform drops it).
    Merged anonymous events are processed at the identify's arrival, oldest timestamp first; an
    anonymous id stays with the first person who merged it; ``merge_customers`` (golden cases
    only: :meth:`DeliveredEngine.merge`) moves history and open entries, never triggering.
    Renamed events do not trigger and retyped properties fail typed filters, simply because the
    rules see the delivered event.

In both bases only track events trigger, exit or count towards behaviour triggers (page and
screen views never do), and a due send fires before anything processed at the same instant.

Every (campaign, trigger event) that passes the name and property filters yields exactly one
expectation: SEND with ``send_ms``, or NO_SEND with ``reason`` in ``purchased``, ``exited``,
``unaddressable`` (truth: not identified by the send time), ``anonymous`` (delivered: never
associated with a person), ``stale`` (delivered: older than 72 h at association),
``frequency``, ``no_email`` or ``unsubscribed`` (delivered). ``trigger_ms`` is the entry time:
the event time (truth) or the association time (delivered). Expectations are yielded as they
become final, not in any global order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter
from typing import Any, Literal

from generator.events import CallType, Delivery, Event, Expectation, Outcome, ShopperLife
from generator.scenario.model import Campaign, Scenario

Basis = Literal["truth", "delivered"]

STALE_MS = 72 * 3_600_000
"""An event triggers campaigns only if associated within 72 h of its timestamp (customerio.md §8.1)."""

MERGE_WINDOW_MS = 5 * 60_000
"""Anonymous events arriving up to 5 minutes after the identify still merge (customerio.md §6)."""

ANON_RETENTION_MS = 30 * 86_400_000
"""Anonymous events are kept 30 days of event time; older ones never merge (customerio.md §6)."""

PURCHASE_EVENTS = frozenset({"Order Completed", "Checkout Completed", "Order Placed", "Purchase"})
"""Exit events reported as ``purchased`` rather than the generic ``exited``."""


def expectations(
    scenario: Scenario, stream: Iterable[Event] | Iterable[Delivery], *, basis: Basis
) -> Iterator[Expectation]:
    """Apply the scenario's campaign rules to ``stream`` and yield one expectation per trigger.

    ``basis="truth"`` takes truth Events grouped by shopper (each shopper's events in time
    order); ``basis="delivered"`` takes Deliveries in arrival order. See the module docstring.
    """
    if basis == "truth":
        yield from _drive_truth(TruthEngine(scenario), stream)
        return
    if basis == "delivered":
        delivered = DeliveredEngine(scenario)
        for item in stream:
            if not isinstance(item, Delivery):
                raise TypeError(f"basis='delivered' takes Delivery records, got {type(item).__name__}")
            produced = delivered.feed(item)
            if produced:
                yield from produced
        yield from delivered.finish()
        return
    raise ValueError(f"basis must be 'truth' or 'delivered', got {basis!r}")


def _drive_truth(engine: TruthEngine, stream: Iterable[Event] | Iterable[Delivery]) -> Iterator[Expectation]:
    current: list[Event] = []
    done: set[int] = set()
    for event in stream:
        if not isinstance(event, Event):
            raise TypeError(f"basis='truth' takes Event records, got {type(event).__name__}")
        if current and event.shopper != current[0].shopper:
            done.add(current[0].shopper)
            yield from engine.shopper(current)
            current = []
        if event.shopper in done:
            raise ValueError(
                f"the truth stream must be grouped by shopper; shopper {event.shopper} reappeared"
            )
        current.append(event)
    if current:
        yield from engine.shopper(current)


class ExpectationBuilder:
    """Both expectation sets, fed while a run streams (what ``shopsim run`` uses).

    :meth:`add_life` takes each simulated shopper (truth basis, event time);
    :meth:`add_delivery` each planned delivery in arrival order (delivered basis), or
    :meth:`arrive` when the caller already leaves out dropped, oversize and repeated-id
    deliveries (the checker's evidence builder does, once for everything it records).
    :meth:`finish` returns ``(truth, delivered)``. A scenario without campaigns costs nothing.
    """

    def __init__(self, scenario: Scenario) -> None:
        self._campaigns = bool(scenario.campaigns)
        self._truth_engine = TruthEngine(scenario)
        self._delivered_engine = DeliveredEngine(scenario)
        self.truth: list[Expectation] = []
        self.delivered: list[Expectation] = []
        self.names = self._delivered_engine.names
        """Event names the rules read (triggers, exits, behaviour history): a delivered call of
        any other name only makes its person known (:meth:`know`)."""

    def add_life(self, life: ShopperLife) -> None:
        """The truth expectations of one shopper."""
        if self._campaigns:
            self.truth.extend(self._truth_engine.shopper(life.events, presorted=True))

    def add_delivery(self, delivery: Delivery) -> None:
        """One planned delivery (dropped, oversize and repeated ids are left out here)."""
        if self._campaigns:
            produced = self._delivered_engine.feed(delivery)
            if produced:
                self.delivered.extend(produced)

    def arrive(self, event: Event, arrival_ms: int) -> None:
        """One delivered event, already deduplicated by the caller (see :meth:`DeliveredEngine.arrive`)."""
        if self._campaigns:
            produced = self._delivered_engine.arrive(event, arrival_ms)
            if produced:
                self.delivered.extend(produced)

    def know(self, user_ids: Iterable[str]) -> None:
        """People who sent calls that no campaign reads (see :meth:`DeliveredEngine.know`)."""
        if self._campaigns:
            self._delivered_engine.know(user_ids)

    def finish(self) -> tuple[list[Expectation], list[Expectation]]:
        """``(truth, delivered)``, after closing the delivered basis (due sends, unassociated triggers)."""
        if self._campaigns:
            self.delivered.extend(self._delivered_engine.finish())
        return self.truth, self.delivered


# --------------------------------------------------------------------------- shared rules


@dataclass(frozen=True, slots=True)
class _Rules:
    """The campaigns indexed for the hot path: who triggers on / exits on which event name."""

    by_trigger: Mapping[str, tuple[tuple[str, Campaign], ...]]
    by_exit: Mapping[str, tuple[str, ...]]
    history_names: frozenset[str]

    @classmethod
    def of(cls, scenario: Scenario) -> _Rules:
        by_trigger: dict[str, list[tuple[str, Campaign]]] = {}
        by_exit: dict[str, list[str]] = {}
        history: set[str] = set()
        for name, campaign in scenario.campaigns.items():
            by_trigger.setdefault(campaign.trigger.event_name, []).append((name, campaign))
            for exit_name in dict.fromkeys(campaign.exit_on):
                by_exit.setdefault(exit_name, []).append(name)
            behavior = campaign.trigger.behavior
            if behavior is not None:
                history.add(behavior.event)
                history.update(behavior.and_not)
        return cls(
            by_trigger={k: tuple(v) for k, v in by_trigger.items()},
            by_exit={k: tuple(v) for k, v in by_exit.items()},
            history_names=frozenset(history),
        )

    @property
    def names(self) -> frozenset[str]:
        """Every event name a campaign reads (trigger, exit or behaviour history)."""
        return frozenset(self.by_trigger) | frozenset(self.by_exit) | self.history_names


def trigger_matches(campaign: Campaign, event: Event, history: Mapping[str, list[int]]) -> bool:
    """Whether ``event`` (already known to carry the trigger's event name) passes the trigger.

    ``history`` maps event names to the timestamps (ms) of the person's events processed so
    far, this event included; behaviour triggers count in it by timestamp.
    """
    trigger = campaign.trigger
    props = event.properties
    for condition in trigger.where:
        if not condition.matches(props):
            return False
    behavior = trigger.behavior
    if behavior is None:
        return True
    # Plain loops, not generator expressions: this runs for every candidate trigger event.
    ts = event.timestamp_ms
    lo = ts - behavior.within
    count = 0
    for t in history.get(behavior.event, ()):
        if lo <= t <= ts:
            count += 1
    if count < behavior.at_least:
        return False
    lo_not = ts - behavior.exclusion_window
    for name in behavior.and_not:
        for t in history.get(name, ()):
            if lo_not <= t <= ts:
                return False
    return True


def filters_match(campaign: Campaign, event: Event) -> bool:
    """Whether the trigger's ``where`` filters pass on the event's properties (no behaviour part)."""
    return all(condition.matches(event.properties) for condition in campaign.trigger.where)


def exit_reason(exit_name: str) -> str:
    """``purchased`` for purchase events, ``exited`` otherwise."""
    return "purchased" if exit_name in PURCHASE_EVENTS else "exited"


def _allowed(campaign: Campaign, entries: list[int], now: int) -> bool:
    """Whether ``frequency`` lets a person with these earlier entry times enter at ``now``."""
    if not entries:
        return True
    gap = campaign.reentry_ms
    if gap is None:
        return False
    return now - entries[-1] >= gap


# --------------------------------------------------------------------------- truth


class TruthEngine:
    """Campaign rules over one shopper's truth events at a time (event time, shopper-level identity)."""

    def __init__(self, scenario: Scenario) -> None:
        self._rules = _Rules.of(scenario)
        self._campaigns = scenario.campaigns
        self._relevant = self._rules.names

    def shopper(self, events: Sequence[Event], *, presorted: bool = False) -> Iterator[Expectation]:
        """Expectations for one shopper's events (sorted here by time, then seq, unless ``presorted``:
        a :class:`ShopperLife`'s events already are)."""
        rules = self._rules
        ordered = events if presorted else sorted(events, key=lambda e: (e.timestamp_ms, e.seq))
        first_known = next(filter(_USER_ID, ordered), None)
        identified_ms = first_known.timestamp_ms if first_known is not None else None
        user_id = (first_known.user_id or "") if first_known is not None else ""
        history: dict[str, list[int]] = {}
        entries: dict[str, list[int]] = {}
        # Open entries per campaign: [trigger event, send_ms]; an exit closes them.
        active: dict[str, list[tuple[Event, int]]] = {}
        history_names = rules.history_names
        exits_of = rules.by_exit.get
        triggers_of = rules.by_trigger.get
        # Only events whose name a campaign reads matter, and only track events trigger, exit
        # or count for behaviour (pages, screens: no); the name filter runs in C (compress/map).
        for event in compress(ordered, map(self._relevant.__contains__, map(_NAME, ordered))):
            if event.type is not _TRACK:
                continue
            name = event.name
            ts = event.timestamp_ms
            if name in history_names:
                history.setdefault(name, []).append(ts)
            for campaign_name in exits_of(name, ()):
                if not active.get(campaign_name):
                    # Keep the key (its position orders the final SEND expectations).
                    active[campaign_name] = []
                    continue
                still = []
                for trig, send_ms in active.get(campaign_name, ()):
                    if ts < send_ms:
                        yield _exp(
                            "truth",
                            campaign_name,
                            user_id,
                            trig,
                            ts_entry=trig.timestamp_ms,
                            outcome=Outcome.NO_SEND,
                            reason=exit_reason(name),
                            exit_event_id=event.id,
                        )
                    else:
                        still.append((trig, send_ms))
                active[campaign_name] = still
            for campaign_name, campaign in triggers_of(name, ()):
                if not trigger_matches(campaign, event, history):
                    continue
                send_ms = ts + campaign.delay
                if identified_ms is None or identified_ms > send_ms:
                    person = user_id or (event.anonymous_id or "")
                    yield _exp(
                        "truth",
                        campaign_name,
                        person,
                        event,
                        ts_entry=ts,
                        outcome=Outcome.NO_SEND,
                        reason="unaddressable",
                    )
                    continue
                previous = entries.setdefault(campaign_name, [])
                if not _allowed(campaign, previous, ts):
                    yield _exp(
                        "truth",
                        campaign_name,
                        user_id,
                        event,
                        ts_entry=ts,
                        outcome=Outcome.NO_SEND,
                        reason="frequency",
                    )
                    continue
                previous.append(ts)
                active.setdefault(campaign_name, []).append((event, send_ms))
        for campaign_name, open_entries in active.items():
            for trig, send_ms in open_entries:
                yield _exp(
                    "truth",
                    campaign_name,
                    user_id,
                    trig,
                    ts_entry=trig.timestamp_ms,
                    outcome=Outcome.SEND,
                    send_ms=send_ms,
                )


def _exp(
    basis: str,
    campaign: str,
    person: str,
    trigger: Event,
    *,
    ts_entry: int,
    outcome: Outcome,
    send_ms: int | None = None,
    reason: str = "",
    exit_event_id: str | None = None,
) -> Expectation:
    # Field order of Expectation; tuple.__new__ skips the keyword-parsing __new__ (hot path).
    return _new_tuple(
        Expectation,
        (
            basis,
            campaign,
            person,
            trigger.shopper,
            outcome,
            trigger.id,
            ts_entry,
            send_ms,
            reason,
            exit_event_id,
        ),
    )


# --------------------------------------------------------------------------- delivered


@dataclass(slots=True)
class _Entry:
    campaign: str
    person: str
    trigger: Event
    entry_ms: int
    send_ms: int
    closed: bool = False


@dataclass(slots=True)
class _Person:
    history: dict[str, list[int]] = field(default_factory=dict)
    entries: dict[str, list[int]] = field(default_factory=dict)
    active: dict[str, list[_Entry]] = field(default_factory=dict)
    email: str | None = None
    unsubscribed: bool = False


def _truthy_flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return False


class DeliveredEngine:
    """The platform rules as an online state machine over deliveries in arrival order.

    Feed deliveries with :meth:`feed` (which yields what became final), then call
    :meth:`finish`. State is per person and per pending anonymous id, so memory grows with
    people, not with events. Beyond the campaign rules, a due message goes out only to a person
    with an email who is not unsubscribed (from identify traits), else NO_SEND ``no_email`` /
    ``unsubscribed`` — the platform drops it.
    """

    def __init__(self, scenario: Scenario) -> None:
        self._rules = _Rules.of(scenario)
        self._seen: set[str] = set()
        self._people: dict[str, _Person] = {}
        # anonymous id → (person, arrival of the identify that claimed it)
        self._owner: dict[str, tuple[str, int]] = {}
        # anonymous id → (arrival order, event) stored while nobody owned it (relevant names only)
        self._pending: dict[str, list[tuple[int, Event]]] = {}
        self._due: list[tuple[int, int, _Entry]] = []
        self.names = self._rules.names
        """Event names the rules read (triggers, exits, behaviour history)."""
        self._tick = 0
        self._order = 0
        self._now = 0
        self._out: list[Expectation] = []

    def feed(self, delivery: Delivery) -> list[Expectation]:
        """Process one delivery at its arrival time; return the expectations that became final.

        Dropped and oversize deliveries never arrive, and a repeated event id is ignored; every
        other delivery goes to :meth:`arrive`.
        """
        if delivery.dropped or delivery.oversize:
            return _NONE
        event_id = delivery.event.id
        seen = self._seen
        if event_id in seen:
            return _NONE
        seen.add(event_id)
        return self.arrive(delivery.event, delivery.arrival_ms)

    def arrive(self, event: Event, arrival_ms: int) -> list[Expectation]:
        """Process an event that reached the platform at ``arrival_ms`` (the caller has already
        left out dropped, oversize and repeated-id deliveries, as :meth:`feed` does); return the
        expectations that became final.

        This runs once per delivered event, so it returns a list (usually the shared empty one)
        rather than a generator, and an event whose name no campaign reads costs a few lookups.
        """
        now = arrival_ms
        if now < self._now:
            # Arrival order is the contract; a straggler is processed at the platform's clock,
            # which never goes backwards (like the emulator's virtual clock).
            now = self._now
        self._now = now
        out = self._out
        due = self._due
        if due and due[0][0] <= now:
            self._fire_due(now)
        kind = event.type
        if kind is _IDENTIFY:
            if event.user_id:
                self._identify(event, now)
        elif kind is _TRACK and event.name in self.names:
            user_id = event.user_id
            if user_id:
                self._associate(user_id, event, now)
            else:
                anon = event.anonymous_id
                if anon:
                    owner = self._owner.get(anon)
                    if owner is not None and now - owner[1] <= MERGE_WINDOW_MS:
                        self._associate(owner[0], event, now)
                    else:
                        self._order += 1
                        self._pending.setdefault(anon, []).append((self._order, event))
        elif event.user_id and event.user_id not in self._people:
            # Any identified call creates the person (a merge needs both people to exist);
            # an event no campaign reads changes nothing else.
            self._people[event.user_id] = _Person()
        if not out:
            return _NONE
        self._out = []
        return out

    def know(self, user_ids: Iterable[str]) -> None:
        """Record people whose arrived calls no campaign reads, in place of :meth:`arrive` for
        each: such a call only makes its person known (which a later merge needs)."""
        people = self._people
        for user_id in set(user_ids).difference(people):
            people[user_id] = _Person()

    def merge(self, primary: str, secondary: str, arrival_ms: int) -> list[Expectation]:
        """``merge_customers`` at ``arrival_ms``: the secondary's history and open entries move to
        the primary (its events count for behaviour windows but never trigger or exit), its
        anonymous ids follow, and the secondary id is free again. Nothing happens unless both exist.
        """
        now = max(arrival_ms, self._now)
        self._now = now
        out = self._out
        self._out = []
        if self._due and self._due[0][0] <= now:
            self._out = out
            self._fire_due(now)
            self._out = []
        target = self._people.get(primary)
        source = self._people.get(secondary)
        if target is None or source is None or primary == secondary:
            return out
        for name, stamps in source.history.items():
            target.history.setdefault(name, []).extend(stamps)
        for campaign, entries in source.entries.items():
            merged = sorted([*target.entries.get(campaign, []), *entries])
            target.entries[campaign] = merged
        for campaign, active in source.active.items():
            for entry in active:
                entry.person = primary
            target.active.setdefault(campaign, []).extend(active)
        for anon, (owner, linked) in list(self._owner.items()):
            if owner == secondary:
                self._owner[anon] = (primary, linked)
        del self._people[secondary]
        return out

    def finish(self) -> Iterator[Expectation]:
        """Everything still open: due sends, and triggers that never reached a person."""
        out = self._out
        self._fire_due(None)
        self._out = []
        yield from out
        for anon, stored in self._pending.items():
            for _, event in stored:
                for campaign_name, campaign in self._rules.by_trigger.get(event.name, ()):
                    if filters_match(campaign, event):
                        yield _exp(
                            "delivered",
                            campaign_name,
                            anon,
                            event,
                            ts_entry=event.timestamp_ms,
                            outcome=Outcome.NO_SEND,
                            reason="anonymous",
                        )
        self._pending = {}

    # -- internals

    def _identify(self, event: Event, now: int) -> None:
        person_id = event.user_id
        assert person_id is not None
        person = self._people.get(person_id)
        if person is None:
            person = self._people[person_id] = _Person()
        traits = event.properties
        email = traits.get("email")
        if isinstance(email, str) and email:
            person.email = email
        if "unsubscribed" in traits:
            person.unsubscribed = _truthy_flag(traits.get("unsubscribed"))
        anon = event.anonymous_id
        if not anon:
            return
        owner = self._owner.get(anon)
        if owner is not None and owner[0] != person_id:
            return  # "an anonymous id is not reusable": it stays with the first person
        self._owner[anon] = (person_id, now)
        stored = self._pending.pop(anon, None)
        if not stored:
            return
        # Merged events are processed now, oldest timestamp first (as a workspace replays history).
        stored.sort(key=lambda item: (item[1].timestamp_ms, item[0]))
        for _, pending_event in stored:
            if now - pending_event.timestamp_ms > ANON_RETENTION_MS:
                continue
            self._associate(person_id, pending_event, now)

    def _fire_due(self, now: int | None) -> None:
        # The platform fires every send due at or before "now" before it processes a request.
        due = self._due
        out = self._out
        while due and (now is None or due[0][0] <= now):
            _, _, entry = heapq.heappop(due)
            if entry.closed:
                continue
            entry.closed = True
            person = self._people[entry.person]
            active = person.active.get(entry.campaign)
            if active is not None and entry in active:
                active.remove(entry)
            # The platform drops a due message for a person it cannot email, else sends it.
            reason = "no_email" if not person.email else "unsubscribed" if person.unsubscribed else ""
            out.append(
                _exp(
                    "delivered",
                    entry.campaign,
                    entry.person,
                    entry.trigger,
                    ts_entry=entry.entry_ms,
                    outcome=Outcome.NO_SEND if reason else Outcome.SEND,
                    send_ms=entry.send_ms,
                    reason=reason,
                )
            )

    def _associate(self, person_id: str, event: Event, now: int) -> None:
        # Only track events reach here: only they trigger, exit or count for behaviour.
        person = self._people.get(person_id)
        if person is None:
            person = self._people[person_id] = _Person()
        rules = self._rules
        name = event.name
        if name in rules.history_names:
            person.history.setdefault(name, []).append(event.timestamp_ms)
        out = self._out
        for campaign_name in rules.by_exit.get(name, ()):
            active = person.active.get(campaign_name)
            if not active:
                continue
            for entry in active:
                # Entries due at or before now were already sent by _fire_due.
                entry.closed = True
                out.append(
                    _exp(
                        "delivered",
                        campaign_name,
                        person_id,
                        entry.trigger,
                        ts_entry=entry.entry_ms,
                        outcome=Outcome.NO_SEND,
                        reason=exit_reason(name),
                        exit_event_id=event.id,
                    )
                )
            active.clear()
        for campaign_name, campaign in rules.by_trigger.get(name, ()):
            if not trigger_matches(campaign, event, person.history):
                continue
            if now - event.timestamp_ms > STALE_MS:
                out.append(
                    _exp(
                        "delivered",
                        campaign_name,
                        person_id,
                        event,
                        ts_entry=now,
                        outcome=Outcome.NO_SEND,
                        reason="stale",
                    )
                )
                continue
            previous = person.entries.setdefault(campaign_name, [])
            if not _allowed(campaign, previous, now):
                out.append(
                    _exp(
                        "delivered",
                        campaign_name,
                        person_id,
                        event,
                        ts_entry=now,
                        outcome=Outcome.NO_SEND,
                        reason="frequency",
                    )
                )
                continue
            previous.append(now)
            entry = _Entry(campaign_name, person_id, event, now, now + campaign.delay)
            person.active.setdefault(campaign_name, []).append(entry)
            self._tick += 1
            heapq.heappush(self._due, (entry.send_ms, self._tick, entry))
            if campaign.delay == 0:
                # A zero delay sends at once: nothing processed later can exit it.
                self._fire_due(now)


_NONE: list[Expectation] = []
"""Shared empty result of :meth:`DeliveredEngine.arrive` (never mutated: callers only read it)."""
_TRACK = CallType.TRACK
_IDENTIFY = CallType.IDENTIFY
_NAME = attrgetter("name")
_USER_ID = attrgetter("user_id")
_new_tuple = tuple.__new__
# Enum member lookups cost ~90 ns each on CPython 3.11; the hot paths use these module constants.


def campaign_horizon_ms(scenario: Scenario) -> int:
    """The longest campaign delay (ms): how far past the last arrival sends can still be due."""
    return max((c.delay for c in scenario.campaigns.values()), default=0)


def describe(expectation: Expectation) -> dict[str, Any]:
    """An expectation as a JSON-ready dict (the ``expectations.ndjson`` line)."""
    return {
        "basis": expectation.basis,
        "campaign": expectation.campaign,
        "person": expectation.person,
        "shopper": expectation.shopper,
        "outcome": expectation.outcome.value,
        "trigger_event_id": expectation.trigger_event_id,
        "trigger_ms": expectation.trigger_ms,
        "send_ms": expectation.send_ms,
        "reason": expectation.reason,
        "exit_event_id": expectation.exit_event_id,
    }
