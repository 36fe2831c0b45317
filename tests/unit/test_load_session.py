"""The load session without Locust: a fake send function plays the target.

Runs on gevent (the test process is patched by conftest). No assertion depends on timing:
speeds are huge so every wait is ~0, and the assertions are about accounting.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import orjson
import pytest

from generator.credentials import LOCAL_DEFAULTS
from generator.events import CallType, Delivery, Event, Source
from generator.load.messages import DONE, LEDGER, Collector
from generator.load.outcome import Verdict, classify
from generator.load.prepared import prepared_jobs
from generator.load.schedule import ENDED_REASON, build_job
from generator.load.session import LoadSession, SessionConfig
from generator.wire import encoder_for


def shopper_deliveries(k: int, start: int, n: int, *, gap_ms: int = 1_000) -> list[Delivery]:
    out = []
    for i in range(n):
        ev = Event(
            id=f"S{k:03d}E{i:03d}",
            shopper=k,
            seq=i,
            type=CallType.TRACK,
            name="Product Viewed",
            timestamp_ms=start + i * gap_ms,
            user_id=None,
            anonymous_id=f"anon-{k}",
            properties={"product_id": "p1"},
            context={},
            source=Source.WEB,
        )
        out.append(
            Delivery(event=ev, truth_id=ev.id, arrival_ms=start + i * gap_ms, dropped=(i == n - 1 and k == 1))
        )
    return out


def jobs(
    count: int, *, speed: float, per_shopper: int = 4, gap_ms: int = 1_000, batch: int = 1, spacing_ms=500
):
    for k in range(count):
        start = 1_000_000 + k * spacing_ms
        yield build_job(
            k,
            start,
            shopper_deliveries(k, start, per_shopper, gap_ms=gap_ms),
            origin_ms=1_000_000,
            speed=speed,
            batch_size=batch,
            batch_window_ms=10_000,
        )


class Target:
    """Answers by a script of statuses (cycled); records what it got."""

    def __init__(self, statuses=(200,), body=b"{}"):
        self.statuses = itertools.cycle(statuses)
        self.body = body
        self.requests = []

    def __call__(self, request, name, context, headers, body):
        # The request as it went on the wire: with the body actually sent (re-stamped in wall mode).
        self.requests.append((replace(request, body=body), name, dict(context), dict(headers)))
        status = next(self.statuses)
        return classify(status, self.body, len(request.event_ids))


def run_session(tmp_path, source, target, *, users=4, config=None, stop_after=None, wall_ms=None):
    messages = []
    collector = Collector(tmp_path, expected=1)

    def emit(kind, data):
        messages.append(kind)
        (collector.on_ledger if kind == LEDGER else collector.on_done)(
            orjson.loads(orjson.dumps(data)) if kind == DONE else data
        )

    import gevent
    import gevent.event

    session = LoadSession(
        source,
        encoder=encoder_for("pipelines"),
        creds=LOCAL_DEFAULTS,
        config=config or SessionConfig(speed=1e6, flush_every_s=0.01),
        emit=emit,
        origin_ms=1_000_000,
        **({"wall_ms": wall_ms} if wall_ms is not None else {}),
    )
    session.start()

    def user():
        while not session.finished.is_set():
            turn = session.take(timeout=0.05)
            if turn is not None:
                session.replay(turn, target)

    pool = [gevent.spawn(user) for _ in range(users)]
    if stop_after is not None:
        gevent.sleep(stop_after)
        session.stop(0)
    assert session.wait(30), "session did not finish"
    gevent.joinall(pool, timeout=5)
    collector.close()
    rows = [orjson.loads(line) for line in (tmp_path / "ledger.ndjson").read_bytes().splitlines()]
    return session, collector, rows, messages


def test_every_planned_delivery_is_settled_once_and_the_ledger_reaches_the_master(tmp_path):
    target = Target()
    session, collector, rows, messages = run_session(tmp_path, jobs(10, speed=1e6), target)
    counts = session.ledger.counts
    assert counts.planned == 40 and counts.settled == 40
    assert counts.dropped_by_fault == 1 and counts.acknowledged == 39
    assert len(rows) == 40 and len({(r["event_id"], r["state"]) for r in rows}) == 40
    assert messages[-1] == DONE
    summary = collector.summary()
    assert summary["reconciled"] and summary["shoppers_started"] == 10
    # Locust request metadata: bounded names, ids in the context, credentials in headers only
    names = {name for _, name, _, _ in target.requests}
    assert names == {"track: Product Viewed"}
    assert all(ctx["event_id"].startswith("S") and "shopper" in ctx for _, _, ctx, _ in target.requests)


def test_partial_batches_rejections_and_retries_are_accounted(tmp_path):
    body = b'{"errors": [{"batch_index": 0, "message": "bad"}]}'
    target = Target(statuses=(207,), body=body)
    session, _, rows, _ = run_session(tmp_path, jobs(3, speed=1e6, batch=10), target)
    counts = session.ledger.counts
    assert counts.rejected == 3  # item 0 of each shopper's one batch
    assert counts.settled == counts.planned
    assert {r["reason"] for r in rows if r["state"] == "rejected"} == {"bad"}
    assert {name for _, name, _, _ in target.requests} == {"batch"}

    flaky = Target(statuses=(503,))
    config = SessionConfig(speed=1e6, retries=1, backoff_s=0.0, flush_every_s=0.01)
    session, _, rows, _ = run_session(tmp_path / "b", jobs(2, speed=1e6), flaky, config=config)
    assert session.ledger.counts.given_up == session.ledger.counts.planned - 1  # one dropped by fault
    assert all(r["attempts"] == 2 for r in rows if r["state"] == "given_up")
    assert len(flaky.requests) == 2 * (session.ledger.counts.planned - 1)


def test_long_think_times_park_the_shopper_and_free_the_user(tmp_path):
    # 2 s simulated gaps at speed 10 = 0.2 s wall > park_s: each shopper is parked between sends.
    config = SessionConfig(speed=10, park_s=0.05, flush_every_s=0.01)
    session, _, _, _ = run_session(
        tmp_path, jobs(3, speed=10, per_shopper=3, gap_ms=2_000), Target(), users=1, config=config
    )
    assert session.turns_parked == 5  # 2 gaps per shopper; shopper 1's last delivery is dropped by a fault
    assert session.ledger.counts.acknowledged == 8
    assert session.ledger.counts.settled == session.ledger.counts.planned


def test_a_stop_records_waiting_shoppers_as_late_and_gives_up_what_was_not_sent(tmp_path):
    # One user, shoppers whose sends are far apart: the user is busy, others wait in the queue.
    config = SessionConfig(speed=1.0, park_s=1e9, late_ms=1.0, flush_every_s=0.01)
    _, collector, rows, _ = run_session(
        tmp_path,
        jobs(5, speed=1.0, per_shopper=3, gap_ms=60_000, spacing_ms=1),
        Target(),
        users=1,
        config=config,
        stop_after=0.2,
    )
    summary = collector.summary()
    assert summary["shoppers_unstarted"] >= 1
    assert summary["start_lag"]["late"] >= summary["shoppers_unstarted"]
    assert summary["reconciled"]
    assert any(r["state"] == "given_up" and r["reason"] == ENDED_REASON for r in rows)


def test_verdict_status_drives_ledger_fields():
    assert Verdict(ok=True, status=200).status == 200
    with pytest.raises(TypeError):
        Verdict()  # type: ignore[call-arg]


@pytest.mark.parametrize("clock", ["wall", "scaled"])
@pytest.mark.parametrize("batch", [1, 3])
def test_prepared_requests_send_exactly_what_encoding_at_send_time_sends(tmp_path, clock, batch):
    config = SessionConfig(speed=1e6, clock=clock, flush_every_s=0.01)
    sent = {}
    for prepared in (False, True):
        source = jobs(6, speed=1e6, batch=batch)
        if prepared:
            source = prepared_jobs(source, encoder_for("pipelines"), stamps=config.restamps)
        target = Target()
        run_session(
            tmp_path / str(prepared), source, target, config=config, wall_ms=lambda: 1_800_000_000_000
        )
        sent[prepared] = sorted((r.path, r.body, r.event_ids) for r, _, _, _ in target.requests)
    assert sent[True] == sent[False] and len(sent[True]) == (23 if batch == 1 else 11)


def test_ledger_acknowledge_writes_the_settle_line_byte_for_byte():
    import io

    from generator.deliver.ledger import Ledger, State

    deliveries = shopper_deliveries(3, 1_000_000, 3)
    lines = []
    for way in ("settle", "acknowledge", "acknowledged"):
        out = io.BytesIO()
        ledger = Ledger(stream=out)
        for i, delivery in enumerate(deliveries):
            if way == "acknowledged":  # planned and settled in one call
                ledger.acknowledged(delivery, 2_000_000 + i, 202, i + 1)
                continue
            token = ledger.plan(delivery, arrival_ms=2_000_000 + i)
            if way == "acknowledge":
                ledger.acknowledge(token, 202, i + 1)
            else:
                ledger.settle(token, State.ACKNOWLEDGED, status=202, attempts=i + 1)
        ledger.flush()
        counts = ledger.counts
        assert counts.planned == counts.acknowledged == 3 and counts.pending == 0
        if way == "acknowledge":
            with pytest.raises(Exception, match="settled twice"):
                ledger.acknowledge(0, 200, 1)
        lines.append(out.getvalue())
    assert lines[0] == lines[1] == lines[2] and lines[0].count(b"\n") == 3


def test_a_send_killed_while_waiting_for_its_answer_is_given_up_once(tmp_path):
    import gevent
    import gevent.event

    from generator.load.session import Turn

    messages = []
    session = LoadSession(
        iter(()),
        encoder=encoder_for("pipelines"),
        creds=LOCAL_DEFAULTS,
        config=SessionConfig(speed=1e6, flush_every_s=0.01),
        emit=lambda kind, data: messages.append((kind, data)),
        origin_ms=1_000_000,
    )
    answered = gevent.event.Event()

    def hanging_target(request, name, context, headers, body):
        answered.wait(30)  # never set: the user is killed while it waits
        raise AssertionError("not reached")

    job = next(jobs(1, speed=1e6, per_shopper=3))
    session.t0 = session.monotonic()
    user = gevent.spawn(session.replay, Turn(job, session.t0), hanging_target)
    gevent.sleep(0.05)
    user.kill(block=True, timeout=5)
    counts = session.ledger.counts
    assert counts.planned == 3 and counts.given_up == 3 and counts.pending == 0
    assert counts.acknowledged == 0


def test_deferred_acknowledgements_keep_the_ledger_in_settlement_order():
    import io

    from generator.deliver.ledger import Ledger, State

    deliveries = shopper_deliveries(4, 1_000_000, 5)
    outputs = []
    for deferred in (False, True):
        out = io.BytesIO()
        ledger = Ledger(stream=out)
        for i, delivery in enumerate(deliveries):
            if i % 2 == 0:
                if deferred:
                    ledger.acknowledged(delivery, 7_000 + i, 200, 1)
                else:
                    ledger.settle(
                        ledger.plan(delivery, arrival_ms=7_000 + i),
                        State.ACKNOWLEDGED,
                        status=200,
                        attempts=1,
                    )
            else:
                ledger.settle(
                    ledger.plan(delivery, arrival_ms=7_000 + i), State.REJECTED, status=400, reason="bad"
                )
            if i == 2:
                ledger.flush()  # a flush in the middle renders what waits
        ledger.flush()
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]
    assert [orjson.loads(line)["event_id"] for line in outputs[1].splitlines()] == [
        d.event.id for d in deliveries
    ]


@pytest.mark.parametrize("batch", [1, 3])
def test_the_scaled_clock_stamps_every_attempt_and_only_that_clock_does(tmp_path, batch):
    # A virtual-clock target reads each request's simulated send instant from X-Shopsim-Clock:
    # the planned arrival on a first attempt, the scaled now (never earlier) on a retry.
    from generator.load.session import CLOCK_HEADER

    for clock in ("scaled", "wall"):
        config = SessionConfig(speed=1e6, clock=clock, retries=1, backoff_s=0.0, flush_every_s=0.01)
        target = Target(statuses=(503, 200))  # one user: every request fails once, then passes
        session, _, rows, _ = run_session(
            tmp_path / clock, jobs(2, speed=1e6, batch=batch), target, users=1, config=config
        )
        assert session.ledger.counts.settled == session.ledger.counts.planned
        headers = [h for _, _, _, h in target.requests]
        assert all(h["Content-Type"] == "application/json" and "Authorization" in h for h in headers)
        if clock == "wall":
            assert not any(CLOCK_HEADER in h for h in headers)
            continue
        assert all(r["attempts"] == 2 for r in rows if r["state"] == "acknowledged")
        arrivals = {r["event_id"]: r["arrival_ms"] for r in rows}
        for first, retry in zip(target.requests[::2], target.requests[1::2], strict=True):
            assert first[0].event_ids == retry[0].event_ids
            planned = arrivals[first[0].event_ids[0]]
            assert int(first[3][CLOCK_HEADER]) == planned
            assert int(retry[3][CLOCK_HEADER]) >= planned
