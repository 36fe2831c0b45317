"""Requests encoded ahead of their send, so the send itself only re-stamps (or not at all).

Encoding an event (build the message, serialize it, check the limits) costs several times
more than re-rendering one timestamp. A shopper's requests are therefore encoded when the
shopper is simulated — before the test with ``--presimulate``, else by the producer while it
waits for the shopper to be due — not when a user sends them:

- ``--clock scaled`` and ``--keep-timestamps``: bodies carry the simulated timestamps, so the
  prepared request *is* the request sent.
- ``--clock wall``: the send re-stamps the timestamp on the wall timeline
  (:func:`~generator.load.schedule.wall_event`), which is only known once the test started. A
  single-event request carries a :class:`Stamp`: where in its body the one rendered instant
  sits, so re-stamping is one render and a join (and the body is held once, not split in two).

A stamp is derived without knowing the encoder's layout: the event is encoded at its own
timestamp and at a probe timestamp shifted in every field (day, hour, minute, second, ms); if
exactly one known rendering (ISO-8601 ms, Unix seconds, epoch ms) accounts for the *only*
difference between the two bodies, the body is ``head + render(timestamp) + tail``. Anything
else (a batch carrying several timestamps, an encoder rendering the time twice or another way)
gets no stamp and is encoded at send time as before — slower, never different. The property
test in tests/unit/test_load_prepared.py holds every API to "stamped body == encoded body".
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from generator.events import Delivery, Event
from generator.load.schedule import PlannedSend, ShopperJob
from generator.wire.base import Encoder, WireRequest, iso_ms

__all__ = [
    "PreparedRequest",
    "Stamp",
    "compact_jobs",
    "in_order",
    "prepare_job",
    "prepare_send",
    "prepared_jobs",
    "stamp_for",
]

Render = Callable[[int], str]


def _unix_s(epoch_ms: int) -> str:
    return str(epoch_ms // 1000)


# The timestamp renderings the wire formats use (generator/wire/__init__.py's table).
_RENDERINGS: tuple[Render, ...] = (iso_ms, _unix_s, str)

# 1 day 1 h 1 min 1 s 1 ms: every field of a rendered instant differs at the probe.
PROBE_SHIFT_MS = 90_061_001


@dataclass(frozen=True, slots=True)
class Stamp:
    """Where a body renders its instant: ``body[at : at + width] == render(timestamp_ms)``.

    ``render`` None: the body does not depend on the time at all.
    """

    at: int
    width: int
    render: Render | None

    def body(self, body: bytes, timestamp_ms: int) -> bytes:
        """``body`` as the encoder would give it for the same event at ``timestamp_ms``."""
        if self.render is None:
            return body
        at = self.at
        return b"".join((body[:at], self.render(timestamp_ms).encode(), body[at + self.width :]))


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A request encoded at the simulated timestamps, and how to re-stamp it (None: re-encode)."""

    request: WireRequest
    stamp: Stamp | None


def stamp_for(encoder: Encoder, event: Event, body: bytes) -> Stamp | None:
    """How to re-stamp ``body`` (``encoder.encode(event).body``), or None if it cannot be done safely."""
    probe_ms = event.timestamp_ms + PROBE_SHIFT_MS
    probe = encoder.encode(replace(event, timestamp_ms=probe_ms)).body
    if probe == body:
        return Stamp(0, 0, None)
    for render in _RENDERINGS:
        mine, theirs = render(event.timestamp_ms).encode(), render(probe_ms).encode()
        if body.count(mine) != 1 or probe.count(theirs) != 1:
            continue
        stamp = Stamp(body.index(mine), len(mine), render)
        if stamp.body(body, probe_ms) == probe:
            return stamp
    return None


def in_order(requests: Sequence[WireRequest], deliveries: Sequence[Delivery]) -> bool:
    """Whether ``requests`` carry exactly ``deliveries``' events, in order (consecutive runs)."""
    ids = [event_id for request in requests for event_id in request.event_ids]
    return ids == [d.event.id for d in deliveries]


def prepare_send(planned: PlannedSend, encoder: Encoder, *, stamps: bool) -> PlannedSend:
    """``planned`` with its requests encoded (``stamps``: also derive stamps, for wall mode)."""
    events = [d.event for d in planned.deliveries]
    prepared: tuple[PreparedRequest, ...]
    if len(events) == 1:
        request = encoder.encode(events[0])
        stamp = stamp_for(encoder, events[0], request.body) if stamps else None
        prepared = (PreparedRequest(request, stamp),)
    else:
        requests = encoder.batches(events, max_items=len(events))
        if not in_order(requests, planned.deliveries):
            raise RuntimeError(f"{encoder.api} encoder reordered or lost events of a batch")
        prepared = tuple(PreparedRequest(request, None) for request in requests)
    return replace(planned, prepared=prepared)


def prepare_job(job: ShopperJob, encoder: Encoder, *, stamps: bool) -> ShopperJob:
    """``job`` with every send's requests encoded ahead (see the module docstring)."""
    return replace(job, sends=tuple(prepare_send(s, encoder, stamps=stamps) for s in job.sends))


def prepared_jobs(jobs: Iterable[ShopperJob], encoder: Encoder, *, stamps: bool) -> Iterator[ShopperJob]:
    """:func:`prepare_job` over ``jobs``, lazily (each job is prepared when it is simulated)."""
    for job in jobs:
        yield prepare_job(job, encoder, stamps=stamps)


COMPACT_CHUNK = 256


def compact_jobs(
    jobs: list[ShopperJob], *, chunk: int = COMPACT_CHUNK, pause: Callable[[], object] | None = None
) -> bool:
    """Re-lay ``jobs`` out in memory, in place: each chunk replaced by an equal copy (pickled and
    unpickled), so a job's objects sit next to each other in replay order.

    Simulating a shopper allocates its events, deliveries and bodies among many temporaries;
    once those are freed a presimulated schedule is scattered across the heap, and every send
    of the test walks it (job → send → delivery → event → prepared request → body). Measured
    in a Locust process (two runs side by side on one core, tests/bench/bench_load.py setup):
    ~4% less CPU per request. The copy is made a chunk at a time, so the extra memory is one
    chunk's, not the schedule's. ``pause`` is called between chunks (a gevent yield). Returns
    False, leaving ``jobs`` as they were, if something in them cannot be pickled.
    """
    for start in range(0, len(jobs), chunk):
        part = jobs[start : start + chunk]
        try:
            copy = pickle.loads(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
        except (pickle.PicklingError, TypeError, AttributeError):
            return False
        jobs[start : start + chunk] = copy
        if pause is not None:
            pause()
    return True
