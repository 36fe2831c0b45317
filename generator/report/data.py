"""The run's data files, NDJSON (one JSON object per line, orjson), written while the run streams.

- ``events.ndjson``       truth events: id, shopper, seq, type, name, timestamp_ms (epoch ms UTC),
                          user_id, anonymous_id, properties, context, source, journey, state
- ``deliveries.ndjson``   the delivery plan: event_id, truth_id, shopper, name, type, timestamp_ms,
                          arrival_ms (epoch ms UTC, simulated), faults [tags], dropped, oversize
- ``expectations.ndjson`` both bases: basis, campaign, person, shopper, outcome (send|no_send),
                          trigger_event_id, trigger_ms (entry time), send_ms, reason, exit_event_id
- ``observations.ndjson`` what the target did: kind, person, at_ms, campaign, event_id, name, reason, data
                          (from the emulator export, ingested events are written compactly as
                          kind=event, person, event_id, reason = dedupe/merge outcome)
- ``ledger.ndjson``       written by the sender (see ``generator/deliver/ledger.py``)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from generator.events import Delivery, Event, Expectation, Observation
from generator.expect import describe


def event_record(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "shopper": event.shopper,
        "seq": event.seq,
        "type": event.type.value,
        "name": event.name,
        "timestamp_ms": event.timestamp_ms,
        "user_id": event.user_id,
        "anonymous_id": event.anonymous_id,
        "properties": event.properties,
        "context": event.context,
        "source": event.source.value,
        "journey": event.journey,
        "state": event.state,
    }


def delivery_record(delivery: Delivery) -> dict[str, Any]:
    event = delivery.event
    return {
        "event_id": event.id,
        "truth_id": delivery.truth_id,
        "shopper": event.shopper,
        "name": event.name,
        "type": event.type.value,
        "timestamp_ms": event.timestamp_ms,
        "arrival_ms": delivery.arrival_ms,
        "faults": list(delivery.faults),
        "dropped": delivery.dropped,
        "oversize": delivery.oversize,
    }


def observation_record(obs: Observation) -> dict[str, Any]:
    return {
        "kind": obs.kind.value,
        "person": obs.person,
        "at_ms": obs.at_ms,
        "campaign": obs.campaign,
        "event_id": obs.event_id,
        "name": obs.name,
        "reason": obs.reason,
        "data": dict(obs.data),
    }


class NdjsonWriter:
    """Append-only NDJSON file with a buffered handle; ``None`` path = discard (no file)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh: IO[bytes] | None = path.open("wb", buffering=1 << 20) if path is not None else None
        self.lines = 0

    def write(self, record: Any) -> None:
        if self._fh is not None:
            self._fh.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS))
            self.lines += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> NdjsonWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_expectations(path: Path, *groups: Iterable[Expectation]) -> int:
    """Write every expectation of every group; returns the line count."""
    with NdjsonWriter(path) as out:
        for group in groups:
            for exp in group:
                out.write(describe(exp))
        return out.lines


def tee_observations(observations: Iterable[Observation], writer: NdjsonWriter) -> Iterator[Observation]:
    """Pass observations through, writing each."""
    for obs in observations:
        writer.write(observation_record(obs))
        yield obs
