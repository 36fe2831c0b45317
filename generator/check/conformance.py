"""Tracking-plan conformance of delivered events, with Segment Protocols' violation kinds.

Every delivered track and page event is held against the scenario's tracking plan: unplanned
events and properties, missing required properties, values of the wrong JSON type. Violations are
aggregated per (kind, event name, field) with a count and the first few examples.

A verdict depends only on an event's *signature* — call type, name, property names in order and
the Python types of their values — so it is computed once per signature and cached: checking a
million events costs building a million signatures, not a million plan look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import is_not
from typing import Any

from generator.events import CallType, Event
from generator.scenario.model import PropertySpec, TrackingPlan

_TRACK = CallType.TRACK
_PAGE = CallType.PAGE
_CLEAN: tuple[tuple[str, str, str], ...] = ()
"""The verdict of a conforming event (every clean verdict is this very object)."""
_Signature = tuple[Any, ...]
"""What a conformance verdict depends on, flat: (call type, name, *property names, *value types)
— unambiguous, property names being strings and types not."""
MAX_EXAMPLES = 3
_CONFORM_CACHE_MAX = 200_000
"""Distinct (call type, name, property names, value types) signatures whose conformance verdict is
cached; beyond it (a catalog of millions of page names) events are checked in full."""


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


class TrackingPlanConformance:
    """Checks delivered events against one tracking plan; :attr:`violations` holds the result."""

    def __init__(self, plan: TrackingPlan) -> None:
        self._plan_events = plan.all_events
        self._compiled: dict[str, tuple[frozenset[str], dict[str, tuple[tuple[type, ...], str]]]] = {}
        self._compiled_page = _compile(plan.page_properties)
        self._verdicts: dict[_Signature, tuple[tuple[str, str, str], ...]] = {}
        self.violations: dict[tuple[str, str, str], Violation] = {}

    def check_plain(self, events: list[Event]) -> None:
        """Tracking-plan conformance of plain delivered events (no fault tags), a chunk at once:
        signatures and cached verdicts in C-level passes, Python only for misses and violations."""
        # One flat tuple per event in one pass (see _Signature): cheaper than zipping a key tuple
        # and a type tuple per event, the signature cost being most of conformance's.
        signatures: list[_Signature] = [
            (event.type, event.name, *props, *map(type, props.values()))
            for event in events
            for props in (event.properties,)
        ]
        verdicts = list(map(self._verdicts.get, signatures))
        # Verdicts are shared tuples; () (no violation) is the common one.
        for index in compress(range(len(verdicts)), map(is_not, verdicts, repeat(_CLEAN))):
            found = verdicts[index]
            if found is None:
                found = self._verdict(events[index], signatures[index])
            for kind_name, field_path, description in found:
                self._violate(kind_name, events[index], field_path, description, ())

    def check(self, event: Event, faults: tuple[str, ...]) -> None:
        """Tracking-plan conformance of one delivered event (Segment Protocols' violation kinds)."""
        props = event.properties
        signature: _Signature = (event.type, event.name, *props, *map(type, props.values()))
        found = self._verdicts.get(signature)
        if found is None:
            found = self._verdict(event, signature)
        for kind_name, field_path, description in found:
            self._violate(kind_name, event, field_path, description, faults)

    def _verdict(self, event: Event, signature: _Signature) -> tuple[tuple[str, str, str], ...]:
        # The verdict depends only on the event's signature — kind, name, property names (in
        # order) and the python types of their values — so it is computed once per signature.
        # The one value-dependent rule (a float that is a whole number passes an integer
        # property) makes a signature uncacheable; those events take this path every time.
        if event.type is not _TRACK and event.type is not _PAGE:
            found: tuple[tuple[str, str, str], ...] = _CLEAN  # screens and identifies: no plan
            cacheable = True
        else:
            found, cacheable = self._conform_slow(event)
            if not found:
                found = _CLEAN
        if cacheable and len(self._verdicts) < _CONFORM_CACHE_MAX:
            self._verdicts[signature] = found
        return found

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
