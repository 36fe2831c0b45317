"""Observations indexed for the checks: sends, entries, exits, skips, ingested events and profiles.

Built once from any observation source. ``complete_events`` says whether every ingested event
is visible (the emulator export) — merge completeness and ingestion loss are measurable only
then; ``comparable_times`` says whether observed times are on the simulated timeline (virtual
clock) — send-time error and time-based suppression need it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

from generator.events import Observation, ObservationKind


class Journey(NamedTuple):
    """One observed campaign step for a person (entry, send, exit, drop or skip).

    A named tuple, not a frozen dataclass: one is built per export journey and skip record, and
    tuple construction is several times cheaper.
    """

    campaign: str
    person: str
    trigger_event_id: str
    at_ms: int
    reason: str = ""
    exit_event_id: str = ""


_new_journey = partial(tuple.__new__, Journey)
"""``_new_journey(fields)``: a Journey from a tuple of all its fields, without the Python-level
``__new__`` a named tuple's constructor runs."""


@dataclass(slots=True)
class Observed:
    """The target's side of the story, indexed by ids."""

    source: str
    complete_events: bool
    comparable_times: bool
    sends: list[Journey] = field(default_factory=list)
    entries: list[Journey] = field(default_factory=list)
    exits: list[Journey] = field(default_factory=list)
    drops: list[Journey] = field(default_factory=list)
    skips: list[Journey] = field(default_factory=list)
    events: dict[str, str] = field(default_factory=dict)
    """event id → person or "" of the first record of that id."""
    outcomes: dict[str, str] = field(default_factory=dict)
    """event id → dedupe/merge outcome of the first record of that id (no check reads it; empty
    when the reader left it out)."""
    profiles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """person → merged anonymous ids."""
    count: int = 0

    @property
    def has_entries(self) -> bool:
        return bool(self.entries) or self.source == "emulator"

    @classmethod
    def build(
        cls,
        observations: Iterable[Observation],
        *,
        source: str,
        complete_events: bool,
        comparable_times: bool,
        events: dict[str, str] | None = None,
        outcomes: dict[str, str] | None = None,
    ) -> Observed:
        """Index ``observations`` (consumed once); ``events`` and ``outcomes`` are an already-built
        event index (see :func:`generator.observe.emulator.split_export`) to extend."""
        out = cls(source=source, complete_events=complete_events, comparable_times=comparable_times)
        prebuilt = 0
        if events is not None:
            out.events = events
            out.outcomes = outcomes if outcomes is not None else {}
            prebuilt = len(events)
        events = out.events
        outcomes = out.outcomes
        sends, entries, exits, drops, skips = out.sends, out.entries, out.exits, out.drops, out.skips
        n = 0
        event_kind = ObservationKind.EVENT
        profile_kind = ObservationKind.PROFILE
        exit_kind = ObservationKind.EXIT
        # A journey step per export journey record or two (the most observations of a big run
        # after the events): the step's list found by kind, the record built C-level.
        steps = {
            ObservationKind.SEND: sends.append,
            ObservationKind.ENTRY: entries.append,
            exit_kind: exits.append,
            ObservationKind.DROP: drops.append,
            ObservationKind.SKIP: skips.append,
        }
        for obs in observations:
            n += 1
            kind = obs.kind
            if kind is event_kind:
                if obs.event_id not in events:
                    events[obs.event_id] = obs.person
                    outcomes[obs.event_id] = obs.reason
                continue
            if kind is profile_kind:
                out.profiles[obs.person] = tuple(obs.data.get("anonymous_ids") or ())
                continue
            add = steps.get(kind)
            if add is not None:
                exit_id = str(obs.data.get("exit_event_id") or "") if kind is exit_kind else ""
                add(_new_journey((obs.campaign, obs.person, obs.event_id, obs.at_ms, obs.reason, exit_id)))
        out.count = n + prebuilt
        return out
