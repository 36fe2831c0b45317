"""The per-process load runtime: a producer of due shoppers, a queue, replay, ledger, lag stats.

One :class:`LoadSession` lives in every process that runs users (a Locust worker, or a
stand-alone Locust). It is gevent code but knows nothing of Locust: the Locust user hands it a
``send`` function (one HTTP call, marked in Locust's statistics) and the Locust plugin hands it
an ``emit`` function (a custom message to the master). That keeps the open-model logic testable
with plain functions.

Flow::

    producer greenlet ── sleeps until shopper k is due ──▶ queue ──▶ a free user takes it
        (simulates and encodes the next shopper              (late if every user was busy)
         while it waits)

    user: replay(job) → for each planned send: wait offset_s after the actual start,
          take its prepared request (re-stamped in wall mode), send, classify, retry,
          settle the ledger

The send path is the load generator's hot loop: at a high ``--speed`` it is what limits
requests/s per core, so it does per request only what cannot be done earlier (encoding moved to
:mod:`generator.load.prepared`; tokens settle by position, not by id; shared verdicts). See
tests/bench/bench_load.py for what it costs next to a bare FastHttpUser.

Ending. ``stop(grace_s)`` stops producing; due shoppers still queued are *unstarted* (counted,
never planned in the ledger); shoppers in flight get ``grace_s`` to finish, then their remaining
sends are settled ``given_up`` ("load test ended before this send was due"). When nothing is
queued or in flight the session *finishes*: it flushes the ledger and emits a ``done`` report.
A schedule that runs out finishes the same way without any stop.

Messages emitted (see :mod:`generator.load.messages`): ``shopsim_ledger`` every
``flush_every_s`` with the ledger lines settled since the last one, and one ``shopsim_done``.
"""

from __future__ import annotations

import io
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.queue

from generator.credentials import Credentials
from generator.deliver.ledger import Ledger, State
from generator.events import Delivery, Event
from generator.load.lag import LagHistogram
from generator.load.messages import DONE, LEDGER, DoneReport
from generator.load.outcome import Verdict
from generator.load.prepared import in_order
from generator.load.schedule import ENDED_REASON, PlannedSend, ShopperJob, wall_event
from generator.wire.base import Encoder, WireRequest

__all__ = ["LoadSession", "SendFn", "SessionConfig"]

log = logging.getLogger(__name__)

SendFn = Callable[[WireRequest, str, Mapping[str, Any], Mapping[str, str], bytes], Verdict]
"""``send(request, name, context, headers, body) -> Verdict``: one HTTP attempt, recorded by Locust.

``body`` is what goes on the wire: ``request.body``, or in wall mode the same body re-stamped
(passed apart so the hot path does not build a new frozen WireRequest per send)."""

EmitFn = Callable[[str, dict[str, Any]], None]

CLOCK_HEADER = "X-Shopsim-Clock"
_MIN_WAIT_S = 0.0005
OVERSIZE_REASON = "oversize: above the API's documented limit, not sent"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """Knobs of one load process (from the locustfile's command-line options)."""

    speed: float = 1.0
    clock: str = "wall"
    """``wall``: timestamps re-stamped on the compressed wall timeline (real targets).
    ``scaled``: timestamps as simulated, and every request carries ``X-Shopsim-Clock`` = the
    simulated instant of its actual send (``origin + elapsed × speed``) for a virtual-clock
    emulator, so campaign delays, exits and the 72 h rule play out in simulated time."""
    late_ms: float = 100.0
    retries: int = 2
    keep_timestamps: bool = False
    send_oversize: bool = False
    flush_every_s: float = 0.5
    park_s: float = 0.05
    """A shopper whose next send is further away than this (wall s) frees its user meanwhile: the
    pool then only needs to cover requests in flight, and a resumption that finds no free user
    is measured as send lag (the open model holds within a shopper too)."""
    backoff_s: float = 0.05
    tail_s: float | None = None
    """After the last shopper was due, keep going this long (wall s), then stop (``grace_s``
    given to in-flight shoppers). None: until every shopper's last send, however late (a
    shopper coming back a week later keeps the test running a week / speed)."""
    grace_s: float = 10.0

    @property
    def restamps(self) -> bool:
        """Whether sends re-stamp event timestamps on the wall timeline (see ``clock``)."""
        return not (self.keep_timestamps or self.clock == "scaled")


@dataclass(slots=True)
class Turn:
    """A shopper's next stretch of activity, as queued for the user pool.

    The first turn (``started is None``) starts the shopper; a later turn resumes it after a
    long think time (``index`` = the next send). ``due`` is the intended monotonic start.
    """

    job: ShopperJob
    due: float
    started: float | None = None
    index: int = 0


class LoadSession:
    """Feeds due shoppers to the user pool and accounts for every planned delivery.

    A shopper whose next send is more than ``park_s`` away is *parked*: its user goes back to
    the pool and the shopper is queued again when the send is due. So ``--users`` needs to
    cover the shoppers that are active at once, not the ones thinking for an hour (or coming
    back tomorrow), and a resumption that waits for a free user is measured as send lag.
    """

    def __init__(
        self,
        jobs: Iterator[ShopperJob],
        *,
        encoder: Encoder,
        creds: Credentials,
        config: SessionConfig,
        emit: EmitFn,
        shard: tuple[int, int] = (0, 1),
        origin_ms: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.jobs = jobs
        self.encoder = encoder
        self.config = config
        self.emit = emit
        self.shard = shard
        self.origin_ms = origin_ms
        self.monotonic = monotonic
        self.wall_ms = wall_ms
        self.queue: gevent.queue.Queue[Turn] = gevent.queue.Queue()
        self._buffer = io.BytesIO()
        self.ledger = Ledger(stream=self._buffer)
        self.start_lag = LagHistogram(late_ms=config.late_ms)
        self.send_lag = LagHistogram(late_ms=config.late_ms)
        self.stop_producing = gevent.event.Event()
        self.abort = gevent.event.Event()
        self.finished = gevent.event.Event()
        self.producing_done = False
        self.in_flight = 0
        self.max_in_flight = 0
        self.shoppers_started = 0
        self.shoppers_unstarted = 0
        self.shoppers_not_due = 0
        self.turns_parked = 0
        self.deliveries_cut_by_end = 0
        self.t0 = 0.0
        self.wall_origin_ms = 0
        self._parked: dict[int, tuple[gevent.Greenlet[Any, Any], Turn]] = {}
        self._park_key = 0
        self._greenlets: list[gevent.Greenlet[Any, Any]] = []
        self._headers: dict[str, dict[str, str]] = {}
        self._auth = encoder.auth_headers(creds)
        self._restamp = config.restamps
        self._scaled = config.clock == "scaled"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Fix the schedule origin to now and start producing due shoppers.

        The first shopper is simulated *before* the origin is fixed: the first simulation pays
        one-off costs (lazy tables, caches) that would otherwise make shopper 0 start late.
        """
        first = next(self.jobs, None)
        if first is not None:
            self.jobs = itertools.chain([first], self.jobs)
        self.t0 = self.monotonic()
        self.wall_origin_ms = self.wall_ms()
        self._greenlets = [gevent.spawn(self._produce), gevent.spawn(self._flusher)]

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop producing; in-flight shoppers get ``grace_s`` to finish, then are cut short.

        Due shoppers still waiting for a user never started: they are recorded in the start lag
        with the time they waited so far (a lower bound), so a too-small pool shows as late
        starts instead of disappearing. Parked shoppers end here (their later sends given up).
        """
        if self.stop_producing.is_set():
            return
        self.stop_producing.set()
        self._drain_queue()
        for greenlet, turn in list(self._parked.values()):
            greenlet.kill(block=False)
            self._end(turn.job, turn.index)
        self._parked.clear()
        if grace_s <= 0:
            self.abort.set()
        else:
            self._greenlets.append(gevent.spawn_later(grace_s, self.abort.set))
        self._maybe_finish()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the session finished (True) or ``timeout`` passed (False)."""
        return bool(self.finished.wait(timeout))

    def _drain_queue(self) -> None:
        now = self.monotonic()
        while True:
            try:
                turn = self.queue.get_nowait()
            except gevent.queue.Empty:
                return
            if turn.started is None:
                self.shoppers_unstarted += 1
                self.start_lag.record((now - turn.due) * 1000.0)
            else:
                self._end(turn.job, turn.index)

    def _end(self, job: ShopperJob, index: int) -> None:
        """Settle the sends of ``job`` from ``index`` on as given up (the test ended first)."""
        ledger = self.ledger
        for planned_send in job.sends[index:]:
            for delivery in planned_send.deliveries:
                ledger.settle(ledger.plan(delivery), State.GIVEN_UP, reason=ENDED_REASON)
                self.deliveries_cut_by_end += 1

    def _produce(self) -> None:
        try:
            for job in self.jobs:
                # The next shopper is simulated *before* this wait, so simulation cost is paid
                # while the schedule idles rather than when the shopper is due.
                delay = self.t0 + job.due_s - self.monotonic()
                if (delay > 0 and self.stop_producing.wait(delay)) or self.stop_producing.is_set():
                    self.shoppers_not_due += 1
                    break
                self.queue.put(Turn(job, self.t0 + job.due_s))
        except Exception:  # a simulation bug must end the run visibly, not hang it
            log.exception("shopper schedule failed; stopping this load process")
            self.stop(0)
        finally:
            self.producing_done = True
            if self.config.tail_s is not None and not self.stop_producing.is_set():
                self._greenlets.append(gevent.spawn_later(self.config.tail_s, self.stop, self.config.grace_s))
            self._maybe_finish()

    def _flusher(self) -> None:
        while not self.finished.is_set():
            if self.finished.wait(self.config.flush_every_s):
                return
            self._flush_rows()

    def _flush_rows(self) -> None:
        self.ledger.flush()
        rows = self._buffer.getvalue()
        if rows:
            self._buffer.seek(0)
            self._buffer.truncate()
            self.emit(LEDGER, {"shard": self.shard[0], "rows": rows})

    def _maybe_finish(self) -> None:
        if (
            self.finished.is_set()
            or not self.producing_done
            or self.in_flight
            or self._parked
            or not self.queue.empty()
        ):
            return
        self.finished.set()
        self._flush_rows()
        self.emit(DONE, self.report().as_dict())

    def report(self) -> DoneReport:
        """What this process did (sent once, in the ``done`` message)."""
        return DoneReport(
            shard=self.shard[0],
            shards=self.shard[1],
            counts=self.ledger.counts.as_dict(),
            start_lag=self.start_lag.as_dict(),
            send_lag=self.send_lag.as_dict(),
            shoppers_started=self.shoppers_started,
            shoppers_unstarted=self.shoppers_unstarted,
            deliveries_unstarted=0,
            max_in_flight=self.max_in_flight,
            elapsed_s=round(self.monotonic() - self.t0, 3) if self.t0 else 0.0,
            extra={
                "clock_ms": self.scaled_now_ms() if self.t0 else self.origin_ms,
                "origin_ms": self.origin_ms,
                "shoppers_not_due": self.shoppers_not_due,
                "turns_parked": self.turns_parked,
                "deliveries_cut_by_end": self.deliveries_cut_by_end,
            },
        )

    # ------------------------------------------------------------------ the user side

    def take(self, timeout: float = 0.5) -> Turn | None:
        """The next due turn, or None when none is due within ``timeout``."""
        if self.stop_producing.is_set():
            self.finished.wait(timeout)
            return None
        try:
            turn: Turn = self.queue.get(timeout=timeout)
        except gevent.queue.Empty:
            return None
        return turn

    def _park(self, turn: Turn, delay: float) -> None:
        key = self._park_key
        self._park_key += 1
        self.turns_parked += 1

        def wake() -> None:
            if self._parked.pop(key, None) is not None:
                self.queue.put(turn)

        self._parked[key] = (gevent.spawn_later(delay, wake), turn)

    def replay(self, turn: Turn, send: SendFn) -> None:
        """Play a shopper's turn: sends at their offsets after the shopper's actual start.

        Deliveries enter the ledger when they are sent, with ``arrival_ms`` set to the simulated
        instant of the actual send (so the ledger says when the target really got them, lag
        included); sends the test never reached are settled ``given_up``.
        """
        now = self.monotonic()
        job = turn.job
        lag_ms = (now - turn.due) * 1000.0
        ledger = self.ledger
        if turn.started is None:
            self.start_lag.record(lag_ms)
            self.shoppers_started += 1
            turn.started = now
            for delivery in job.dropped:
                ledger.settle(ledger.plan(delivery), State.DROPPED_BY_FAULT, reason="dropped by fault plan")
        else:
            self.send_lag.record(lag_ms)
        started = turn.started
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        index = turn.index
        parked = False
        sends = job.sends
        count = len(sends)
        monotonic = self.monotonic
        park_s = self.config.park_s
        aborted = self.abort.is_set
        record_lag = self.send_lag.record
        send_one = self._send
        origin_ms = self.origin_ms
        t0 = self.t0
        # The simulated instant of a wall instant: origin + elapsed × speed (as scaled_now_ms).
        sim_per_s = 1000.0 * self.config.speed
        try:
            while index < count:
                planned_send = sends[index]
                due = started + planned_send.offset_s
                now = monotonic()
                delay = due - now
                if delay > park_s and not self.stop_producing.is_set():
                    self._park(Turn(job, due, started, index), delay)
                    parked = True
                    break
                if delay > _MIN_WAIT_S:
                    # Waits under half a millisecond are below the hub's timer resolution: a timer
                    # and a switch per send would cost more than the wait itself.
                    if self.abort.wait(delay):
                        break
                    now = monotonic()
                elif aborted():
                    break
                elif delay < 0:
                    record_lag(-delay * 1000.0)
                index += 1  # _send settles all of this send's deliveries, whatever happens inside
                send_one(job, planned_send, send, origin_ms + round((now - t0) * sim_per_s))
        finally:
            # Cut short (test ended, or the greenlet was killed): never lose an event silently.
            if not parked:
                self._end(job, index)
            self.in_flight -= 1
            self._maybe_finish()

    def scaled_now_ms(self) -> int:
        """The simulated instant of now: the schedule origin plus elapsed wall time × speed."""
        return self.origin_ms + round((self.monotonic() - self.t0) * 1000.0 * self.config.speed)

    def _event(self, delivery: Delivery) -> Event:
        """The event as it goes on the wire: re-stamped on the wall timeline in wall mode."""
        if self._restamp:
            return wall_event(
                delivery,
                wall_origin_ms=self.wall_origin_ms,
                origin_ms=self.origin_ms,
                speed=self.config.speed,
            )
        return delivery.event

    def _encode(self, planned: PlannedSend) -> list[WireRequest]:
        """The requests carrying ``planned``'s deliveries, in order, each a consecutive run of them.

        Every encoder keeps the input order and gives each request a contiguous run of ids
        (``cut_batches`` isolates an oversize item "in its place in the sequence"; checked by
        :func:`~generator.load.prepared.in_order`), so request ``i`` settles the next
        ``len(event_ids)`` tokens: no per-id lookup on the hot path. Requests prepared ahead are
        used as they are, or re-stamped from their :class:`~generator.load.prepared.Stamp`.
        """
        deliveries = planned.deliveries
        prepared = planned.prepared
        if prepared:
            if not self._restamp:
                return [p.request for p in prepared]
            stamp = prepared[0].stamp
            if stamp is not None:  # single-event requests only carry stamps
                request = prepared[0].request
                event = deliveries[0].event
                speed = self.config.speed
                body = stamp.body(
                    request.body, self.wall_origin_ms + round((event.timestamp_ms - self.origin_ms) / speed)
                )
                # Same length, same limits: the encoder's oversize verdict still holds.
                if len(body) == len(request.body):
                    return [
                        WireRequest(
                            request.method,
                            request.path,
                            body,
                            request.content_type,
                            request.event_ids,
                            request.oversize,
                        )
                    ]
        if len(deliveries) == 1:
            return [self.encoder.encode(self._event(deliveries[0]))]
        requests = self.encoder.batches([self._event(d) for d in deliveries], max_items=len(deliveries))
        if not in_order(requests, deliveries):
            raise RuntimeError(f"{self.encoder.api} encoder reordered or lost events of a batch")
        return requests

    def _headers_for(self, content_type: str) -> dict[str, str]:
        headers = self._headers.get(content_type)
        if headers is None:
            headers = {**self._auth, "Content-Type": content_type}
            self._headers[content_type] = headers
        return headers

    def _request_headers(self, content_type: str, clock_ms: int) -> Mapping[str, str]:
        """An attempt's headers: auth and content type, and on the scaled clock the simulated
        instant it is sent at (``clock_ms``) for a virtual-clock target."""
        headers = self._headers_for(content_type)
        return {**headers, CLOCK_HEADER: str(clock_ms)} if self._scaled else headers

    def _send(self, job: ShopperJob, planned: PlannedSend, send: SendFn, arrival_ms: int) -> None:
        """Send one planned send (one request, or several if a batch had to be split).

        Its deliveries enter the ledger now, arriving at ``arrival_ms`` (simulated), and each
        is settled exactly once: by its request's answer, or ``given_up`` if the send is cut
        short (the test ended, or the greenlet was killed while waiting for an answer).
        """
        ledger = self.ledger
        deliveries = planned.deliveries
        if len(deliveries) != 1:
            self._send_batch(job, planned, send, arrival_ms)
            return
        # One delivery, one request: the common send, with its first attempt inline. Per
        # request this is the load generator's own cost next to Locust's, so it avoids the
        # general path's lists, slices and calls (same ledger lines, same Locust requests).
        # A plain acknowledgement is planned and settled in one ledger call; anything else
        # (a retry, a rejection, a cut) plans a token first, so the delivery is still settled
        # exactly once.
        delivery = deliveries[0]
        token: int | None = None
        settled = False  # _attempt settles the token or leaves it open (a kill while it waits)
        try:
            request, body = self._single(planned)
            if request.oversize and not self.config.send_oversize:
                token = ledger.plan(delivery, arrival_ms=arrival_ms)
                self._attempt(job, planned.name, request, body, [token], send, arrival_ms)
                settled = True
                return
            headers = self._request_headers(request.content_type, arrival_ms)
            context = {"event_id": request.event_ids[0], "shopper": job.shopper, "events": 1}
            verdict = send(request, planned.name, context, headers, body)
            if verdict.ok and not verdict.rejected:
                ledger.count_attempt(retry=False)
                ledger.acknowledged(delivery, arrival_ms, verdict.status, 1)
            else:
                token = ledger.plan(delivery, arrival_ms=arrival_ms)
                self._attempt(job, planned.name, request, body, [token], send, arrival_ms, first=verdict)
            settled = True
        finally:
            if not settled:
                if token is None:
                    token = ledger.plan(delivery, arrival_ms=arrival_ms)
                ledger.settle(token, State.GIVEN_UP, reason=ENDED_REASON)

    def _single(self, planned: PlannedSend) -> tuple[WireRequest, bytes]:
        """The request carrying a one-delivery send and the body to send: prepared (its body
        re-stamped in wall mode) or encoded now."""
        prepared = planned.prepared
        if prepared:
            ready = prepared[0]
            request = ready.request
            body = request.body
            if not self._restamp:
                return request, body
            stamp = ready.stamp
            if stamp is not None:
                render = stamp.render
                if render is None:  # the body does not depend on the time
                    return request, body
                at = stamp.at
                width = stamp.width
                timestamp_ms = planned.deliveries[0].event.timestamp_ms
                rendered = render(
                    self.wall_origin_ms + round((timestamp_ms - self.origin_ms) / self.config.speed)
                ).encode()
                # Same length, same limits: the encoder's oversize verdict still holds.
                if len(rendered) == width:
                    return request, body[:at] + rendered + body[at + width :]
        request = self.encoder.encode(self._event(planned.deliveries[0]))
        return request, request.body

    def _send_batch(self, job: ShopperJob, planned: PlannedSend, send: SendFn, arrival_ms: int) -> None:
        """:meth:`_send` for a send carrying several deliveries (one request or a split batch)."""
        ledger = self.ledger
        tokens = [ledger.plan(d, arrival_ms=arrival_ms) for d in planned.deliveries]
        settled = 0  # tokens[:settled] are settled; _attempt settles all of its tokens or none
        try:
            requests = self._encode(planned)
            whole = len(requests) == 1
            for request in requests:
                count = len(request.event_ids)
                carried = tokens if whole else tokens[settled : settled + count]
                name = planned.name if whole else "batch"
                self._attempt(job, name, request, request.body, carried, send, arrival_ms)
                settled += count
        finally:
            for token in tokens[settled:]:
                ledger.settle(token, State.GIVEN_UP, reason=ENDED_REASON)

    def _attempt(
        self,
        job: ShopperJob,
        name: str,
        request: WireRequest,
        body: bytes,
        carried: list[int],
        send: SendFn,
        arrival_ms: int,
        first: Verdict | None = None,
    ) -> None:
        """Send ``request`` with ``body`` (retrying 429/5xx/no answer) and settle the ``carried`` tokens.

        ``first``: the verdict of a first attempt the caller already made. The only yields are
        inside ``send`` and the backoff wait, before any token is settled, so a kill leaves
        either all of ``carried`` open or all settled.
        """
        ledger = self.ledger
        config = self.config
        if request.oversize and not config.send_oversize:
            for token in carried:
                ledger.settle(token, State.REJECTED, reason=OVERSIZE_REASON)
            return
        context = {"event_id": request.event_ids[0], "shopper": job.shopper, "events": len(carried)}
        attempt = 0
        verdict = first
        while True:
            attempt += 1
            if verdict is None:
                clock_ms = arrival_ms if attempt == 1 else self.scaled_now_ms()
                verdict = send(
                    request, name, context, self._request_headers(request.content_type, clock_ms), body
                )
            status = verdict.status
            if verdict.ok and not verdict.rejected:  # the common case: every item acknowledged
                ledger.count_attempt(retry=attempt > 1)
                for token in carried:
                    ledger.acknowledge(token, status, attempt)
                return
            no_answer = status == 0
            ledger.count_attempt(
                retry=attempt > 1, http_error=not verdict.ok and not no_answer, connection_error=no_answer
            )
            if not verdict.retry:
                rejected = verdict.rejected
                for index, token in enumerate(carried):
                    reason = rejected.get(index)
                    if reason is None:
                        ledger.acknowledge(token, status, attempt)
                    else:
                        ledger.settle(token, State.REJECTED, status=status, reason=reason, attempts=attempt)
                return
            backoff = min(1.0, config.backoff_s * 2 ** (attempt - 1))
            if attempt > config.retries or self.abort.wait(backoff):
                reason = f"{verdict.message} (after {attempt} attempts)"
                for token in carried:
                    ledger.settle(
                        token, State.GIVEN_UP, status=status or None, reason=reason, attempts=attempt
                    )
                return
            verdict = None
