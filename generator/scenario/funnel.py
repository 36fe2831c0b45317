"""The analytic funnel: how likely an arriving shopper is to emit each event, computed exactly.

Each journey is an absorbing Markov chain over its states, with "leave" as the absorbing
state (the remainder ``1 − Σp`` of every state's ``next``). For an event ``e`` and a state
``s``, the chance that one visit to ``s`` emits ``e`` at least once is

    h_s = 1 − E[ r_s ** n ],   r_s = Π over the state's calls of e of (1 − p_call · p_point)

where ``n ~ uniform{repeat.min .. repeat.max}`` is the number of times the state's calls are
emitted in that visit (1 without ``repeat``), ``p_call`` is the call's own ``p`` and
``p_point`` is the identify point's probability for ``identify`` calls (1 for ``track``).
The probability of ever emitting ``e`` from state ``s`` satisfies

    x_s = h_s + (1 − h_s) · Σ_t P[s, t] · x_t

a linear system solved with numpy on the states that can reach a state with ``h > 0``
(elsewhere ``x = 0``); restricted that way, ``I − diag(1 − h)·P`` is non-singular even when
the journey has loops.

Journeys are mixed by weight within audiences: ``returning_share`` of shoppers are
returning customers and take only ``returning``/``any`` journeys; the others take only
``new``/``any`` journeys.

The simulator also stops a walk after ``journey.max_steps`` states (a safety bound); the
numbers here ignore that bound, so they are exact for the unbounded chain and an upper
bound for the simulated one (the difference is negligible unless a journey routinely
loops close to ``max_steps`` times). Expected states visited are infinite for a journey in
which a shopper can reach a loop that never leaves (the loader rejects such journeys).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from generator.scenario.model import CallKind, Journey, Scenario, State

IDENTIFY = "identify"
"""The key of the identify probability in :attr:`Funnel.reach`."""

_Vector = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class JourneyFunnel:
    """The funnel of one journey, for a shopper who takes it."""

    name: str
    share: float
    """Share of all arriving shoppers who take this journey."""
    reach: Mapping[str, float]
    """Event name (and ``"identify"``) → probability of emitting it at least once."""
    expected_states: float
    """Expected number of states visited (``inf`` if the walk may never leave)."""
    expected_calls: Mapping[str, float]
    """Call kind (``page``, ``track``, ``screen``, ``identify``) → expected calls per shopper."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Funnel:
    """The analytic funnel of a scenario, over all arriving shoppers."""

    reach: Mapping[str, float]
    """Tracked events some journey emits, in tracking-plan order, then ``"identify"`` →
    probability that an arriving shopper emits it at least once."""
    journeys: tuple[JourneyFunnel, ...]
    expected_states: float
    """Expected states visited per shopper."""
    expected_calls: Mapping[str, float]
    """Call kind → expected calls per shopper. ``identify`` counts a shopper's first identify
    only (identify points identify a still-anonymous shopper), i.e. its probability."""

    @property
    def expected_events(self) -> float:
        """Expected calls of all kinds per shopper."""
        return sum(self.expected_calls.values())


def analytic_funnel(scenario: Scenario) -> Funnel:
    """The exact funnel of ``scenario`` from its transition probabilities (see the module docstring)."""
    points = scenario.identity.points
    plan_order = list(scenario.tracking_plan.all_events)
    emitted = {
        call.track
        for journey in scenario.journeys.values()
        for state in journey.states.values()
        for call in state.emit
        if call.track is not None
    }
    events = [e for e in plan_order if e in emitted] + sorted(emitted - set(plan_order)) + [IDENTIFY]
    shares = journey_shares(scenario)
    per_journey = tuple(
        _journey_funnel(name, journey, shares.get(name, 0.0), events, points)
        for name, journey in scenario.journeys.items()
    )
    reach = {e: sum(j.share * j.reach[e] for j in per_journey) for e in events}
    kinds = [k.value for k in CallKind]
    expected_calls = {k: _mix(per_journey, lambda j, k=k: j.expected_calls[k]) for k in kinds}  # type: ignore[misc]
    return Funnel(
        reach=reach,
        journeys=per_journey,
        expected_states=_mix(per_journey, lambda j: j.expected_states),
        expected_calls=expected_calls,
    )


def _mix(journeys: tuple[JourneyFunnel, ...], value: Callable[[JourneyFunnel], float]) -> float:
    # Journeys nobody takes are skipped, so an endless journey with share 0 does not give inf·0.
    return sum(j.share * value(j) for j in journeys if j.share > 0)


def journey_shares(scenario: Scenario) -> dict[str, float]:
    """Journey name → share of arriving shoppers who take it (weights within audiences).

    An audience with no journey of positive weight (the loader rejects that) gives its
    shoppers to the other audience, so the shares always sum to 1.
    """
    returning = scenario.population.returning_share
    groups = {"new": 1.0 - returning, "returning": returning}
    shares = dict.fromkeys(scenario.journeys, 0.0)
    for audience, mass in groups.items():
        members = {
            n: j.weight
            for n, j in scenario.journeys.items()
            if j.audience in (audience, "any") and j.weight > 0
        }
        total = sum(members.values())
        if total > 0:
            for name, weight in members.items():
                shares[name] += mass * weight / total
    covered = sum(shares.values())
    if covered > 0:
        shares = {n: s / covered for n, s in shares.items()}
    return shares


def _journey_funnel(
    name: str, journey: Journey, share: float, events: list[str], points: Mapping[str, float]
) -> JourneyFunnel:
    names = list(journey.states)
    index = {s: i for i, s in enumerate(names)}
    size = len(names)
    transitions = np.zeros((size, size))
    for s, state in journey.states.items():
        for target, transition in state.next.items():
            if target in index:  # unknown targets are loader errors; ignore them here
                transitions[index[s], index[target]] += transition.p
    start = index.get(journey.start)
    reach: dict[str, float] = {}
    for event in events:
        hits = np.array([_visit_hit(state, event, points) for state in journey.states.values()])
        reach[event] = 0.0 if start is None else _ever(transitions, hits, start)
    visits = _expected_visits(transitions, start)
    calls = dict.fromkeys((k.value for k in CallKind), 0.0)
    for s, state in journey.states.items():
        mean_n = _mean_repeat(state)
        for call in state.emit:
            if call.kind is not CallKind.IDENTIFY:
                calls[call.kind.value] += float(visits[index[s]]) * mean_n * call.p
    calls[CallKind.IDENTIFY.value] = reach[IDENTIFY]
    expected_states = float(visits.sum()) if start is not None else 0.0
    return JourneyFunnel(
        name=name, share=share, reach=reach, expected_states=expected_states, expected_calls=calls
    )


def _repeats(state: State) -> range:
    if state.repeat is None:
        return range(1, 2)
    return range(state.repeat.min, state.repeat.max + 1)


def _mean_repeat(state: State) -> float:
    counts = _repeats(state)
    return (counts[0] + counts[-1]) / 2


def _visit_hit(state: State, event: str, points: Mapping[str, float]) -> float:
    """Probability that one visit to ``state`` emits ``event`` (or an identify) at least once."""
    miss = 1.0  # per repetition, the chance that no call of this event fires
    for call in state.emit:
        if event == IDENTIFY and call.identify is not None:
            miss *= 1.0 - call.p * points.get(call.identify, 0.0)
        elif call.track is not None and call.track == event:
            miss *= 1.0 - call.p
    counts = _repeats(state)
    return 1.0 - sum(miss**n for n in counts) / len(counts)


def _can_reach(transitions: _Vector, targets: set[int]) -> set[int]:
    """States with a path of positive probability to one of ``targets`` (targets included)."""
    seen = set(targets)
    todo = list(targets)
    while todo:
        t = todo.pop()
        for s in np.nonzero(transitions[:, t] > 0)[0]:
            if int(s) not in seen:
                seen.add(int(s))
                todo.append(int(s))
    return seen


def _ever(transitions: _Vector, hits: _Vector, start: int) -> float:
    """P(some visit emits the event | walk starts at ``start``) of the absorbing chain."""
    live = sorted(_can_reach(transitions, {int(i) for i in np.nonzero(hits > 0)[0]}))
    if start not in live:
        return 0.0
    sub = transitions[np.ix_(live, live)]
    h = hits[live]
    # x = h + (1 − h)·P·x  ⇔  (I − diag(1 − h)·P)·x = h; non-singular on `live` (module docstring).
    system = np.eye(len(live)) - (1.0 - h)[:, None] * sub
    x = np.linalg.solve(system, h)
    return float(min(1.0, max(0.0, x[live.index(start)])))


def _expected_visits(transitions: _Vector, start: int | None) -> _Vector:
    """Expected visits to each state starting at ``start`` (``inf`` where the walk may never end)."""
    size = transitions.shape[0]
    visits = np.zeros(size)
    if start is None:
        return visits
    leaving = {i for i in range(size) if transitions[i].sum() < 1.0 - 1e-12}
    can_leave = _can_reach(transitions, leaving)
    reachable = _reachable(transitions, start)
    if not reachable <= can_leave:
        visits[sorted(reachable)] = math.inf
        return visits
    live = sorted(reachable)
    sub = transitions[np.ix_(live, live)]
    # Row vector of the fundamental matrix N = (I − Q)^-1 for the start state: v = e_start·N.
    e_start = np.zeros(len(live))
    e_start[live.index(start)] = 1.0
    solved = np.linalg.solve((np.eye(len(live)) - sub).T, e_start)
    visits[live] = solved
    return visits


def _reachable(transitions: _Vector, start: int) -> set[int]:
    seen = {start}
    todo = [start]
    while todo:
        s = todo.pop()
        for t in np.nonzero(transitions[s] > 0)[0]:
            if int(t) not in seen:
                seen.add(int(t))
                todo.append(int(t))
    return seen


# --------------------------------------------------------------------------- arrivals

_HOUR_MS = 3_600_000


def _rate_at(scenario: Scenario, hour_start_ms: int) -> float:
    """Arrivals per hour in the UTC hour starting at ``hour_start_ms`` (diurnal × weekend)."""
    arrivals = scenario.population.arrivals
    hour_of_day = (hour_start_ms // _HOUR_MS) % 24
    weekday = (hour_start_ms // (24 * _HOUR_MS) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    weekend = arrivals.weekend_factor if weekday >= 5 else 1.0
    return arrivals.rate_per_hour * arrivals.hourly[hour_of_day] * weekend


def expected_arrivals(scenario: Scenario, duration_ms: int) -> float:
    """Expected shoppers arriving in ``duration_ms`` after ``start`` (the Poisson intensity, integrated)."""
    total = 0.0
    t = scenario.start_ms
    end = t + duration_ms
    while t < end:
        boundary = min(end, (t // _HOUR_MS + 1) * _HOUR_MS)
        total += _rate_at(scenario, t - t % _HOUR_MS) * (boundary - t) / _HOUR_MS
        t = boundary
    return total


def expected_time_to(
    scenario: Scenario, shoppers: int, *, limit_ms: int = 10 * 365 * 86_400_000
) -> int | None:
    """Milliseconds after ``start`` by which ``shoppers`` are expected to have arrived.

    ``None`` when that takes longer than ``limit_ms``.
    """
    total = 0.0
    t = scenario.start_ms
    while t - scenario.start_ms < limit_ms:
        boundary = (t // _HOUR_MS + 1) * _HOUR_MS
        rate = _rate_at(scenario, t - t % _HOUR_MS)
        gained = rate * (boundary - t) / _HOUR_MS
        if total + gained >= shoppers:
            return t + round((shoppers - total) / rate * _HOUR_MS) - scenario.start_ms
        total += gained
        t = boundary
    return None
