"""Reader of the emulator's bulk export (``GET /_shopsim/export``) → :class:`~generator.events.Observation`.

Export lines (NDJSON, one record each; see the emulator's docs) and what they become:

- ``profile``  → PROFILE (person = ``id``; data: ``anonymous_ids``, ``email``, ``cio_id``)
- ``event``    → EVENT (event_id, name, person or ``""``; reason = dedupe/merge ``outcome``;
                 at_ms = ``received_ms``; data: ``anonymous_id``, ``timestamp_ms``, ``type``)
- ``journey``  → ENTRY at ``entered_ms`` plus SEND / EXIT / DROP at ``at_ms`` (none while pending);
                 event_id = the trigger event id; EXIT data carries ``exit_event_id``
- ``skip``     → SKIP (reason ``frequency|stale|anonymous|secondary|filter``)
- ``event_index`` (only when asked for: columns of event id, person, outcome) → EVENT per row

Unknown kinds are ignored, so a newer emulator can add records without breaking the reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from generator.events import Observation, ObservationKind

_OBSERVATION_FIELDS = ("kind", "person", "at_ms", "campaign", "event_id", "name", "reason", "data")
_o_kind, _o_person, _o_at, _o_campaign, _o_event, _o_name, _o_reason, _o_data = (
    Observation.__dict__[f].__set__ for f in _OBSERVATION_FIELDS
)
_new = object.__new__
_ENTRY = ObservationKind.ENTRY


def _journey_step(
    kind: ObservationKind,
    person: str,
    at_ms: int,
    campaign: str,
    trigger: str,
    reason: str,
    data: dict[str, Any],
) -> Observation:
    """``Observation(kind=..., ...)`` for a journey step at about half the cost.

    A frozen dataclass ``__init__`` sets each field through ``object.__setattr__`` by name; a
    big export has a journey line per trigger event, each one or two observations, so they are
    built through the slots' descriptors instead (as the simulator builds events). A unit test
    pins equality with ``Observation(...)``.
    """
    observation: Observation = _new(Observation)
    _o_kind(observation, kind)
    _o_person(observation, person)
    _o_at(observation, at_ms)
    _o_campaign(observation, campaign)
    _o_event(observation, trigger)
    _o_name(observation, "")
    _o_reason(observation, reason)
    _o_data(observation, data)
    return observation


_OUTCOME_KIND = {
    "sent": ObservationKind.SEND,
    "exited": ObservationKind.EXIT,
    "dropped": ObservationKind.DROP,
}


def from_emulator_record(record: dict[str, Any]) -> Iterator[Observation]:
    """The observations one export record stands for (zero, one or two)."""
    kind = record.get("kind")
    if kind == "event":
        yield Observation(
            kind=ObservationKind.EVENT,
            person=record.get("person") or "",
            at_ms=int(record.get("received_ms") or 0),
            event_id=str(record.get("event_id") or ""),
            name=str(record.get("name") or ""),
            reason=str(record.get("outcome") or ""),
            data={
                "anonymous_id": record.get("anonymous_id"),
                "timestamp_ms": record.get("timestamp_ms"),
                "type": record.get("type"),
            },
        )
    elif kind == "journey":
        get = record.get
        person = str(get("person") or "")
        campaign = str(get("campaign") or "")
        trigger = str(get("trigger_event_id") or "")
        outcome = str(get("outcome") or "")
        yield _journey_step(
            _ENTRY,
            person,
            int(get("entered_ms") or 0),
            campaign,
            trigger,
            outcome,
            {"campaign_id": get("campaign_id")},
        )
        outcome_kind = _OUTCOME_KIND.get(outcome)
        if outcome_kind is not None:
            yield _journey_step(
                outcome_kind,
                person,
                int(get("at_ms") or 0),
                campaign,
                trigger,
                str(get("reason") or ""),
                {"exit_event_id": get("exit_event_id")},
            )
    elif kind == "profile":
        yield Observation(
            kind=ObservationKind.PROFILE,
            person=str(record.get("id") or record.get("email") or record.get("cio_id") or ""),
            at_ms=int(record.get("created_ms") or 0),
            data={
                "anonymous_ids": tuple(record.get("anonymous_ids") or ()),
                "email": record.get("email"),
                "cio_id": record.get("cio_id"),
            },
        )
    elif kind == "event_index":
        for event_id, person, outcome in zip(
            record.get("event_id") or (),
            record.get("person") or (),
            record.get("outcome") or (),
            strict=False,
        ):
            yield Observation(
                kind=ObservationKind.EVENT,
                person=person or "",
                at_ms=0,
                event_id=str(event_id or ""),
                reason=str(outcome or ""),
            )
    elif kind == "skip":
        yield Observation(
            kind=ObservationKind.SKIP,
            person=str(record.get("person") or ""),
            at_ms=int(record.get("at_ms") or 0),
            campaign=str(record.get("campaign") or ""),
            event_id=str(record.get("trigger_event_id") or ""),
            reason=str(record.get("reason") or ""),
        )


def parse_export(lines: Iterable[bytes | str]) -> Iterator[Observation]:
    """Observations from export NDJSON lines (blank lines skipped)."""
    loads = orjson.loads
    for line in lines:
        if not line or not line.strip():
            continue
        record = loads(line)
        if isinstance(record, dict):
            yield from from_emulator_record(record)


def split_export(
    lines: Iterable[bytes | str], *, with_outcomes: bool = True
) -> tuple[list[Observation], dict[str, str], dict[str, str]]:
    """The export as (non-event observations, {event id: person or ""}, {event id: outcome}) in one
    fast pass.

    Ingested events are most of an export; the checks need only who each one landed on, so they
    skip the Observation record (the hot path of big runs), and the indexes map ids to plain
    strings: no record per event for the collector to scan. The dedupe/merge outcomes are read
    by no check, only written to the run's data: ``with_outcomes=False`` leaves them out (empty).
    """
    loads = orjson.loads
    others: list[Observation] = []
    # Every ingested event's row, in export order: the columns of ``event_index`` records and
    # the rows of ``event`` lines, indexed once at the end (C-level list and dict operations).
    ids: list[str] = []
    persons: list[str] = []
    results: list[str] = []
    for line in lines:
        if not line:
            continue
        record = loads(line)
        if not isinstance(record, dict):
            continue
        kind = record.get("kind")
        if kind == "event_index":
            ids.extend(record["event_id"])
            persons.extend(record["person"])
            if with_outcomes:
                results.extend(record["outcome"])
            continue
        if kind == "event":
            ids.append(str(record.get("event_id") or ""))
            persons.append(record.get("person") or "")
            if with_outcomes:
                results.append(str(record.get("outcome") or ""))
            continue
        others.extend(from_emulator_record(record))
    # The first row of an id wins: built from the reversed rows, an earlier row overwrites a
    # later one.
    ids.reverse()
    persons.reverse()
    people = dict(zip(ids, persons, strict=True))
    outcomes: dict[str, str] = {}
    if with_outcomes:
        results.reverse()
        outcomes = dict(zip(ids, results, strict=True))
    return others, people, outcomes


CHECKER_EXPORT = "/_shopsim/export?kinds=event_index,journey"
"""What the checker reads: exactly what the checks use — campaign journeys, and ingested events
as the compact ``event_index`` columns. Profiles and skips (one per anonymous trigger event:
two thirds of a cart-recovery export) are read by no check, so they are not fetched."""


def read_export(base_url: str, *, timeout: float = 300.0) -> Iterator[Observation]:
    """Stream the checker's export (:data:`CHECKER_EXPORT`) and yield its observations."""
    from generator.observe.http import stream_lines

    yield from parse_export(stream_lines(base_url, CHECKER_EXPORT, timeout=timeout))
