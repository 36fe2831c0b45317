"""The HTTP sender's logic through FunctionTransport: no sockets, no sleeping (fake clocks)."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime
from email.utils import format_datetime

import gevent
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.credentials import LOCAL_DEFAULTS
from generator.deliver.http import (
    ARRIVALS_HEADER,
    CLOCK_HEADER,
    VIRTUAL_BATCH_WINDOW_MS,
    RateLimiter,
    RetryPolicy,
    arrival_offsets,
    parse_retry_after,
    send_plan,
)
from generator.deliver.ledger import Ledger, State
from generator.deliver.transport import FunctionTransport, Request, Response, TransportError
from generator.errors import DeliveryError
from generator.events import CallType, Delivery
from generator.wire import encoder_for
from tests.support.deliveries import T0, make_event, make_plan

OK = Response(200, {}, b"{}")


class FakeClock:
    """Monotonic and wall time that only move when the sender sleeps."""

    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_800_000_000.0 + self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def send(plan, handler, *, api="pipelines", fake=None, **kw):
    """Run send_plan on a FunctionTransport; returns (counts, transport, ledger records, fake clock)."""
    transport = FunctionTransport(handler)
    clock = fake or FakeClock()
    out = io.BytesIO()
    ledger = Ledger(stream=out)
    kw.setdefault("clock", "virtual")
    counts = send_plan(
        plan,
        target="http://127.0.0.1:9",
        encoder=encoder_for(api, creds=LOCAL_DEFAULTS),
        creds=LOCAL_DEFAULTS,
        ledger=ledger,
        transport=transport,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        wall_s=clock.wall,
        **kw,
    )
    ledger.close()
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    return counts, transport, records, clock


def ids_in(req: Request) -> list[str]:
    """Event ids carried by a Pipelines or Track v2 request body (batch or single)."""
    doc = orjson.loads(req.body)
    items = doc.get("batch", [doc])
    return [item.get("messageId") or item.get("id") for item in items]


def scripted(*responses):
    """A handler answering with ``responses`` in order (a TransportError instance is raised), then 200."""
    queue = list(responses)

    def handler(_req: Request) -> Response:
        if not queue:
            return OK
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handler


# --------------------------------------------------------------------------- happy path


def test_all_acknowledged_one_ledger_line_each():
    plan = make_plan(10)
    counts, transport, records, _ = send(plan, scripted(), clock="wall")
    assert counts.planned == counts.acknowledged == 10
    assert counts.ok and counts.pending == 0
    assert sorted(r["event_id"] for r in records) == sorted(d.event.id for d in plan)
    record = records[0]
    assert set(record) == {
        "event_id", "truth_id", "shopper", "name", "state", "status",
        "reason", "attempts", "arrival_ms", "faults",
    }  # fmt: skip
    assert {r["state"] for r in records} == {"acknowledged"}
    assert {r["status"] for r in records} == {200}
    assert len(transport.requests) == 1  # one batch
    assert transport.requests[0].path == "/v1/batch"
    assert transport.requests[0].headers["Authorization"].startswith("Basic ")


def test_dropped_deliveries_are_settled_and_never_sent():
    plan = make_plan(6, dropped=[1, 4])
    counts, transport, records, _ = send(plan, scripted())
    assert counts.dropped_by_fault == 2 and counts.acknowledged == 4
    sent = [i for req in transport.requests for i in ids_in(req)]
    assert plan[1].event.id not in sent and plan[4].event.id not in sent
    dropped = [r for r in records if r["state"] == "dropped_by_fault"]
    assert {r["event_id"] for r in dropped} == {plan[1].event.id, plan[4].event.id}
    assert all(r["status"] is None and r["attempts"] == 0 and r["faults"] == ["drop"] for r in dropped)


def test_retry_duplicates_are_sent_as_planned_and_each_settled():
    plan = make_plan(4, retry_duplicates=[2])
    counts, transport, records, _ = send(plan, scripted(), clock="wall")
    assert counts.planned == 5 and counts.acknowledged == 5
    sent = Counter(i for req in transport.requests for i in ids_in(req))
    assert sent[plan[2].event.id] == 2
    assert Counter(r["event_id"] for r in records)[plan[2].event.id] == 2


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_status_then_success(status):
    counts, transport, records, clock = send(
        make_plan(3), scripted(Response(status, {}, b"busy")), clock="wall"
    )
    assert counts.acknowledged == 3 and counts.retries == 1 and counts.http_errors == 1
    assert len(transport.requests) == 2
    assert transport.requests[0].body == transport.requests[1].body
    assert "X-Retry-Count" not in transport.requests[0].headers
    assert transport.requests[1].headers["X-Retry-Count"] == "1"
    assert {r["attempts"] for r in records} == {2}
    assert len(clock.slept) == 1 and 0 <= clock.slept[0] <= RetryPolicy().base_s


def test_connection_error_then_success():
    counts, transport, _, _ = send(make_plan(2), scripted(TransportError("reset")), clock="wall")
    assert counts.acknowledged == 2 and counts.connection_errors == 1
    assert len(transport.requests) == 2


def test_backoff_is_exponential_full_jitter_and_capped():
    policy = RetryPolicy(max_attempts=8, base_s=0.2, max_backoff_s=1.0)
    counts, _, records, clock = send(
        make_plan(1), lambda _r: Response(503, {}, b"down"), clock="wall", retry=policy
    )
    assert counts.given_up == 1 and records[0]["attempts"] == 8
    assert len(clock.slept) == 7
    ceilings = [min(1.0, 0.2 * 2**k) for k in range(7)]
    assert all(0 <= s <= c for s, c in zip(clock.slept, ceilings, strict=True))


def test_jitter_is_seeded_but_never_changes_what_is_sent():
    runs = []
    for seed in (1, 1, 2):
        _, transport, _, clock = send(
            make_plan(3), scripted(Response(500), Response(500)), clock="wall", jitter_seed=seed
        )
        runs.append((clock.slept, [r.body for r in transport.requests]))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]
    assert runs[0][1] == runs[2][1]


def test_retry_after_seconds_is_honoured():
    counts, _, _, clock = send(make_plan(2), scripted(Response(429, {"retry-after": "7"}, b"")), clock="wall")
    assert counts.acknowledged == 2
    assert clock.slept == [7.0]


def test_retry_after_http_date_is_honoured():
    clock = FakeClock()
    when = datetime.fromtimestamp(clock.wall() + 30, UTC)
    header = {"retry-after": format_datetime(when, usegmt=True)}
    counts, _, _, clock = send(make_plan(2), scripted(Response(503, header, b"")), clock="wall")
    assert counts.acknowledged == 2
    assert clock.slept == [pytest.approx(30.0, abs=1.0)]


def test_retry_after_is_capped():
    policy = RetryPolicy(max_retry_after_s=60.0)
    _, _, _, clock = send(
        make_plan(1), scripted(Response(429, {"retry-after": "86400"}, b"")), clock="wall", retry=policy
    )
    assert clock.slept == [60.0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now_s=0.0) == expected


def test_parse_retry_after_date_in_the_past_is_zero():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now_s=1_800_000_000.0) == 0.0


def test_given_up_after_max_attempts_on_5xx():
    counts, transport, records, _ = send(
        make_plan(3),
        lambda _r: Response(500, {}, b"internal"),
        clock="wall",
        retry=RetryPolicy(max_attempts=3),
    )
    assert counts.given_up == 3 and counts.acknowledged == 0 and not counts.ok
    assert len(transport.requests) == 3
    assert {r["state"] for r in records} == {"given_up"}
    assert {r["status"] for r in records} == {500}
    assert all("after 3 attempts" in r["reason"] and "internal" in r["reason"] for r in records)


def test_given_up_when_never_connected():
    def refuse(_r):
        raise TransportError("refused", "connection refused")

    counts, _, records, _ = send(make_plan(2), refuse, clock="wall", retry=RetryPolicy(max_attempts=4))
    assert counts.given_up == 2 and counts.connection_errors == 4
    assert {r["status"] for r in records} == {None}
    assert all("refused" in r["reason"] for r in records)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 301])
def test_other_client_errors_are_rejected_without_retry(status):
    body = b'{"meta":{"errors":["name is required"]}}'
    counts, transport, records, clock = send(
        make_plan(3), lambda _r: Response(status, {}, body), clock="wall"
    )
    assert counts.rejected == 3 and counts.retries == 0
    assert len(transport.requests) == 1 and clock.slept == []
    assert {r["status"] for r in records} == {status}
    assert all("name is required" in r["reason"] and r["attempts"] == 1 for r in records)


def test_track_v2_207_rejects_only_the_named_items():
    plan = make_plan(4)
    body = orjson.dumps(
        {"errors": [{"batch_index": 1, "reason": "invalid", "field": "name", "message": "too long"}]}
    )
    counts, transport, records, _ = send(
        plan, lambda _r: Response(207, {}, body), api="track-v2", clock="wall"
    )
    assert counts.acknowledged == 3 and counts.rejected == 1
    assert transport.requests[0].path == "/api/v2/batch"
    position = ids_in(transport.requests[0])[1]
    rejected = [r for r in records if r["state"] == "rejected"]
    assert [r["event_id"] for r in rejected] == [position]
    assert rejected[0]["status"] == 207 and "too long" in rejected[0]["reason"]


def test_207_with_unreadable_body_acknowledges_all():
    counts, _, _, _ = send(
        make_plan(3), lambda _r: Response(207, {}, b"<html>"), api="track-v2", clock="wall"
    )
    assert counts.acknowledged == 3


def test_pipelines_200_acknowledges_everything():
    body = orjson.dumps({"errors": [{"batch_index": 0}]})  # only a 207 is read item by item
    counts, _, _, _ = send(make_plan(3), lambda _r: Response(200, {}, body), clock="wall")
    assert counts.acknowledged == 3


# --------------------------------------------------------------------------- oversize


def _oversize_plan() -> list[Delivery]:
    plan = make_plan(3)
    big = make_event(99, shopper=1, user_id="u1", properties={"blob": "x" * 40_000})
    plan.insert(
        1, Delivery(event=big, truth_id=big.id, arrival_ms=plan[0].arrival_ms + 1, faults=("oversize",))
    )
    return plan


def test_oversize_is_rejected_unsent_with_its_size():
    plan = _oversize_plan()
    counts, transport, records, _ = send(plan, scripted(), clock="wall")
    assert counts.rejected == 1 and counts.acknowledged == 3
    sent = [i for req in transport.requests for i in ids_in(req)]
    assert plan[1].event.id not in sent
    (rejected,) = [r for r in records if r["state"] == "rejected"]
    assert rejected["reason"].startswith("oversize: ")
    assert "bytes > 32768" in rejected["reason"] and rejected["status"] is None


def test_an_overlong_name_is_rejected_unsent_with_that_reason():
    plan = make_plan(2)
    long_name = make_event(98, shopper=1, user_id="u1", name="Viewed " + "x" * 200)
    plan.insert(1, Delivery(event=long_name, truth_id=long_name.id, arrival_ms=plan[0].arrival_ms + 1))
    counts, _, records, _ = send(plan, scripted(), clock="wall")
    (rejected,) = [r for r in records if r["state"] == "rejected"]
    assert counts.rejected == 1 and "name over the API's limit (event names 100 B" in rejected["reason"]


def test_send_oversize_sends_it():
    plan = _oversize_plan()
    counts, transport, _, _ = send(plan, scripted(), clock="wall", send_oversize=True)
    assert counts.acknowledged == 4
    assert plan[1].event.id in [i for req in transport.requests for i in ids_in(req)]


# --------------------------------------------------------------------------- batching


def test_batches_cut_by_count():
    counts, transport, _, _ = send(make_plan(250), scripted(), clock="wall", batch_size=100)
    assert counts.acknowledged == 250
    assert [len(ids_in(r)) for r in transport.requests] == [100, 100, 50]


def test_batch_size_one_uses_single_call_endpoints():
    plan = make_plan(3)
    plan[0] = Delivery(
        event=make_event(0, type=CallType.IDENTIFY, properties={"email": "u0@example.com"}),
        truth_id=plan[0].truth_id,
        arrival_ms=plan[0].arrival_ms,
    )
    counts, transport, _, _ = send(plan, scripted(), clock="wall", batch_size=1)
    assert counts.acknowledged == 3
    assert [r.path for r in transport.requests] == ["/v1/identify", "/v1/track", "/v1/track"]


def test_non_batching_api_sends_per_call():
    counts, transport, _, _ = send(make_plan(3), scripted(), api="track-v1", clock="wall", batch_size=50)
    assert counts.acknowledged == 3 and len(transport.requests) == 3
    assert all(r.path.startswith("/api/v1/customers/") for r in transport.requests)


# --------------------------------------------------------------------------- virtual clock


def test_virtual_clock_header_order_and_window():
    plan = make_plan(40, step_ms=300)  # 12 s of arrivals
    counts, transport, _, clock = send(plan, scripted(), clock="virtual", batch_window_ms=1000)
    assert counts.acknowledged == 40
    arrival = {d.event.id: d.arrival_ms for d in plan}
    stamps = [int(r.headers[CLOCK_HEADER]) for r in transport.requests]
    assert stamps == sorted(stamps)
    carried = [ids_in(r) for r in transport.requests]
    assert [i for ids in carried for i in ids] == [d.event.id for d in plan]  # arrival order
    for stamp, ids in zip(stamps, carried, strict=True):
        assert stamp == arrival[ids[0]]
        assert arrival[ids[-1]] - arrival[ids[0]] <= 1000
    assert clock.slept == []  # virtual time never sleeps


def test_virtual_clock_keeps_timestamps():
    plan = make_plan(3, latency_ms=5000)
    _, transport, _, _ = send(plan, scripted(), clock="virtual", batch_window_ms=10_000)
    sent = orjson.loads(transport.requests[0].body)["batch"]
    assert [m["timestamp"] for m in sent] == [
        datetime.fromtimestamp(d.event.timestamp_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        for d in plan
    ]


def test_virtual_retry_blocks_later_requests():
    plan = make_plan(6, step_ms=2000)  # one event per request with a 1 s window
    counts, transport, _, _ = send(
        plan, scripted(Response(503), Response(503)), clock="virtual", batch_window_ms=1000
    )
    assert counts.acknowledged == 6
    stamps = [int(r.headers[CLOCK_HEADER]) for r in transport.requests]
    assert stamps == sorted(stamps)
    assert stamps[:3] == [plan[0].arrival_ms] * 3  # retried first, nothing overtook it


def test_wall_clock_sends_no_clock_header():
    _, transport, _, _ = send(make_plan(2), scripted(), clock="wall")
    assert CLOCK_HEADER not in transport.requests[0].headers


def _offsets(req: Request) -> list[int]:
    return [int(part) for part in req.headers[ARRIVALS_HEADER].split(",")]


@pytest.mark.parametrize("api", ["pipelines", "browser", "track-v2"])
def test_virtual_batches_carry_every_items_arrival(api: str):
    plan = make_plan(40, step_ms=300)  # 12 s of arrivals: one request under the 60 s default window
    counts, transport, _, _ = send(plan, scripted(), api=api, clock="virtual")
    assert counts.acknowledged == 40 and len(transport.requests) == 1
    (req,) = transport.requests
    assert req.path in ("/v1/batch", "/v1/b", "/api/v2/batch")
    clock = int(req.headers[CLOCK_HEADER])
    assert clock == plan[0].arrival_ms
    arrival = {d.event.id: d.arrival_ms for d in plan}
    if api != "browser":  # the browser body is text/plain JSON with the same items
        assert [clock + off for off in _offsets(req)] == [arrival[i] for i in ids_in(req)]
    assert _offsets(req) == [d.arrival_ms - clock for d in plan]


def test_virtual_window_defaults_to_a_minute_and_stays_configurable():
    plan = make_plan(30, step_ms=5_000)  # 145 s of arrivals
    _, transport, _, _ = send(plan, scripted(), clock="virtual")
    assert len(transport.requests) == 3
    for req in transport.requests:
        assert _offsets(req)[-1] <= VIRTUAL_BATCH_WINDOW_MS
    _, transport, _, _ = send(plan, scripted(), clock="virtual", batch_window_ms=10_000)
    assert len(transport.requests) == 10 and all(
        _offsets(r) == [0, 5_000, 10_000] for r in transport.requests
    )


def test_virtual_single_calls_and_wall_batches_carry_no_arrivals():
    _, transport, _, _ = send(make_plan(3), scripted(), api="track-v1", clock="virtual")
    assert len(transport.requests) == 3
    assert all(ARRIVALS_HEADER not in r.headers and CLOCK_HEADER in r.headers for r in transport.requests)
    _, transport, _, _ = send(make_plan(3), scripted(), clock="virtual", batch_size=1)
    assert all(ARRIVALS_HEADER not in r.headers for r in transport.requests)
    _, transport, _, _ = send(make_plan(3), scripted(), clock="wall")
    assert all(ARRIVALS_HEADER not in r.headers for r in transport.requests)


def test_virtual_retries_resend_the_same_arrivals():
    plan = make_plan(5, step_ms=700)
    _, transport, _, _ = send(plan, scripted(Response(503)), clock="virtual")
    first, retry = transport.requests
    assert retry.headers["X-Retry-Count"] == "1"
    assert retry.headers[ARRIVALS_HEADER] == first.headers[ARRIVALS_HEADER] == "0,700,1400,2100,2800"


def test_virtual_byte_split_batches_restart_their_offsets():
    plan = make_plan(6, step_ms=1000)
    counts, transport, _, _ = send(plan, scripted(), clock="virtual", batch_size=2)
    assert counts.acknowledged == 6
    assert [r.headers[ARRIVALS_HEADER] for r in transport.requests] == ["0,1000"] * 3
    assert [int(r.headers[CLOCK_HEADER]) for r in transport.requests] == [d.arrival_ms for d in plan[::2]]


def test_virtual_batches_are_cut_where_arrivals_go_back():
    plan = make_plan(4, step_ms=1000)
    shuffled = [plan[0], plan[2], plan[1], plan[3]]  # a plan out of arrival order
    counts, transport, _, _ = send(shuffled, scripted(), clock="virtual")
    assert counts.acknowledged == 4
    for req in transport.requests:
        offsets = _offsets(req)
        assert offsets == sorted(offsets) and offsets[0] == 0
    assert [ids_in(r) for r in transport.requests] == [
        [plan[0].event.id, plan[2].event.id],
        [plan[1].event.id, plan[3].event.id],
    ]


def test_virtual_arrivals_header_stays_within_its_budget():
    plan = make_plan(3000, step_ms=19)  # 57 s of arrivals: 3000 offsets would be ~17 KB
    counts, transport, _, _ = send(plan, scripted(), clock="virtual", batch_size=5000)
    assert counts.acknowledged == 3000 and len(transport.requests) > 1
    assert all(len(r.headers[ARRIVALS_HEADER]) <= 8_000 for r in transport.requests)
    assert sum(len(_offsets(r)) for r in transport.requests) == 3000


@given(gaps=st.lists(st.integers(0, 90_000), min_size=1, max_size=40))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_arrival_offsets_rebuild_every_arrival(gaps: list[int]):
    plan = make_plan(len(gaps))
    arrival = T0
    items = []
    for token, (gap, delivery) in enumerate(zip(gaps, plan, strict=True)):
        arrival += gap
        items.append((token, Delivery(**{**_fields(delivery), "arrival_ms": arrival})))
    clock, header = arrival_offsets(items)
    offsets = [int(x) for x in header.split(",")]
    assert clock == items[0][1].arrival_ms and offsets[0] == 0
    assert [clock + off for off in offsets] == [d.arrival_ms for _, d in items]


def _fields(delivery: Delivery) -> dict:
    return {name: getattr(delivery, name) for name in Delivery.__slots__}


# --------------------------------------------------------------------------- wall clock timestamps


def _timestamps_ms(req: Request) -> dict[str, int]:
    out = {}
    for m in orjson.loads(req.body)["batch"]:
        when = datetime.strptime(m["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        out[m["messageId"]] = round(when.timestamp() * 1000)
    return out


def test_wall_clock_as_fast_as_possible_shifts_to_now_keeping_lateness():
    plan = make_plan(4, latency_ms=90_000)
    clock = FakeClock()
    _, transport, _, _ = send(plan, scripted(), clock="wall", keep_timestamps=False)
    now_ms = int(clock.wall() * 1000)
    sent = _timestamps_ms(transport.requests[0])
    for d in plan:
        assert sent[d.event.id] == now_ms - 90_000
    assert set(sent) == {d.event.id for d in plan}  # ids unchanged by the shift


def test_wall_clock_with_speed_waits_for_due_times_and_scales_offsets():
    plan = make_plan(5, step_ms=10_000)  # 40 s of arrivals
    clock = FakeClock()
    start_wall_ms = int(clock.wall() * 1000)
    counts, transport, _, clock = send(plan, scripted(), clock="wall", speed=10.0, batch_window_ms=500)
    assert counts.acknowledged == 5
    assert len(transport.requests) == 5  # 1 s apart at speed 10: beyond the 500 ms window
    assert sum(clock.slept) == pytest.approx(4.0)  # 40 s of plan at 10x
    for i, req in enumerate(transport.requests):
        (ts,) = _timestamps_ms(req).values()
        assert ts == start_wall_ms + i * 1000


def test_restamp_changes_only_the_timestamp():
    from dataclasses import replace

    from generator.deliver.http import restamp

    event = make_event(3, type=CallType.PAGE, name="Home", properties={"url": "https://shop.example.com/"})
    assert restamp(event, 42) == replace(event, timestamp_ms=42)
    assert restamp(event, 42).id == event.id and event.timestamp_ms != 42


def test_keep_timestamps_sends_originals():
    plan = make_plan(3)
    _, transport, _, _ = send(plan, scripted(), clock="wall", keep_timestamps=True)
    sent = _timestamps_ms(transport.requests[0])
    assert sent == {d.event.id: d.event.timestamp_ms for d in plan}


# --------------------------------------------------------------------------- ordering under concurrency


def test_wall_clock_never_overlaps_or_reorders_one_shoppers_requests():
    in_flight: Counter[int] = Counter()
    order: list[tuple[int, int]] = []
    plan = make_plan(60, shoppers=3)
    shopper_of = {d.event.id: d.event.shopper for d in plan}
    seq_of = {d.event.id: d.event.seq for d in plan}

    def handler(req: Request) -> Response:
        shoppers = {shopper_of[i] for i in ids_in(req)}
        for s in shoppers:
            assert in_flight[s] == 0, "two requests of one shopper in flight"
            in_flight[s] += 1
        gevent.sleep(0)  # let other workers run while this one is "on the wire"
        for i in ids_in(req):
            order.append((shopper_of[i], seq_of[i]))
        for s in shoppers:
            in_flight[s] -= 1
        return OK

    counts, _, _, _ = send(plan, handler, clock="wall", api="track-v1", concurrency=8)
    assert counts.acknowledged == 60
    for s in range(3):
        seqs = [q for sh, q in order if sh == s]
        assert seqs == sorted(seqs)


# --------------------------------------------------------------------------- rate limit


def test_rate_limiter_caps_requests_per_second():
    clock = FakeClock()
    limiter = RateLimiter(10.0, burst=1.0, now=clock.monotonic, sleep=clock.sleep)
    start = clock.t
    for _ in range(21):
        limiter.acquire()
    assert clock.t - start == pytest.approx(2.0)  # 1 free token, then 20 at 10/s


def test_rps_applies_to_every_attempt():
    plan = make_plan(5)
    _, transport, _, clock = send(plan, scripted(), clock="wall", batch_size=1, rps=2.0)
    assert len(transport.requests) == 5
    assert sum(clock.slept) == pytest.approx(2.0)  # 1 free, 4 more at 2/s


# --------------------------------------------------------------------------- invariants


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.lists(st.sampled_from([200, 207, 400, 408, 429, 500, 503, "reset"]), min_size=0, max_size=40),
    count=st.integers(min_value=0, max_value=30),
    batch_size=st.integers(min_value=1, max_value=8),
    clock=st.sampled_from(["virtual", "wall"]),
    drops=st.sets(st.integers(min_value=0, max_value=29), max_size=5),
)
def test_every_planned_delivery_settles_exactly_once(script, count, batch_size, clock, drops):
    queue = list(script)
    acknowledged_ids: Counter[str] = Counter()

    def handler(req: Request) -> Response:
        step = queue.pop(0) if queue else 200
        if step == "reset":
            raise TransportError("reset")
        if 200 <= step < 300:
            acknowledged_ids.update(ids_in(req))
        return Response(step, {}, b"{}")

    plan = make_plan(count, dropped=[d for d in drops if d < count], retry_duplicates=[0] if count else [])
    counts, _, records, _ = send(
        plan, handler, api="track-v2", clock=clock, batch_size=batch_size, retry=RetryPolicy(max_attempts=3)
    )
    assert counts.settled == counts.planned == len(plan) == len(records)
    states = Counter(r["state"] for r in records)
    assert states["acknowledged"] == counts.acknowledged
    assert states["dropped_by_fault"] == counts.dropped_by_fault == len([d for d in plan if d.dropped])
    # acknowledged in the ledger ⇔ carried by a request the server answered 2xx
    ledger_acked = Counter(r["event_id"] for r in records if r["state"] == "acknowledged")
    assert ledger_acked == acknowledged_ids


def test_ledger_is_balanced_when_interrupted():
    plan = make_plan(30)
    calls = {"n": 0}

    def handler(_req: Request) -> Response:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return OK

    out = io.BytesIO()
    ledger = Ledger(stream=out)
    with pytest.raises(KeyboardInterrupt):
        send_plan(
            iter(plan),
            target="http://127.0.0.1:9",
            encoder=encoder_for("pipelines"),
            creds=LOCAL_DEFAULTS,
            ledger=ledger,
            transport=FunctionTransport(handler),
            clock="virtual",
            batch_size=5,
            batch_window_ms=10_000,
        )
    counts = ledger.counts
    counts.check()
    assert counts.acknowledged == 10 and counts.given_up == counts.planned - 10
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) == counts.planned
    assert all(r["reason"] == "interrupted before an answer" for r in records if r["state"] == "given_up")


def test_unencodable_event_is_rejected_not_lost():
    plan = make_plan(3)
    bad = make_event(7, user_id=None, anonymous_id=None)  # Pipelines needs userId or anonymousId?
    plan.append(Delivery(event=bad, truth_id=bad.id, arrival_ms=plan[-1].arrival_ms + 1))

    class Picky:
        api = "pipelines"
        batching = True

        def __init__(self):
            self.inner = encoder_for("pipelines")

        def encode(self, event):
            return self.inner.encode(event)

        def batches(self, events, *, max_items=100):
            if any(e.id == bad.id for e in events):
                raise DeliveryError(f"event {bad.id} has neither userId nor anonymousId")
            return self.inner.batches(events, max_items=max_items)

        def auth_headers(self, creds):
            return self.inner.auth_headers(creds)

    out = io.BytesIO()
    ledger = Ledger(stream=out)
    transport = FunctionTransport(scripted())
    counts = send_plan(
        plan, target="http://x", encoder=Picky(), creds=LOCAL_DEFAULTS, ledger=ledger, transport=transport
    )
    assert counts.acknowledged == 3 and counts.rejected == 1
    ledger.close()
    (rejected,) = [orjson.loads(x) for x in out.getvalue().splitlines() if b'"rejected"' in x]
    assert rejected["event_id"] == bad.id and "not encodable" in rejected["reason"]


def test_requests_are_matched_to_items_by_id_even_if_an_encoder_reorders():
    plan = make_plan(6, retry_duplicates=[2])
    inner = encoder_for("pipelines")

    class Reversing:
        api = "pipelines"
        batching = True

        def encode(self, event):
            return inner.encode(event)

        def batches(self, events, *, max_items=100):
            return list(reversed(inner.batches(events, max_items=2)))

        def auth_headers(self, creds):
            return inner.auth_headers(creds)

    out = io.BytesIO()
    ledger = Ledger(stream=out)
    transport = FunctionTransport(lambda req: Response(400, {}, b",".join(i.encode() for i in ids_in(req))))
    counts = send_plan(plan, target="http://x", encoder=Reversing(), creds=LOCAL_DEFAULTS, ledger=ledger,
                       transport=transport)  # fmt: skip
    ledger.close()
    assert counts.rejected == 7
    for line in out.getvalue().splitlines():
        record = orjson.loads(line)
        assert record["event_id"] in record["reason"].split(",")  # settled with its own request's answer


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"clock": "later"}, "--clock"),
        ({"concurrency": 0}, "--concurrency"),
        ({"batch_size": 0}, "--batch-size"),
        ({"batch_window_ms": -1}, "--batch-window"),
        ({"speed": 0.0}, "--speed"),
        ({"rps": -1.0}, "--rps"),
    ],
)
def test_bad_arguments_are_delivery_errors(kwargs, flag):
    with pytest.raises(DeliveryError, match=flag):
        send_plan(
            [], target="http://127.0.0.1:9", encoder=encoder_for("pipelines"), creds=LOCAL_DEFAULTS,
            ledger=Ledger(), transport=FunctionTransport(scripted()), **kwargs,
        )  # fmt: skip


def test_missing_key_is_a_delivery_error_before_sending():
    from generator.credentials import Credentials

    transport = FunctionTransport(scripted())
    with pytest.raises(DeliveryError, match="CIO_PIPELINES_KEY"):
        send_plan(
            make_plan(2), target="http://127.0.0.1:9", encoder=encoder_for("pipelines"), creds=Credentials(),
            ledger=Ledger(), transport=transport,
        )  # fmt: skip
    assert transport.requests == []


def test_caller_transport_is_not_closed():
    transport = FunctionTransport(scripted())
    send_plan(
        make_plan(1), target="http://x", encoder=encoder_for("pipelines"), creds=LOCAL_DEFAULTS,
        ledger=Ledger(), transport=transport, clock="virtual",
    )  # fmt: skip
    assert not transport.closed


def test_progress_gets_final_counts():
    seen = []
    counts, _, _, _ = send(make_plan(5, dropped=[2]), scripted(), clock="wall", progress=seen.append)
    assert seen and seen[-1] == counts


def test_state_values_are_the_documented_strings():
    assert [s.value for s in State] == ["acknowledged", "rejected", "dropped_by_fault", "given_up"]


def test_t0_is_the_documented_instant():
    assert datetime.fromtimestamp(T0 / 1000, UTC) == datetime(2026, 11, 2, 12, tzinfo=UTC)
