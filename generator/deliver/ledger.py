"""The delivery ledger: every planned delivery ends in exactly one state, on disk.

``results/<run-id>/ledger.ndjson`` holds one JSON object per planned delivery, written when its
fate is known (so lines are in settlement order, not plan order)::

    {"event_id": str,          # the id sent on the wire (Track ``id`` / Pipelines ``messageId``)
     "truth_id": str,          # the truth event it derives from (differs for new-id double fires)
     "shopper": int,           # shopper index k
     "name": str,              # event / page / screen name ("" for identify)
     "state": "acknowledged" | "rejected" | "dropped_by_fault" | "given_up",
     "status": int | null,     # last HTTP status; null when never answered (dropped, oversize, no connection)
     "reason": str,            # "" when acknowledged; 4xx body / 207 item message / why it was given up
     "attempts": int,          # HTTP attempts made for the request that carried it (0 if never sent)
     "arrival_ms": int,        # planned arrival, epoch ms UTC (simulated time)
     "faults": [str, ...]}     # fault tags from the delivery plan

Nothing is lost silently: ``acknowledged + rejected + dropped_by_fault + given_up == planned``
once the sender is done (:meth:`LedgerCounts.check`). The writer only appends, in whole lines,
and flushes at least every 50 ms while a run is going (and on close), so a run killed half-way
still leaves a readable ledger of what was decided up to that moment. Credentials never reach
this file: it records ids, statuses and response bodies only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO

import orjson

from generator.events import Delivery

__all__ = [
    "Ledger",
    "LedgerCounts",
    "LedgerImbalance",
    "State",
    "acknowledged_ids",
    "merge_counts",
    "read_ledger",
]

# A response body copied into a reason is cut to this many bytes: enough for an API error
# message, never a multi-megabyte HTML page per event.
REASON_LIMIT = 500

# flush_due() writes buffered lines when this much time passed or this many lines wait: one
# write per request would cost a syscall per event in per-call mode.
FLUSH_EVERY_S = 0.05
FLUSH_LINES = 2048


class State(StrEnum):
    """The final state of one planned delivery."""

    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    DROPPED_BY_FAULT = "dropped_by_fault"
    GIVEN_UP = "given_up"


class LedgerImbalance(RuntimeError):
    """The ledger does not account for every planned delivery exactly once (a sender bug)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerCounts:
    """Counts of planned deliveries per final state, plus request-level statistics.

    ``requests`` counts HTTP attempts (including retries), ``retries`` the attempts after the
    first, ``http_errors`` non-2xx answers and ``connection_errors`` attempts that got no answer.
    """

    planned: int = 0
    acknowledged: int = 0
    rejected: int = 0
    dropped_by_fault: int = 0
    given_up: int = 0
    requests: int = 0
    retries: int = 0
    http_errors: int = 0
    connection_errors: int = 0

    @property
    def settled(self) -> int:
        """Deliveries whose final state is known."""
        return self.acknowledged + self.rejected + self.dropped_by_fault + self.given_up

    @property
    def pending(self) -> int:
        """Deliveries planned but not settled yet (in flight or queued)."""
        return self.planned - self.settled

    @property
    def ok(self) -> bool:
        """True when nothing was rejected or given up (dropped-by-fault is intended)."""
        return self.rejected == 0 and self.given_up == 0

    def check(self) -> None:
        """Raise :class:`LedgerImbalance` unless every planned delivery is settled exactly once."""
        if self.settled != self.planned:
            raise LedgerImbalance(
                f"ledger imbalance: acknowledged {self.acknowledged} + rejected {self.rejected} + "
                f"dropped_by_fault {self.dropped_by_fault} + given_up {self.given_up} = {self.settled} "
                f"!= planned {self.planned}"
            )

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for summary.json and tests)."""
        return {
            "planned": self.planned,
            "acknowledged": self.acknowledged,
            "rejected": self.rejected,
            "dropped_by_fault": self.dropped_by_fault,
            "given_up": self.given_up,
            "requests": self.requests,
            "retries": self.retries,
            "http_errors": self.http_errors,
            "connection_errors": self.connection_errors,
        }


_ACKNOWLEDGED_STATE = State.ACKNOWLEDGED.value


def _line(
    delivery: Delivery, state: str, status: int | None, reason: str, attempts: int, arrival_ms: int
) -> bytes:
    """One ledger line, newline included. ``event_id`` comes first and ids are written without
    escapes: :func:`acknowledged_ids` scans for that layout."""
    event = delivery.event
    return orjson.dumps(
        {
            "event_id": event.id,
            "truth_id": delivery.truth_id,
            "shopper": event.shopper,
            "name": event.name,
            "state": state,
            "status": status,
            "reason": reason,
            "attempts": attempts,
            "arrival_ms": arrival_ms,
            "faults": delivery.faults,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


class Ledger:
    """Accounts for planned deliveries and appends one line per settled delivery.

    Usage: ``token = ledger.plan(delivery)`` when the sender takes a delivery from the plan,
    then exactly one ``ledger.settle(token, state, ...)``. Settling a token twice, or
    one never planned, raises :class:`LedgerImbalance`: the invariant is enforced as it happens,
    not only counted at the end. Only unsettled tokens are held, so memory stays flat.

    ``path=None`` keeps counts only (tests, benchmarks that must not measure disk writes); a
    ``stream`` may be given instead of a path.
    """

    def __init__(self, path: Path | None = None, *, stream: IO[bytes] | None = None) -> None:
        self.path = path
        self._own_stream = stream is None and path is not None
        self._out: IO[bytes] | None = path.open("ab") if self._own_stream and path is not None else stream
        self._open: dict[int, tuple[Delivery, int]] = {}
        """Token → (delivery, arrival ms it is recorded with), until settled."""
        self._next = 0
        # Settled lines are appended to one bytearray, not kept as a list of bytes: each
        # orjson result is then freed at once (a hot, reused allocation) instead of living
        # until the flush, which made a load test's per-send ledger line cost several times
        # its serialization (measured: tests/bench/bench_load.py, issue 6).
        self._buffer = bytearray()
        self._buffered = 0
        self._deferred: list[tuple[Delivery, int, int, int]] = []
        """:meth:`acknowledged` records (delivery, arrival ms, status, attempts), rendered into
        ``_buffer`` in a batch before any other line and at every :meth:`flush`."""
        self._flushed_at = time.monotonic()
        self._counts = {state: 0 for state in State}
        self._acknowledged = 0
        """Settled by :meth:`acknowledge` (kept apart from ``_counts``: no enum hash per call)."""
        self._planned = 0
        self._requests = 0
        self._retries = 0
        self._http_errors = 0
        self._connection_errors = 0

    # ------------------------------------------------------------------ accounting

    def plan(self, delivery: Delivery, *, arrival_ms: int | None = None) -> int:
        """Count ``delivery`` as planned and return its token for :meth:`settle`.

        ``arrival_ms`` records when it actually arrives instead of its planned ``arrival_ms``
        (a load test sends shoppers when a user is free, not on the plan's clock).
        """
        token = self._next
        self._next += 1
        self._planned += 1
        self._open[token] = (delivery, delivery.arrival_ms if arrival_ms is None else arrival_ms)
        return token

    def settle(
        self,
        token: int,
        state: State,
        *,
        status: int | None = None,
        reason: str = "",
        attempts: int = 0,
    ) -> None:
        """Record the final state of one planned delivery (buffered until :meth:`flush`)."""
        try:
            delivery, arrival_ms = self._open.pop(token)
        except KeyError:
            raise LedgerImbalance(f"delivery token {token} settled twice or never planned") from None
        self._counts[state] += 1
        if self._out is None:
            return
        if self._deferred:  # lines stay in settlement order
            self._render_deferred()
        self._buffered += 1
        self._buffer += _line(delivery, state.value, status, reason[:REASON_LIMIT], attempts, arrival_ms)

    def acknowledge(self, token: int, status: int, attempts: int) -> None:
        """:meth:`settle` as ``ACKNOWLEDGED`` (no reason): the same line, for a sender's hot path.

        A load test settles one delivery per request this way; the general method's keyword
        parsing, enum lookups and reason cut were a measurable share of a send.
        """
        try:
            delivery, arrival_ms = self._open.pop(token)
        except KeyError:
            raise LedgerImbalance(f"delivery token {token} settled twice or never planned") from None
        self._acknowledged += 1
        if self._out is None:
            return
        self._buffered += 1
        self._deferred.append((delivery, arrival_ms, status, attempts))  # rendered in a batch

    def acknowledged(self, delivery: Delivery, arrival_ms: int, status: int, attempts: int) -> None:
        """:meth:`plan` and :meth:`acknowledge` at once, for a delivery whose answer is already in.

        A load test's common send plans its delivery only if the answer is not a plain
        acknowledgement (or the send is cut short): no token, no open entry for the 99%.
        """
        self._planned += 1
        self._acknowledged += 1
        if self._out is None:
            return
        # The line is rendered later, with the others of its batch (a tight loop runs several
        # times faster than one render per request between a load generator's HTTP calls);
        # it stays in memory no longer than a rendered line would (until the next flush).
        self._buffered += 1
        self._deferred.append((delivery, arrival_ms, status, attempts))

    def _render_deferred(self) -> None:
        """Render :meth:`acknowledged`'s records into the buffer, in order."""
        buffer = self._buffer
        for delivery, arrival_ms, status, attempts in self._deferred:
            buffer += _line(delivery, _ACKNOWLEDGED_STATE, status, "", attempts, arrival_ms)
        self._deferred.clear()

    def count_attempt(self, *, retry: bool, http_error: bool = False, connection_error: bool = False) -> None:
        """Count one HTTP attempt (for the progress bar and the summary)."""
        self._requests += 1
        self._retries += retry
        self._http_errors += http_error
        self._connection_errors += connection_error

    def flush(self) -> None:
        """Append buffered lines to the file and flush it."""
        self._flushed_at = time.monotonic()
        if self._deferred:
            self._render_deferred()
        if self._out is None or not self._buffer:
            return
        self._out.write(self._buffer)
        self._buffer = bytearray()
        self._buffered = 0
        self._out.flush()

    def flush_due(self) -> None:
        """:meth:`flush` if ``FLUSH_EVERY_S`` passed since the last one or ``FLUSH_LINES`` wait."""
        if self._buffered >= FLUSH_LINES or time.monotonic() - self._flushed_at >= FLUSH_EVERY_S:
            self.flush()

    @property
    def counts(self) -> LedgerCounts:
        """The counts so far (a snapshot)."""
        c = self._counts
        return LedgerCounts(
            planned=self._planned,
            acknowledged=c[State.ACKNOWLEDGED] + self._acknowledged,
            rejected=c[State.REJECTED],
            dropped_by_fault=c[State.DROPPED_BY_FAULT],
            given_up=c[State.GIVEN_UP],
            requests=self._requests,
            retries=self._retries,
            http_errors=self._http_errors,
            connection_errors=self._connection_errors,
        )

    @property
    def unsettled(self) -> int:
        """How many planned deliveries still wait for :meth:`settle`."""
        return len(self._open)

    def settle_unsettled(self, state: State, *, reason: str) -> int:
        """Settle every open delivery with ``state`` (an interrupted run); returns how many."""
        tokens = list(self._open)
        for token in tokens:
            self.settle(token, state, reason=reason)
        self.flush()
        return len(tokens)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Flush and close the file (if the ledger opened it)."""
        self.flush()
        if self._out is not None and self._own_stream:
            self._out.close()
        self._out = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_ledger(path: Path) -> Iterable[dict[str, object]]:
    """Yield the records of a ``ledger.ndjson`` file (for tests, the checker and reports)."""
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)


# The layout the writers here produce: ``event_id`` first, ids without escapes, ``"state":"…"``
# without spaces. Inside a JSON string a quote is escaped, so these byte patterns can only
# match the structure itself.
_EVENT_ID = re.compile(rb'\{"event_id":"([^"\\\n]*)"')
_ACKNOWLEDGED = b'"state":"acknowledged"'
_OTHER_STATE = re.compile(rb'"state":"(?!acknowledged")')
_BLOCK = 1 << 22


def acknowledged_ids(path: Path, *, block_size: int = _BLOCK) -> Iterator[list[str]]:
    """The event ids of a ledger's ``acknowledged`` lines, a list per block of lines, in file
    order (repeats included).

    The checker's ingestion-loss join reads a line per planned delivery, and decoding each as
    JSON was most of its cost on big runs. So blocks of lines are scanned with byte patterns
    (the C regex engine, no object per line): every line's id, the count of acknowledged
    states and the positions of the other states. A block whose counts do not add up (another
    writer's layout, blank lines) is decoded line by line instead: the patterns are a shortcut,
    never a filter. Lists, not single ids: callers join them with set operations.
    """
    with path.open("rb") as handle:
        rest = b""
        while True:
            block = handle.read(block_size)
            if not block:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            if cut:
                yield _block_ids(block[:cut])
        if rest.strip():
            yield _block_ids(rest + b"\n")


def _block_ids(block: bytes) -> list[str]:
    """Acknowledged ids of a block of whole lines (each ending in a newline)."""
    ids = _EVENT_ID.findall(block)
    lines = block.count(b"\n")
    if len(ids) != lines:
        return _decoded_ids(block)
    acknowledged = block.count(_ACKNOWLEDGED)
    # Each line holds one state; look for the others only when some line is not acknowledged.
    others = [] if acknowledged == lines else [match.start() for match in _OTHER_STATE.finditer(block)]
    if acknowledged + len(others) != lines:
        return _decoded_ids(block)
    if others:
        # Line numbers of the other states: newlines counted between consecutive positions.
        skip: set[int] = set()
        line, last = 0, 0
        for position in others:
            line += block.count(b"\n", last, position)
            last = position
            skip.add(line)
        ids = [raw for number, raw in enumerate(ids) if number not in skip]
    return list(map(bytes.decode, ids))


def _decoded_ids(block: bytes) -> list[str]:
    out: list[str] = []
    for line in block.splitlines():
        if line.strip():
            row = orjson.loads(line)
            if row.get("state") == State.ACKNOWLEDGED:
                out.append(str(row.get("event_id") or ""))
    return out


def merge_counts(parts: Iterable[LedgerCounts]) -> LedgerCounts:
    """Sum ledger counts (e.g. of Locust workers' ledgers)."""
    total = LedgerCounts()
    for part in parts:
        total = replace(
            total,
            **{name: getattr(total, name) + getattr(part, name) for name in total.as_dict()},
        )
    return total
